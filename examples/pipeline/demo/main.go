// Command demo runs the seed pipeline end to end on one machine, each party
// in its own process:
//
//  1. a C++ publisher feeding a Python subscriber that drains NumPy batches
//     (and hands them to PyTorch when it is installed);
//  2. one Go publisher feeding Go, C++, Python and Rust subscribers at once,
//     plus a deliberately slow lossy Go subscriber whose drops are counted
//     exactly;
//  3. a Rust publisher feeding Rust, Go, C++ and Python subscribers, plus a
//     slow lossy Rust subscriber.
//
// It prints one summary table and fails if any message was lost, torn or
// reordered where the policy forbids it. `make demo` builds the peers and
// runs it.
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
	rustFlag := peers.RustFlag(flag.CommandLine)
	count := flag.Int64("count", 1_000_000, "messages per stage")
	flag.Parse()

	gp, cp, pp := peerFlags()
	rp := rustFlag()
	prefix := fmt.Sprintf("tachyon-demo-%d", os.Getpid())
	// A peer killed by a failed run leaves its ring behind: remove what
	// this run created (live rings are never touched). Not deferred: the
	// error exit below must not skip it.
	cleanup := func() { _, _ = ring.RemoveStale(prefix) }

	stages := []struct {
		title string
		run   peers.Run
	}{
		{"C++ -> Python (NumPy batches)", peers.Run{Ring: prefix + "-cpp-py", Count: *count, Pub: cp,
			Subs: []peers.Sub{{Peer: pp}}}},
		{"Go -> Go, C++, Python, Rust + a slow lossy reader", peers.Run{Ring: prefix + "-fanout", Count: *count, Pub: gp,
			Subs: []peers.Sub{{Peer: gp}, {Peer: cp}, {Peer: pp}, {Peer: rp}, {Peer: gp, MaxLag: 256, SlowUs: 20}}}},
		{"Rust -> Rust, Go, C++, Python + a slow lossy Rust reader", peers.Run{Ring: prefix + "-rust", Count: *count, Pub: rp,
			Subs: []peers.Sub{{Peer: rp}, {Peer: gp}, {Peer: cp}, {Peer: pp}, {Peer: rp, MaxLag: 256, SlowUs: 20}}}},
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tpublisher\tsubscriber\tmax_lag\tmessages\treceived\tlost\tdropped\ttorn\tmsgs/s\t")
	failed := false
	start := time.Now()
	for i, st := range stages {
		res, err := peers.Execute(st.run)
		if err == nil {
			err = res.Check(st.run)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: stage %d (%s): %v\n", i+1, st.title, err)
			failed = true
			if res == nil {
				continue
			}
		}
		for j, s := range res.Subs {
			lag := "unlimited"
			if st.run.Subs[j].MaxLag > 0 {
				lag = fmt.Sprint(st.run.Subs[j].MaxLag)
			}
			lost := res.Pub.Published - s.Received - s.Dropped
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", i+1, st.run.Pub.Lang, s.Lang, lag,
				res.Pub.Published, s.Received, lost, s.Dropped, s.Torn, peers.Rate(s.MsgsPerS))
		}
	}
	tw.Flush()
	fmt.Printf("\nstages:")
	for i, st := range stages {
		fmt.Printf("  %d) %s", i+1, st.title)
	}
	fmt.Println()
	fmt.Printf("lost = published - received - dropped: 0 means every message is accounted for.\n")
	fmt.Printf("demo finished in %.1fs\n", time.Since(start).Seconds())
	cleanup()
	if failed {
		os.Exit(1)
	}
}
