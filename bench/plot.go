package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// percentiles are the round-trip quantiles every latency plot shows.
var percentiles = []string{"p50", "p90", "p99", "p99.9"}

// latencyPlot draws the round-trip percentiles of each transport of a
// `make bench` run on a log scale: one line per transport over p50, p90,
// p99 and p99.9.
func latencyPlot(r *results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Round trip of a 64-byte message, %v", r.Machine["cpu"])
	p.Y.Label.Text = "round trip (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = durationTicks{}
	p.NominalX(percentiles...)
	p.Legend.Top = true
	p.Legend.Left = true
	type series struct {
		label string
		ns    [4]float64
	}
	var all []series
	if f, ok := r.Metrics["floor_rtt_p50_ns"]; ok {
		m := func(q string) float64 { return r.Metrics["floor_rtt_"+q+"_ns"].Value }
		all = append(all, series{"floor (C cache line)", [4]float64{f.Value, m("p90"), m("p99"), m("p999")}})
	}
	for _, k := range []struct{ key, label string }{{"go_go_ring", "Tachyon Go<->Go"}, {"go_cpp_ring", "Tachyon Go<->C++"},
		{"go_channel", "Go channel (in-process)"}, {"pipe", "pipe"}, {"uds", "Unix socket"}} {
		if l, ok := r.Latency[k.key]; ok {
			all = append(all, series{k.label, [4]float64{l.P50, l.P90, l.P99, l.P999}})
		}
	}
	for i, s := range all {
		var pts plotter.XYs
		for x, v := range s.ns {
			if v > 0 { // a log scale has no place for a missing (zero) figure
				pts = append(pts, plotter.XY{X: float64(x), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// render writes p as an SVG or PNG image (by the name's extension).
func render(p *plot.Plot, w, h vg.Length, name string) ([]byte, error) {
	format := strings.TrimPrefix(filepath.Ext(name), ".")
	wt, err := p.WriterTo(w, h, format)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// save renders p to each of the named files.
func save(p *plot.Plot, w, h vg.Length, names ...string) error {
	for _, name := range names {
		data, err := render(p, w, h, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
