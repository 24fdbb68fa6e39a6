// Command soak is the long run of the hardening work (`make soak`, not CI):
// one Go publisher streams --count seed messages (10^8 by default) under
// Block to Go, C++ and Python subscribers at once, plus two lossy readers
// with a finite max_lag. It checks every message's sequence and payload,
// that the unlimited subscribers lost nothing, and that each lossy reader's
// drops equal its gaps exactly; then it prints the rates and the largest
// publish-to-receive latency the Go subscriber saw.
package main

import (
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

func main() {
	peerFlags := peers.Flags(flag.CommandLine)
	count := flag.Int64("count", 100_000_000, "messages to stream")
	rounds := flag.Int("rounds", 1, "repeat the run this many times")
	flag.Parse()

	gp, cp, pp := peerFlags()
	prefix := fmt.Sprintf("tachyon-soak-%d", os.Getpid())
	// A peer killed by a failed run leaves its ring behind: remove what
	// this run created (live rings are never touched). Not deferred: the
	// error exit below must not skip it.
	cleanup := func() { _, _ = ring.RemoveStale(prefix) }

	failed := false
	for round := range *rounds {
		run := peers.Run{Ring: fmt.Sprintf("%s-%d", prefix, round), Count: *count, Pub: gp, Timeout: time.Hour,
			Subs: []peers.Sub{{Peer: gp, Latency: true}, {Peer: cp}, {Peer: pp},
				{Peer: gp, MaxLag: 1024, SlowUs: 5}, {Peer: cp, MaxLag: 64}}}
		start := time.Now()
		res, err := peers.Execute(run)
		if err == nil {
			err = res.Check(run)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "soak: round %d: %v\n", round+1, err)
			failed = true
		}
		if err != nil {
			continue
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Printf("round %d: %d messages in %.1fs\n", round+1, res.Pub.Published, time.Since(start).Seconds())
		fmt.Fprintln(tw, "subscriber\tmax_lag\treceived\tdropped\tgaps\ttorn\treordered\tmsgs/s\tmax latency\t")
		for i, s := range res.Subs {
			lag := "unlimited"
			if run.Subs[i].MaxLag > 0 {
				lag = fmt.Sprint(run.Subs[i].MaxLag)
			}
			latency := "-"
			if run.Subs[i].Latency {
				latency = time.Duration(s.MaxLatencyNs).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", s.Lang, lag, s.Received, s.Dropped, s.Gaps,
				s.Torn, s.Reordered, peers.Rate(s.MsgsPerS), latency)
		}
		tw.Flush()
		fmt.Printf("publisher: %.2fM msgs/s\n\n", res.Pub.MsgsPerS/1e6)
	}
	cleanup()
	if failed {
		fmt.Println("soak: FAILED")
		os.Exit(1)
	}
	fmt.Println("soak: every message accounted for")
}
