// Package peers drives interop peers (examples/pipeline/PEERS.md) of any
// language: it starts publishers and subscribers as separate processes,
// collects their one-line JSON summaries and checks them. The interop matrix
// test and the demo are built on it.
package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Peer is one language's peer program.
type Peer struct {
	Lang string   // "go", "cpp", "python", "rust"
	Argv []string // the command, without the pub/sub verb
	Env  []string // extra environment
}

// Summary is a peer's JSON summary line.
type Summary struct {
	Lang      string  `json:"lang"`
	Role      string  `json:"role"`
	Ring      string  `json:"ring"`
	Published int64   `json:"published"`
	Received  int64   `json:"received"`
	Dropped   int64   `json:"dropped"`
	Gaps      int64   `json:"gaps"`
	Torn      int64   `json:"torn"`
	Reordered int64   `json:"reordered"`
	First     int64   `json:"first"`
	Last      int64   `json:"last"`
	Seconds   float64 `json:"seconds"`
	MsgsPerS  float64 `json:"msgs_per_s"`
	// MaxLatencyNs is reported by subscribers run with Sub.Latency.
	MaxLatencyNs int64 `json:"max_latency_ns"`
}

// Sub describes one subscriber of a run.
type Sub struct {
	Peer   Peer
	MaxLag int
	SlowUs int
	// Latency asks the peer for max_latency_ns (the Go peer supports it).
	Latency bool
}

// Run is one publisher feeding subscribers on one ring.
type Run struct {
	Ring     string
	Count    int64
	Policy   string // default "block"
	Capacity int    // default 4096
	Pub      Peer
	Subs     []Sub
	Timeout  time.Duration // default 60 s
	// Sealed runs the ring in the sealed mode (PEERS.md --sealed): the
	// publisher serves it on a Unix socket at this path, the subscribers
	// dial it.
	Sealed string
	// Pin pins the publisher to CPU 0 and subscriber i to CPU 1+i (--pin),
	// as the benchmarks place their two sides.
	Pin bool
}

// Result holds the summaries of a run, subscribers in the order given.
type Result struct {
	Pub  Summary
	Subs []Summary
}

type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	label  string
}

func start(ctx context.Context, p Peer, label string, args ...string) (*proc, error) {
	argv := append(append([]string{}, p.Argv...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	pr := &proc{cmd: cmd, label: label}
	cmd.Stdout, cmd.Stderr = &pr.stdout, &pr.stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %v: %w", label, argv, err)
	}
	return pr, nil
}

func (pr *proc) wait() (Summary, error) {
	err := pr.cmd.Wait()
	var s Summary
	line := strings.TrimSpace(pr.stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err != nil {
		return s, fmt.Errorf("%s: %v\nstderr: %s", pr.label, err, pr.stderr.String())
	}
	if jerr := json.Unmarshal([]byte(line), &s); jerr != nil {
		return s, fmt.Errorf("%s: summary %q: %v\nstderr: %s", pr.label, line, jerr, pr.stderr.String())
	}
	return s, nil
}

// Execute starts the subscribers, then the publisher (which waits for them to
// register), and waits for every process.
func Execute(r Run) (*Result, error) {
	if r.Policy == "" {
		r.Policy = "block"
	}
	if r.Capacity == 0 {
		r.Capacity = 4096
	}
	if r.Timeout == 0 {
		r.Timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout+10*time.Second)
	defer cancel()
	secs := fmt.Sprintf("%g", r.Timeout.Seconds())
	var subs []*proc
	for i, s := range r.Subs {
		args := []string{"sub", "--ring", r.Ring, "--timeout-s", secs}
		if s.MaxLag > 0 {
			args = append(args, "--max-lag", fmt.Sprint(s.MaxLag))
		}
		if s.SlowUs > 0 {
			args = append(args, "--slow-us", fmt.Sprint(s.SlowUs))
		}
		if s.Latency {
			args = append(args, "--latency")
		}
		if r.Sealed != "" {
			args = append(args, "--sealed", r.Sealed)
		}
		if r.Pin {
			args = append(args, "--pin", fmt.Sprint(1+i))
		}
		pr, err := start(ctx, s.Peer, fmt.Sprintf("%s sub %d", s.Peer.Lang, i), args...)
		if err != nil {
			cancel()
			for _, p := range subs {
				p.wait()
			}
			return nil, err
		}
		subs = append(subs, pr)
	}
	pubArgs := []string{"pub", "--ring", r.Ring, "--count", fmt.Sprint(r.Count),
		"--policy", r.Policy, "--capacity", fmt.Sprint(r.Capacity), "--wait-subscribers", fmt.Sprint(len(r.Subs)),
		"--timeout-s", secs}
	if r.Sealed != "" {
		pubArgs = append(pubArgs, "--sealed", r.Sealed)
	}
	if r.Pin {
		pubArgs = append(pubArgs, "--pin", "0")
	}
	pub, err := start(ctx, r.Pub, r.Pub.Lang+" pub", pubArgs...)
	if err != nil {
		cancel()
		for _, p := range subs {
			p.wait()
		}
		return nil, err
	}
	res := &Result{Subs: make([]Summary, len(subs))}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range subs {
		wg.Go(func() {
			s, err := p.wait()
			mu.Lock()
			defer mu.Unlock()
			res.Subs[i] = s
			if err != nil {
				errs = append(errs, err)
				cancel() // a failed subscriber: the publisher would wait for it in vain
			}
		})
	}
	res.Pub, err = pub.wait()
	if err != nil {
		errs = append(errs, err)
		cancel() // a failed publisher: do not wait out the subscribers' timeout
	}
	wg.Wait()
	if len(errs) > 0 {
		return res, fmt.Errorf("ring %s: %v", r.Ring, errs)
	}
	return res, nil
}

// Check applies the PEERS.md rules: under block an unlimited subscriber
// receives every message in order, intact; a lossy one accounts for every
// message exactly (received + dropped == published, dropped == gaps).
func (res *Result) Check(r Run) error {
	if res.Pub.Published != r.Count && r.Policy != "drop_newest" {
		return fmt.Errorf("%s: published %d of %d", r.Ring, res.Pub.Published, r.Count)
	}
	for i, s := range res.Subs {
		who := fmt.Sprintf("%s: %s subscriber %d", r.Ring, s.Lang, i)
		if s.Torn != 0 || s.Reordered != 0 {
			return fmt.Errorf("%s: %d torn, %d reordered", who, s.Torn, s.Reordered)
		}
		if r.Subs[i].MaxLag == 0 && r.Policy != "drop_oldest" {
			if s.Received != res.Pub.Published || s.Gaps != 0 || s.Dropped != 0 {
				return fmt.Errorf("%s: received %d of %d (gaps %d, dropped %d)", who, s.Received, res.Pub.Published, s.Gaps, s.Dropped)
			}
			continue
		}
		if s.Received+s.Dropped != res.Pub.Published || s.Dropped != s.Gaps {
			return fmt.Errorf("%s: received %d + dropped %d != published %d, or dropped != gaps %d", who, s.Received, s.Dropped, res.Pub.Published, s.Gaps)
		}
	}
	return nil
}

// Flags registers --go, --cpp and --python, the three peers' commands with
// the paths `make peers` builds, on fs; the returned function gives the
// peers once fs is parsed.
func Flags(fs *flag.FlagSet) func() (goPeer, cppPeer, pyPeer Peer) {
	g := fs.String("go", "bin/gopeer", "Go peer binary")
	c := fs.String("cpp", "build/cpppeer", "C++ peer binary")
	p := fs.String("python", ".venv/bin/python examples/pipeline/pypeer.py", "Python peer command")
	return func() (Peer, Peer, Peer) {
		return Peer{Lang: "go", Argv: []string{*g}}, Peer{Lang: "cpp", Argv: []string{*c}},
			Peer{Lang: "python", Argv: strings.Fields(*p)}
	}
}

// RustFlag registers --rust, the Rust peer's path as `make peers` builds it
// (cargo's release output), on fs; the returned function gives the peer
// once fs is parsed.
func RustFlag(fs *flag.FlagSet) func() Peer {
	r := fs.String("rust", "build/cargo/release/rustpeer", "Rust peer binary")
	return func() Peer { return Peer{Lang: "rust", Argv: []string{*r}} }
}

// Rate formats a rate in messages per second for a summary table.
func Rate(msgsPerS float64) string {
	if msgsPerS >= 1e5 {
		return fmt.Sprintf("%.2fM", msgsPerS/1e6)
	}
	return fmt.Sprintf("%.1fk", msgsPerS/1e3)
}
