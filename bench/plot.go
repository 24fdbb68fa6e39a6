package main

import (
	"bytes"
	"fmt"
	"math"
)

// plot draws the round-trip percentiles of each transport on a log scale:
// one polyline per transport over p50, p90, p99, p99.9.
func plot(r *results) []byte {
	type series struct {
		label, color string
		pts          []float64
	}
	var all []series
	if f, ok := r.Metrics["floor_rtt_p50_ns"]; ok {
		all = append(all, series{"floor (C cache line)", "#888888", []float64{f.Value, 0, r.Metrics["floor_rtt_p99_ns"].Value, r.Metrics["floor_rtt_p999_ns"].Value}})
	}
	colors := map[string]string{"go_go_ring": "#d62728", "uds": "#1f77b4", "pipe": "#2ca02c", "go_channel": "#9467bd"}
	labels := map[string]string{"go_go_ring": "Tachyon Go<->Go", "uds": "Unix socket", "pipe": "pipe", "go_channel": "Go channel (in-process)"}
	for _, k := range []string{"go_go_ring", "go_channel", "pipe", "uds"} {
		if l, ok := r.Latency[k]; ok {
			all = append(all, series{labels[k], colors[k], []float64{l.P50, l.P90, l.P99, l.P999}})
		}
	}
	const w, h, left, right, top, bottom = 720.0, 420.0, 80.0, 200.0, 40.0, 50.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range all {
		for _, v := range s.pts {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if len(all) == 0 || lo >= hi {
		lo, hi = 10, 1e6
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	x := func(i int) float64 { return left + float64(i)*(w-left-right)/3 }
	y := func(v float64) float64 {
		return top + (h-top-bottom)*(1-(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="22" font-size="15">Round trip of a 64-byte message, %v</text>`+"\n", left, r.Machine["cpu"])
	for d := lo; d <= hi*1.01; d *= 10 {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n", left, w-right, y(d), y(d), left-6, y(d)+4, ns(d))
	}
	for i, p := range []string{"p50", "p90", "p99", "p99.9"} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x(i), h-bottom+20, p)
	}
	for k, s := range all {
		var path bytes.Buffer
		for i, v := range s.pts {
			if v <= 0 {
				continue
			}
			fmt.Fprintf(&path, "%.1f,%.1f ", x(i), y(v))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i), y(v), s.color)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), s.color)
		fmt.Fprintf(&b, `<rect x="%g" y="%d" width="12" height="12" fill="%s"/><text x="%g" y="%d">%s</text>`+"\n", w-right+15, 60+k*20, s.color, w-right+32, 70+k*20, s.label)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
