// Command demo runs the seed pipeline across a NATS JetStream cluster, on one
// machine standing in for two hosts:
//
//	Go publisher -> ring "host A" -> tachyon-bridge out -> JetStream (three
//	nodes, an R3 stream) -> tachyon-bridge in -> ring "host B" -> Go, C++
//	and Python subscribers
//
// It starts the cluster (embedded servers on loopback, in this process), the
// bridges and the peers, prints one table, fails if a message was lost,
// torn or reordered, and stops and removes everything it started. `make
// demo-bridge` builds what it needs and runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
	"github.com/tachyon-io/tachyon/internal/natstest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

type proc struct {
	label  string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func start(label string, argv ...string) (*proc, error) {
	p := &proc{label: label, cmd: exec.Command(argv[0], argv[1:]...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return p, nil
}

// wait waits for the process and decodes its last stdout line into v.
func (p *proc) wait(v any) error {
	err := p.cmd.Wait()
	line := strings.TrimSpace(p.stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", p.label, err, p.stderr.String())
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		return fmt.Errorf("%s: summary %q: %v\n%s", p.label, line, err, p.stderr.String())
	}
	return nil
}

func (p *proc) kill() {
	if p != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

type outSummary struct {
	Published uint64  `json:"published"`
	NATSMsgs  uint64  `json:"nats_msgs"`
	Retries   uint64  `json:"retries"`
	Dropped   uint64  `json:"dropped"`
	MsgsPerS  float64 `json:"msgs_per_s"`
}

type inSummary struct {
	Committed  uint64  `json:"committed"`
	NATSMsgs   uint64  `json:"nats_msgs"`
	Duplicates uint64  `json:"duplicates"`
	Gaps       uint64  `json:"gaps"`
	Refused    uint64  `json:"refused"`
	MsgsPerS   float64 `json:"msgs_per_s"`
}

func main() {
	peerFlags := peers.Flags(flag.CommandLine)
	bridgeBin := flag.String("bridge", "bin/tachyon-bridge", "tachyon-bridge binary")
	layout := flag.String("layout", "build/message.layout.json", "layout of the seed message (tachyon-gen layout --json)")
	count := flag.Int64("count", 300_000, "messages to publish")
	pack := flag.Int("pack", 16, "ring messages per NATS message")
	langs := flag.String("subscribers", "go,cpp,python", "the subscribers on host B, by language")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up (and stop everything) after this long")
	flag.Parse()
	if err := demo(peerFlags, strings.Split(*langs, ","), *bridgeBin, *layout, *count, *pack, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo-bridge:", err)
		os.Exit(1)
	}
}

func demo(peerFlags func() (peers.Peer, peers.Peer, peers.Peer), langs []string, bridgeBin, layout string, count int64, pack int, timeout time.Duration) (err error) {
	gp, cp, pp := peerFlags()
	prefix := fmt.Sprintf("tachyon-demo-bridge-%d", os.Getpid())
	hostA, hostB := prefix+"-hostA", prefix+"-hostB"
	dir, err := os.MkdirTemp("", "tachyon-demo-bridge-")
	if err != nil {
		return err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
		_, _ = ring.RemoveStale(prefix)
		os.RemoveAll(dir)
	}()

	fmt.Println("== starting a three-node JetStream cluster on loopback")
	nodes, servers, err := natstest.StartCluster(filepath.Join(dir, "nats"), 3)
	defer natstest.Stop(servers)
	if err != nil {
		return err
	}
	urls := strings.Join(natstest.URLs(nodes), ",")
	fmt.Printf("   %s\n\n", urls)
	common := []string{"--nats", urls, "--stream", "TACHYON_DEMO", "--replicas", "3", "--layout", layout, "--quiet"}
	run := func(label string, argv ...string) (*proc, error) {
		p, err := start(label, argv...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}

	// Host B: the in bridge creates the ring, the subscribers attach to it.
	in, err := run("tachyon-bridge in", append([]string{bridgeBin, "in", "--ring", hostB, "--consumer", "demo",
		"--message", "market.Message", "--capacity", "65536", "--wait-subscribers", fmt.Sprint(len(langs)), "--exit-on-close",
		"--state", filepath.Join(dir, "in.json")}, common...)...)
	if err != nil {
		return err
	}
	var subs []peers.Peer
	for _, l := range langs {
		switch l {
		case "go":
			subs = append(subs, gp)
		case "cpp":
			subs = append(subs, cp)
		case "python":
			subs = append(subs, pp)
		default:
			return fmt.Errorf("--subscribers: unknown language %q", l)
		}
	}
	var subProcs []*proc
	for _, s := range subs {
		p, err := run(s.Lang+" sub", append(append([]string{}, s.Argv...), "sub", "--ring", hostB, "--timeout-s", "120")...)
		if err != nil {
			return err
		}
		subProcs = append(subProcs, p)
	}
	// Host A: the publisher waits for the out bridge to register.
	out, err := run("tachyon-bridge out", append([]string{bridgeBin, "out", "--ring", hostA, "--pack", fmt.Sprint(pack),
		"--exit-on-close"}, common...)...)
	if err != nil {
		return err
	}
	start := time.Now()
	// A stuck stage must not hang the demo: past the deadline every
	// process is killed, and the waits below report what each said.
	watchdog := time.AfterFunc(timeout, func() {
		fmt.Fprintf(os.Stderr, "demo-bridge: not done after %v: stopping everything\n", timeout)
		for _, p := range procs {
			p.cmd.Process.Kill()
		}
	})
	defer watchdog.Stop()
	pub, err := run("go pub", append(append([]string{}, gp.Argv...), "pub", "--ring", hostA, "--count", fmt.Sprint(count),
		"--capacity", "65536", "--wait-subscribers", "1", "--timeout-s", "120")...)
	if err != nil {
		return err
	}

	var pubS peers.Summary
	var outS outSummary
	var inS inSummary
	subS := make([]peers.Summary, len(subs))
	var errs []string
	check := func(e error) {
		if e != nil {
			errs = append(errs, e.Error())
		}
	}
	check(pub.wait(&pubS))
	check(out.wait(&outS))
	check(in.wait(&inS))
	for i, p := range subProcs {
		check(p.wait(&subS[i]))
	}
	secs := time.Since(start).Seconds()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tmessages\treceived\tlost\tdropped\ttorn\treordered\tmsgs/s\t")
	fmt.Fprintf(tw, "go pub -> ring host A\t%d\t-\t-\t%d\t-\t-\t%s\t\n", pubS.Published, pubS.Dropped, peers.Rate(pubS.MsgsPerS))
	fmt.Fprintf(tw, "bridge out -> JetStream R3\t%d\t%d\t%d\t%d\t-\t-\t%s\t\n", pubS.Published, outS.Published,
		int64(pubS.Published)-int64(outS.Published)-int64(outS.Dropped), outS.Dropped, peers.Rate(outS.MsgsPerS))
	fmt.Fprintf(tw, "JetStream -> bridge in -> ring host B\t%d\t%d\t%d\t%d\t-\t-\t%s\t\n", outS.Published, inS.Committed,
		int64(outS.Published)-int64(inS.Committed)-int64(inS.Gaps), inS.Gaps, peers.Rate(inS.MsgsPerS))
	lostAny := false
	for i, s := range subS {
		lost := pubS.Published - s.Received - s.Dropped
		lostAny = lostAny || lost != 0 || s.Torn != 0 || s.Reordered != 0 || s.Gaps != 0
		fmt.Fprintf(tw, "ring host B -> %s sub\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", subs[i].Lang, pubS.Published, s.Received, lost,
			s.Dropped, s.Torn, s.Reordered, peers.Rate(s.MsgsPerS))
	}
	tw.Flush()
	fmt.Printf("\n%d NATS messages of up to %d ring messages each (%d retried); the in side dropped %d duplicates, refused %d.\n",
		outS.NATSMsgs, pack, outS.Retries, inS.Duplicates, inS.Refused)
	fmt.Printf("lost = messages - received - dropped: 0 means every message is accounted for. End to end in %.1fs.\n", secs)
	if lostAny || outS.Published != uint64(pubS.Published) || inS.Committed != outS.Published {
		errs = append(errs, "messages lost, torn or reordered")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}
