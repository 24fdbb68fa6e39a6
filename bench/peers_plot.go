package main

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// measured are the systems of a run that have figures, top row first.
func measured(doc *peersDoc) []systemResult {
	return slices.DeleteFunc(slices.Clone(doc.Systems), func(s systemResult) bool { return s.Median == nil })
}

// spreadXY is one figure per system: x the median, the error bar its
// min-max over rounds, y the system's row (with an offset per series).
type spreadXY struct {
	plotter.XYs
	plotter.XErrors
}

// rttPlot draws each system's round-trip p50, p99 and p99.9 (medians over
// rounds, bars from the least to the greatest round) on a log scale, one
// row per system.
func rttPlot(doc *peersDoc) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Round trip, 64-byte messages: median of %v rounds (bars: min-max)", doc.Method["rounds"])
	p.X.Label.Text = fmt.Sprintf("log scale — %v, %v", doc.Machine["cpu"], dateOf(doc))
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = durationTicks{}
	rows := measured(doc)
	var names []string
	series := []struct {
		label string
		get   func(*figures) float64
	}{{"p50", func(f *figures) float64 { return f.RTTP50 }}, {"p99", func(f *figures) float64 { return f.RTTP99 }},
		{"p99.9", func(f *figures) float64 { return f.RTTP999 }}}
	for k, sr := range series {
		var d spreadXY
		for i, s := range rows {
			if sr.get(s.Median) <= 0 {
				continue
			}
			y := float64(len(rows)-1-i) + 0.2*float64(1-k) // top row first, p50 above p99.9
			m := sr.get(s.Median)
			d.XYs = append(d.XYs, plotter.XY{X: m, Y: y})
			d.XErrors = append(d.XErrors, struct{ Low, High float64 }{m - sr.get(s.Min), sr.get(s.Max) - m})
		}
		if len(d.XYs) == 0 {
			continue
		}
		pts, err := plotter.NewScatter(d.XYs)
		if err != nil {
			return nil, err
		}
		pts.Color, pts.Shape, pts.Radius = plotutil.Color(k), plotutil.Shape(k), vg.Points(3)
		bars, err := plotter.NewXErrorBars(d)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(k)
		p.Add(bars, pts)
		p.Legend.Add(sr.label, pts)
	}
	for i := range rows {
		names = append(names, rows[len(rows)-1-i].Label)
	}
	p.NominalY(names...)
	p.Legend.Top = true
	p.Legend.YOffs = -vg.Points(12) // below the title
	p.Add(plotter.NewGrid())
	return p, nil
}

// durationTicks are log ticks labelled as durations: 100 ns, 1 µs, 10 ms.
type durationTicks struct{}

func (durationTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = durationLabel(t.Value)
		}
	}
	return ticks
}

func durationLabel(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%g µs", ns/1e3)
	}
	return fmt.Sprintf("%g ns", ns)
}

// throughputPlot draws each system's one-way rate (median over rounds,
// bars from the least to the greatest round), one row per system.
func throughputPlot(doc *peersDoc) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("One-way stream, 64-byte messages: median of %v rounds (bars: min-max)", doc.Method["rounds"])
	p.X.Label.Text = fmt.Sprintf("million messages/s — %v, %v", doc.Machine["cpu"], dateOf(doc))
	var rows []systemResult
	for _, s := range measured(doc) {
		if s.Median.MsgsPerS > 0 {
			rows = append(rows, s)
		}
	}
	var values plotter.Values
	var d spreadXY
	var names []string
	for i := range rows {
		s := rows[len(rows)-1-i] // top row first
		m := s.Median.MsgsPerS / 1e6
		values = append(values, m)
		d.XYs = append(d.XYs, plotter.XY{X: m, Y: float64(i)})
		d.XErrors = append(d.XErrors, struct{ Low, High float64 }{m - s.Min.MsgsPerS/1e6, s.Max.MsgsPerS/1e6 - m})
		names = append(names, s.Label)
	}
	if len(rows) > 0 {
		bars, err := plotter.NewBarChart(values, vg.Points(14))
		if err != nil {
			return nil, err
		}
		bars.Horizontal = true
		bars.Color = plotutil.Color(0)
		bars.LineStyle.Width = 0
		spread, err := plotter.NewXErrorBars(d)
		if err != nil {
			return nil, err
		}
		spread.Color = color.Black
		p.Add(bars, spread)
	}
	p.NominalY(names...)
	p.X.Min = 0
	p.Add(plotter.NewGrid())
	return p, nil
}

func dateOf(doc *peersDoc) string {
	if d, ok := doc.Machine["date"].(string); ok && len(d) >= 10 {
		return d[:10]
	}
	return "undated"
}

// peerPlotFiles are the files savePeerPlots writes for a prefix.
func peerPlotFiles(prefix string) []string {
	return []string{prefix + "-rtt.svg", prefix + "-rtt.png", prefix + "-throughput.svg", prefix + "-throughput.png"}
}

// savePeerPlots draws both plots as SVG and PNG and returns the files.
func savePeerPlots(doc *peersDoc, prefix string) ([]string, error) {
	files := peerPlotFiles(prefix)
	h := vg.Length(1.5+0.45*float64(len(measured(doc)))) * vg.Inch
	for i, draw := range []func(*peersDoc) (*plot.Plot, error){rttPlot, throughputPlot} {
		p, err := draw(doc)
		if err != nil {
			return nil, err
		}
		if err := save(p, 10*vg.Inch, h, files[2*i:2*i+2]...); err != nil {
			return nil, err
		}
	}
	return files, nil
}
