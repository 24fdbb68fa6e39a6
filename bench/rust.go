package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
)

// peerRoundTrips measures round trips of the seed message between two peer
// processes: pinger's `ping` (PEERS.md) on CPU 0 against echo's `echo` on
// CPU 1, both spinning before they park. It is how a client whose ping side
// is not Go (Rust, C++) is measured like for like with the in-process Go
// pinger of ringPingPong.
func peerRoundTrips(pinger, echo peers.Peer, tag string, n, warm int) (Latency, error) {
	for _, p := range []peers.Peer{pinger, echo} {
		if _, err := os.Stat(p.Argv[0]); err != nil {
			return Latency{}, fmt.Errorf("%s not built (make bench builds it)", p.Argv[0])
		}
	}
	base := fmt.Sprintf("tachyon-bench-%d-%s", os.Getpid(), tag)
	ping, pong := base+"-ping", base+"-pong"
	run := func(p peers.Peer, args ...string) *exec.Cmd {
		cmd := exec.Command(p.Argv[0], append(append(append([]string{}, p.Argv[1:]...), args...), "--timeout-s", "20")...)
		cmd.Env = append(os.Environ(), p.Env...)
		cmd.Stderr = os.Stderr
		return cmd
	}
	e := run(echo, "echo", "--ping", ping, "--pong", pong, "--pin", "1")
	if err := e.Start(); err != nil {
		return Latency{}, err
	}
	defer func() { _ = e.Wait() }() // the echo ends when the ping ring closes
	p := run(pinger, "ping", "--ping", ping, "--pong", pong, "--count", fmt.Sprint(n),
		"--warmup", fmt.Sprint(warm), "--pin", "0")
	var stdout bytes.Buffer
	p.Stdout = &stdout
	if err := p.Run(); err != nil {
		_ = e.Process.Kill()
		return Latency{}, fmt.Errorf("%s ping: %v", pinger.Lang, err)
	}
	var s struct {
		N    int     `json:"round_trips"`
		P50  float64 `json:"rtt_p50_ns"`
		P90  float64 `json:"rtt_p90_ns"`
		P99  float64 `json:"rtt_p99_ns"`
		P999 float64 `json:"rtt_p999_ns"`
		Max  float64 `json:"rtt_max_ns"`
	}
	if err := json.Unmarshal([]byte(lastLine(stdout.String())), &s); err != nil || s.N == 0 {
		return Latency{}, fmt.Errorf("%s ping: summary %q: %v", pinger.Lang, strings.TrimSpace(stdout.String()), err)
	}
	return Latency{P50: s.P50, P90: s.P90, P99: s.P99, P999: s.P999, Max: s.Max, N: s.N}, nil
}

// peerSteps measures the Rust client beside the C++ one, each against
// itself: round trips through their own ping and echo, and a stream from
// their own publisher to their own subscriber (issue 16's targets compare
// the two). A peer whose ping verb is missing shows up under "missing".
func peerSteps(r *results, step func(string, func() error), rp, cp peers.Peer, n, warm int, streamMsgs int64) {
	for _, e := range []struct {
		name, key string
		p         peers.Peer
	}{{"Rust<->Rust", "rust_rust", rp}, {"C++<->C++", "cpp_cpp", cp}} {
		step(e.name+" ring ping-pong (the peers' own ping and echo)", func() error {
			l, err := medianRun(func(i int) (Latency, error) {
				return peerRoundTrips(e.p, e.p, fmt.Sprint(e.key, i), n, warm)
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
