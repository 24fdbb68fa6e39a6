package main

import (
	"fmt"
	"strings"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
)

// peerSteps measures the Rust client beside the C++ one, each against
// itself: round trips through their own ping and echo (tachyonRTT, as
// bench-peers does), and a stream from their own publisher to their own
// subscriber. Issue 16's targets compare the two.
func peerSteps(r *results, step func(string, func() error), rp, cp peers.Peer, n, warm int, streamMsgs int64) {
	for _, e := range []struct {
		name, key string
		p         peers.Peer
	}{{"Rust<->Rust", "rust_rust", rp}, {"C++<->C++", "cpp_cpp", cp}} {
		step(e.name+" ring ping-pong (the peers' own ping and echo)", func() error {
			l, err := medianRun(func(i int) (Latency, error) {
				return tachyonRTT(e.p, e.p, fmt.Sprint(e.key, i), peerSizes{RoundTrips: n, RTTWarmup: warm})
			})
			if err != nil {
				return err
			}
			r.Latency[e.key+"_ring"] = l
			r.Metrics[e.key+"_rtt_p50_ns"] = Metric{l.P50, "ns", "median run of 3"}
			r.Metrics[e.key+"_rtt_p99_ns"] = Metric{l.P99, "ns", ""}
			r.Metrics[e.key+"_rtt_p999_ns"] = Metric{l.P999, "ns", ""}
			return nil
		})
		step(strings.Replace(e.name, "<->", "->", 1)+" throughput", func() error {
			return peerThroughput(r, e.key, e.p, e.p, streamMsgs)
		})
	}
}
