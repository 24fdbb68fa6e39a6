package main

// `bench peers` (make bench-peers): Tachyon beside the systems its users
// would pick instead — Aeron, iceoryx2, riyaneel's Tachyon — and beside its
// floors, in one run. Every round runs every system once, in an order
// rotated from round to round, each measurement two processes pinned to
// CPUs 0 (ping, publisher) and 1 (echo, subscriber), 64-byte messages,
// each round trip timed with CLOCK_MONOTONIC. bench-peers.json keeps every
// round; the table and the plots show medians over rounds with the spread
// (min-max). bench/peers/README.md says what each system does per message.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
)

// peerSizes are the sample sizes of one measurement.
type peerSizes struct {
	RoundTrips   int   `json:"rtt_round_trips"`
	RTTWarmup    int   `json:"rtt_warmup"`
	StreamMsgs   int64 `json:"stream_messages"`
	StreamWarmup int64 `json:"stream_warmup"`
}

// system is one row of bench-peers: how to measure its round trip and its
// one-way stream (either may be nil), or why it cannot be measured here.
type system struct {
	Key, Label, Notes string
	rtt               func(tag string, z peerSizes) (Latency, error)
	stream            func(tag string, z peerSizes) (float64, error)
	missing           string
}

// rttStats are the round-trip percentiles of one run, in nanoseconds.
type rttStats struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// peerRound is one system's figures in one round.
type peerRound struct {
	RTT *rttStats `json:"rtt_ns,omitempty"`
	// FloorP50 is the cache-line floor's p50 probed just before this
	// system's round trips (a short floor_pingpong run): this VM's host
	// changes speed from one minute to the next, so each round trip is
	// also reported as a multiple of the floor measured beside it.
	FloorP50 float64  `json:"floor_rtt_p50_ns,omitempty"`
	MsgsPerS float64  `json:"msgs_per_s,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// figures are the numbers a table row and a plot show of a system: over
// rounds, each figure's median, or its least or greatest value.
type figures struct {
	RTTP50   float64 `json:"rtt_p50_ns,omitempty"`
	RTTP99   float64 `json:"rtt_p99_ns,omitempty"`
	RTTP999  float64 `json:"rtt_p999_ns,omitempty"`
	MsgsPerS float64 `json:"msgs_per_s,omitempty"`
	// RTTP50PerFloor is RTT p50 ÷ the floor probed beside it (peerRound).
	RTTP50PerFloor float64 `json:"rtt_p50_per_floor,omitempty"`
}

type systemResult struct {
	Key     string      `json:"key"`
	Label   string      `json:"label"`
	Notes   string      `json:"notes,omitempty"`
	Missing string      `json:"missing,omitempty"`
	Rounds  []peerRound `json:"rounds,omitempty"`
	Median  *figures    `json:"median,omitempty"`
	Min     *figures    `json:"min,omitempty"`
	Max     *figures    `json:"max,omitempty"`
}

// peersDoc is bench-peers.json.
type peersDoc struct {
	Machine map[string]any `json:"machine"`
	Method  map[string]any `json:"method"`
	Sizes   peerSizes      `json:"sizes"`
	Order   [][]string     `json:"order"`
	// Busy is, per round, the share of CPU time others used in the second
	// before it started (after waiting up to --quiet-wait for it to fall).
	Busy    []float64      `json:"cpu_busy_before_round"`
	Systems []systemResult `json:"systems"`
}

// peerPaths are where make bench-peers puts what the systems run.
type peerPaths struct {
	floorPP, floorSPSC, gopeer, cpppeer, rustpeer, riyaneel, iceoryx2, aeronDir, java, cargoLock, pom string
	// errDir holds NAME.error for each peer bench/peers/build.sh could not build.
	errDir string
}

func peersMain(args []string) int {
	fs := flag.NewFlagSet("bench peers", flag.ContinueOnError)
	rounds := fs.Int("rounds", 5, "rounds: each runs every system once, in a rotated order")
	out := fs.String("out", "bench-peers.json", "results file")
	plots := fs.String("plots", "bench-peers", "plot files: PREFIX-rtt.{svg,png} and PREFIX-throughput.{svg,png}")
	from := fs.String("from", "", "measure nothing: print the table and draw the plots of this results file")
	only := fs.String("only", "", "measure only the systems whose key matches this regular expression")
	smoke := fs.Bool("smoke", false, "tiny sample sizes: proves the harness works, measures nothing useful")
	quiet := fs.Duration("quiet-wait", time.Minute, "before each round, wait up to this long for the CPUs to be idle (others' work)")
	var p peerPaths
	fs.StringVar(&p.floorPP, "floor-pingpong", "build/bench/floor_pingpong", "C cache-line ping-pong floor")
	fs.StringVar(&p.floorSPSC, "floor-spsc", "build/bench/floor_spsc", "C SPSC ring floor")
	fs.StringVar(&p.gopeer, "gopeer", "bin/gopeer", "Go interop peer")
	fs.StringVar(&p.cpppeer, "cpppeer", "build/cpppeer", "C++ interop peer")
	fs.StringVar(&p.rustpeer, "rustpeer", "build/cargo/release/rustpeer", "Rust interop peer")
	fs.StringVar(&p.riyaneel, "riyaneel", "build/peers/cargo/release/bench-riyaneel", "riyaneel's Tachyon peer (bench/peers/rust)")
	fs.StringVar(&p.iceoryx2, "iceoryx2", "build/peers/cargo/release/bench-iceoryx2", "iceoryx2 peer (bench/peers/rust)")
	fs.StringVar(&p.aeronDir, "aeron", "build/peers/aeron", "Aeron peer build directory (bench/peers/aeron)")
	fs.StringVar(&p.java, "java", "java", "the java command")
	fs.StringVar(&p.cargoLock, "cargo-lock", "bench/peers/rust/Cargo.lock", "the Rust peers' lock file (for their versions)")
	fs.StringVar(&p.pom, "pom", "bench/peers/aeron/pom.xml", "the Aeron peer's pom (for its version)")
	fs.StringVar(&p.errDir, "build-errors", "build/peers", "directory of the NAME.error files of peers that did not build")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from != "" {
		data, err := os.ReadFile(*from)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench peers:", err)
			return 1
		}
		var doc peersDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			fmt.Fprintf(os.Stderr, "bench peers: %s: %v\n", *from, err)
			return 1
		}
		return finishPeers(&doc, "", *plots)
	}
	onlyRe, err := regexp.Compile(*only)
	if err != nil || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench peers: --only must be a regular expression and --rounds at least 1")
		return 2
	}
	z := peerSizes{RoundTrips: 500_000, RTTWarmup: 100_000, StreamMsgs: 20_000_000, StreamWarmup: 2_000_000}
	if *smoke {
		z = peerSizes{RoundTrips: 2_000, RTTWarmup: 200, StreamMsgs: 200_000, StreamWarmup: 20_000}
	}
	var systems []system
	for _, s := range peerSystems(p) {
		if onlyRe.MatchString(s.Key) {
			systems = append(systems, s)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	peersCtx = ctx
	probe := func() (float64, error) {
		l, err := floorRTT(p.floorPP, "floor_rtt_", peerSizes{RoundTrips: probeRoundTrips, RTTWarmup: probeRoundTrips / 10})
		return l.P50, err
	}
	if _, err := os.Stat(p.floorPP); err != nil {
		probe = nil // no floor to probe: the ratio column stays empty
	}
	doc := measurePeers(systems, *rounds, z, *quiet, probe)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench peers: interrupted; nothing written")
		return 130
	}
	return finishPeers(doc, *out, *plots)
}

// peersCtx ends the peer processes of a measurement when bench peers is
// interrupted.
var peersCtx = context.Background()

// finishPeers prints the table, writes the results file (unless out is
// empty) and draws the plots.
func finishPeers(doc *peersDoc, out, plots string) int {
	fmt.Print(peersTable(doc))
	if out != "" {
		data, _ := json.MarshalIndent(doc, "", "  ")
		if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench peers:", err)
			return 1
		}
		fmt.Println("\nwrote", out)
	}
	files, err := savePeerPlots(doc, plots)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench peers: plot:", err)
		return 1
	}
	fmt.Println("wrote", strings.Join(files, ", "))
	return 0
}

// probeRoundTrips is the length of the floor probe before each system's
// round trips (a few milliseconds).
const probeRoundTrips = 20_000

// measurePeers runs the rounds and summarises them. probe, if not nil,
// measures the cache-line floor's p50 just before each system's round
// trips.
func measurePeers(systems []system, rounds int, z peerSizes, quiet time.Duration, probe func() (float64, error)) *peersDoc {
	doc := &peersDoc{Machine: machine(), Sizes: z, Method: map[string]any{
		"rounds":        rounds,
		"message_bytes": 64,
		"order":         "every round runs every system once; round r starts at the r-th system (rotation)",
		"pinning":       "ping/publisher thread on CPU 0, echo/subscriber thread on CPU 1",
		"clock":         "CLOCK_MONOTONIC around each round trip, in the ping process",
		"percentiles":   "sorted[min(n-1, floor(q*n))] of one run; the table shows each figure's median over rounds",
		"floor_probe":   fmt.Sprintf("the cache-line floor's p50 over %d round trips, just before each system's round trips; rtt_p50_per_floor is p50 / that", probeRoundTrips),
		"stream":        "messages after the first stream_warmup (Tachyon's own streams: from the first)",
	}}
	doc.Machine["load_before"] = loadAverage()
	if l := doc.Machine["load_before"].([]float64); len(l) > 0 && l[0] > 1 {
		fmt.Fprintf(os.Stderr, "bench peers: load average %.2f: something else is running; figures will be noisy\n", l[0])
	}
	defer removeLeftovers(leftovers())()
	res := make([]systemResult, len(systems))
	var run []int // the systems that can be measured here
	for i, s := range systems {
		res[i] = systemResult{Key: s.Key, Label: s.Label, Notes: s.Notes, Missing: s.missing}
		if s.missing == "" {
			run = append(run, i)
		} else {
			fmt.Fprintf(os.Stderr, "bench peers: %s: not measured: %s\n", s.Label, s.missing)
		}
	}
	for r := range rounds {
		doc.Busy = append(doc.Busy, awaitQuiet(quiet))
		var order []string
		for k := range run {
			if peersCtx.Err() != nil {
				return doc
			}
			i := run[(k+r)%len(run)]
			s := systems[i]
			order = append(order, s.Key)
			tag := fmt.Sprintf("%d-%s-%d", os.Getpid(), s.Key, r)
			fmt.Fprintf(os.Stderr, "bench peers: round %d/%d: %s\n", r+1, rounds, s.Label)
			var pr peerRound
			if s.rtt != nil && probe != nil {
				if f, err := probe(); err == nil {
					pr.FloorP50 = f
				} else {
					pr.Errors = append(pr.Errors, "floor probe: "+err.Error())
				}
			}
			if s.rtt != nil {
				l, err := s.rtt(tag, z)
				if err != nil {
					pr.Errors = append(pr.Errors, "round trip: "+err.Error())
				} else {
					pr.RTT = &rttStats{P50: l.P50, P90: l.P90, P99: l.P99, P999: l.P999, Max: l.Max}
				}
			}
			if s.stream != nil {
				rate, err := s.stream(tag, z)
				if err != nil {
					pr.Errors = append(pr.Errors, "stream: "+err.Error())
				} else {
					pr.MsgsPerS = rate
				}
			}
			for _, e := range pr.Errors {
				fmt.Fprintf(os.Stderr, "bench peers: %s: %s\n", s.Label, e)
			}
			res[i].Rounds = append(res[i].Rounds, pr)
		}
		doc.Order = append(doc.Order, order)
	}
	for i := range res {
		summarize(&res[i])
	}
	doc.Systems = res
	doc.Machine["load_after"] = loadAverage()
	return doc
}

// quietBusy is the share of CPU time in use below which the machine counts
// as idle: a benchmark's two spinning processes want both CPUs.
const quietBusy = 0.15

// busyWindow is how long cpuBusy watches the CPUs.
var busyWindow = time.Second

// awaitQuiet waits up to limit for the CPUs to be idle and returns the last
// share of CPU time found in use, over busyWindow (0 where unknown).
func awaitQuiet(limit time.Duration) float64 {
	deadline := time.Now().Add(limit)
	for {
		busy, ok := cpuBusy(busyWindow)
		if !ok || busy < quietBusy || time.Now().After(deadline) {
			if busy >= quietBusy {
				fmt.Fprintf(os.Stderr, "bench peers: the CPUs are %.0f%% busy with other work: figures will be noisy\n", 100*busy)
			}
			return busy
		}
	}
}

// cpuBusy is the share of CPU time not idle over d, from /proc/stat.
func cpuBusy(d time.Duration) (float64, bool) {
	sample := func() (idle, total float64, ok bool) {
		data, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, false
		}
		f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]) // cpu user nice system idle iowait ...
		if len(f) < 5 || f[0] != "cpu" {
			return 0, 0, false
		}
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
			if i == 3 || i == 4 { // idle, iowait
				idle += x
			}
		}
		return idle, total, true
	}
	i0, t0, ok0 := sample()
	time.Sleep(d)
	i1, t1, ok1 := sample()
	if !ok0 || !ok1 || t1 <= t0 {
		return 0, false
	}
	return 1 - (i1-i0)/(t1-t0), true
}

// leftovers are what the peers may leave behind: the files iceoryx2 keeps
// after its last node has gone (a global management segment in /dev/shm,
// its /tmp/iceoryx2 directory), and this run's rings that a killed
// publisher could not unlink (their names carry this process's id).
func leftovers() []string {
	paths, _ := filepath.Glob("/dev/shm/iox2_*")
	rings, _ := filepath.Glob("/dev/shm/tachyon-bench-*")
	mine := fmt.Sprintf("-%d-", os.Getpid())
	for _, r := range rings {
		if strings.Contains(r, mine) {
			paths = append(paths, r)
		}
	}
	if _, err := os.Stat("/tmp/iceoryx2"); err == nil {
		paths = append(paths, "/tmp/iceoryx2")
	}
	return paths
}

// removeLeftovers returns the function that removes the leftovers that were
// not there before: every peer process of the run has exited by then.
func removeLeftovers(before []string) func() {
	return func() {
		for _, p := range leftovers() {
			if !slices.Contains(before, p) {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// summarize sets a system's median, min and max over its rounds; a system
// that failed every round gets its first error as the reason it is missing.
func summarize(s *systemResult) {
	var p50, p99, p999, rate, perFloor []float64
	for _, r := range s.Rounds {
		if r.RTT != nil {
			p50, p99, p999 = append(p50, r.RTT.P50), append(p99, r.RTT.P99), append(p999, r.RTT.P999)
			if r.FloorP50 > 0 {
				perFloor = append(perFloor, r.RTT.P50/r.FloorP50)
			}
		}
		if r.MsgsPerS > 0 {
			rate = append(rate, r.MsgsPerS)
		}
	}
	if len(p50)+len(rate) == 0 {
		if s.Missing == "" && len(s.Rounds) > 0 && len(s.Rounds[0].Errors) > 0 {
			s.Missing = s.Rounds[0].Errors[0]
		}
		return
	}
	pick := func(f func([]float64) float64) *figures {
		return &figures{RTTP50: f(p50), RTTP99: f(p99), RTTP999: f(p999), MsgsPerS: f(rate), RTTP50PerFloor: f(perFloor)}
	}
	s.Median, s.Min, s.Max = pick(median), pick(minOf), pick(maxOf)
}

// median is the middle value (the mean of the two middle ones for an even
// count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

// peersTable is the Markdown table of a run: medians with the min-max
// spread over rounds.
func peersTable(doc *peersDoc) string {
	var b strings.Builder
	rounds := doc.Method["rounds"]
	fmt.Fprintf(&b, "bench-peers: %v, %v CPUs, %v, %v rounds; load %v before, %v after\n\n", doc.Machine["cpu"],
		doc.Machine["cpus"], doc.Machine["date"], rounds, doc.Machine["load_before"], doc.Machine["load_after"])
	b.WriteString("| 64-byte messages | RTT p50 | RTT p50 ÷ floor beside it | RTT p99 | RTT p99.9 | one-way msgs/s |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range doc.Systems {
		if s.Median == nil {
			fmt.Fprintf(&b, "| %s | not measured: %s | | | | |\n", s.Label, strings.ReplaceAll(s.Missing, "|", "/"))
			continue
		}
		cell := func(f func(*figures) float64, format func(float64) string) string {
			if f(s.Median) == 0 {
				return "-"
			}
			return fmt.Sprintf("%s (%s-%s)", format(f(s.Median)), format(f(s.Min)), format(f(s.Max)))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.Label,
			cell(func(f *figures) float64 { return f.RTTP50 }, nsCell),
			cell(func(f *figures) float64 { return f.RTTP50PerFloor }, func(v float64) string { return fmt.Sprintf("%.2f×", v) }),
			cell(func(f *figures) float64 { return f.RTTP99 }, nsCell),
			cell(func(f *figures) float64 { return f.RTTP999 }, nsCell),
			cell(func(f *figures) float64 { return f.MsgsPerS }, rateCell))
	}
	return b.String()
}

func nsCell(v float64) string {
	if v >= 10_000 {
		return fmt.Sprintf("%.1f µs", v/1000)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func rateCell(v float64) string { return fmt.Sprintf("%.1f M", v/1e6) }

// loadAverage is the 1, 5 and 15-minute load average (nil if unknown).
func loadAverage() []float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var l []float64
	for _, f := range strings.Fields(string(data))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		l = append(l, v)
	}
	return l
}

// streamCapacityPeers is the slot count of every stream of bench-peers, and
// what each peer's ring is sized to hold where it has the knob: as many
// messages as the ring of bench's Go->Go stream (sinkRun).
const streamCapacityPeers = 4096

// peerSystems are the rows of bench-peers, in the order the table shows.
// A system joins with one entry; a Tachyon client joins with tachyon(),
// given its PEERS.md peer (which must implement ping, echo, pub and sub
// with --pin).
func peerSystems(p peerPaths) []system {
	need := func(paths ...string) string {
		for _, path := range paths {
			if _, err := os.Stat(path); err != nil {
				return path + " is not built (make bench-peers builds it)"
			}
		}
		return ""
	}
	// needPeer is need for a peer of bench/peers/build.sh, which leaves the
	// reason a peer did not build in NAME.error.
	needPeer := func(name string, paths ...string) string {
		m := need(paths...)
		if e, err := os.ReadFile(filepath.Join(p.errDir, name+".error")); m != "" && err == nil {
			return strings.Join(strings.Fields(string(e)), " ")
		}
		return m
	}
	gp := peers.Peer{Lang: "go", Argv: []string{p.gopeer}}
	cp := peers.Peer{Lang: "cpp", Argv: []string{p.cpppeer}}
	rp := peers.Peer{Lang: "rust", Argv: []string{p.rustpeer}}
	tachyon := func(key, label, notes string, pub, sub peers.Peer) system {
		return system{Key: key, Label: label, Notes: notes, missing: need(pub.Argv[0], sub.Argv[0]),
			rtt:    func(tag string, z peerSizes) (Latency, error) { return tachyonRTT(pub, sub, tag, z) },
			stream: func(tag string, z peerSizes) (float64, error) { return tachyonStream(pub, sub, tag, z) }}
	}
	peerWork := "stream: the interop peers (PEERS.md): recv copies each message out, every payload byte generated and checked"
	aeronArgv := []string{}
	aeronMissing := needPeer("aeron", filepath.Join(p.aeronDir, "classpath.txt"), filepath.Join(p.aeronDir, "classes"))
	if aeronMissing == "" {
		cp, _ := os.ReadFile(filepath.Join(p.aeronDir, "classpath.txt"))
		// The JVM options of the Aeron samples' scripts (java-common, ping, pong).
		aeronArgv = []string{p.java, "-XX:+UnlockExperimentalVMOptions", "-XX:+TrustFinalNonStaticFields",
			"-XX:+UnlockDiagnosticVMOptions", "-XX:GuaranteedSafepointInterval=300000", "-XX:+UseParallelGC",
			"--add-opens", "java.base/jdk.internal.misc=ALL-UNNAMED", "--add-opens", "java.base/java.util.zip=ALL-UNNAMED",
			"-Dagrona.disable.bounds.checks=true", "-Daeron.pre.touch.mapped.memory=true",
			"-cp", filepath.Join(p.aeronDir, "classes") + ":" + strings.TrimSpace(string(cp)), "io.tachyon.bench.AeronPeer"}
		if _, err := exec.LookPath(p.java); err != nil {
			aeronMissing = "no " + p.java + " on PATH"
		}
	}
	external := func(key, label, notes string, argv []string, missing string) system {
		return system{Key: key, Label: label, Notes: notes, missing: missing,
			rtt:    func(tag string, z peerSizes) (Latency, error) { return externalRTT(argv, tag, z) },
			stream: func(tag string, z peerSizes) (float64, error) { return externalStream(argv, tag, z) }}
	}
	return []system{
		{Key: "floor", Label: "C floor: cache line, SPSC ring", missing: need(p.floorPP, p.floorSPSC),
			Notes: "round trip: a counter bounced in one cache line (floor_pingpong.c); stream: the C SPSC ring of the seed's ABI v2 slot (" +
				seedFloor.layout + "), batch 64 (floor_spsc.c)",
			rtt: func(_ string, z peerSizes) (Latency, error) {
				return floorRTT(p.floorPP, "floor_rtt_", z)
			},
			stream: func(_ string, z peerSizes) (float64, error) {
				obj, err := runJSON(p.floorSPSC, append(slices.Clone(seedFloor.spsc), "--count", fmt.Sprint(z.StreamMsgs), "--runs", "1")...)
				return obj["floor_ring_msgs_per_s"], err
			}},
		{Key: "protocol_floor", Label: "C protocol floor: ABI v2 " + seedFloor.layout + " slots", missing: need(p.floorPP),
			Notes: "round trip: ABI v2's slot exchange (asymmetric fences, the seed message's default slot layout) hand-coded in C (floor_pingpong.c " +
				strings.Join(seedFloor.pingpong, " ") + "): the bound of any v2 client",
			rtt: func(_ string, z peerSizes) (Latency, error) {
				return floorRTT(p.floorPP, "protocol_floor_rtt_", z, seedFloor.pingpong...)
			}},
		func() system {
			s := tachyon("tachyon_go_go", "Tachyon Go<->Go", "", gp, gp)
			s.Notes = "round trip: bench's in-process ping (as make bench) and the Go peer's echo; stream: Claim/Commit -> BorrowBatch, batch 64, 64 B written and every seq checked (as make bench's go_go_msgs_per_s)"
			s.stream = func(tag string, z peerSizes) (float64, error) {
				return sinkRun("tachyon-bench-peers-"+tag, z.StreamMsgs)
			}
			return s
		}(),
		tachyon("tachyon_go_cpp", "Tachyon Go<->C++", "round trip: bench's in-process Go ping, the C++ peer's echo; "+peerWork, gp, cp),
		tachyon("tachyon_cpp_cpp", "Tachyon C++<->C++", "round trip: the C++ peer's ping and echo; "+peerWork, cp, cp),
		tachyon("tachyon_rust_rust", "Tachyon Rust<->Rust", "round trip: the Rust peer's ping and echo; stream: the interop peers "+
			"(PEERS.md): borrow_batch views of 64 messages, every payload byte generated and checked in place", rp, rp),
		external("aeron", "Aeron "+pomVersion(p.pom, "aeron.version")+" IPC (Java)",
			"bench/peers/aeron: the samples' Ping/Pong (exclusive publications, offer, fragment limit 10), embedded driver (shared threading) in the echo/subscriber; 32-byte frame header per message",
			aeronArgv, aeronMissing),
		external("riyaneel", "riyaneel Tachyon "+lockedVersion(p.cargoLock, "tachyon-ipc")+" (C++)",
			"bench/peers/rust/riyaneel: tachyon-ipc ping-pong as its bench_ipc example; stream: batches of 32 (tachyon_drain_batch); 64-byte header per message, indices published once per 32",
			[]string{p.riyaneel}, needPeer("riyaneel", p.riyaneel)),
		external("iceoryx2", "iceoryx2 "+lockedVersion(p.cargoLock, "iceoryx2")+" (Rust)",
			"bench/peers/rust/iceoryx2: its benchmarks/publish-subscribe (two services, [u8] slices, busy-polled receive) across two processes; samples loaned and returned through queues",
			[]string{p.iceoryx2}, needPeer("iceoryx2", p.iceoryx2)),
	}
}

// tachyonRTT times round trips from pub's side to sub's echo: in this
// process when the ping side is Go (bench's ringPingPong, the figure make
// bench reports), else through the peer's ping verb.
func tachyonRTT(ping, echo peers.Peer, tag string, z peerSizes) (Latency, error) {
	if ping.Lang == "go" {
		return ringPingPong(echo.Argv, "peers-"+tag, z.RoundTrips, z.RTTWarmup, 0)
	}
	base := "tachyon-bench-peers-" + tag
	rings := []string{"--ping", base + "-ping", "--pong", base + "-pong", "--timeout-s", "30"}
	_, obj, err := pair(append(append(slices.Clone(echo.Argv), "echo", "--pin", "1"), rings...),
		append(append(slices.Clone(ping.Argv), "ping", "--pin", "0", "--count", fmt.Sprint(z.RoundTrips),
			"--warmup", fmt.Sprint(z.RTTWarmup)), rings...))
	if err != nil {
		return Latency{}, err
	}
	return latencyFrom(obj, "rtt_")
}

// tachyonStream streams z.StreamMsgs messages from one peer to another
// through the interop harness, both pinned, every message checked.
func tachyonStream(pub, sub peers.Peer, tag string, z peerSizes) (float64, error) {
	return streamRate(peers.Run{Ring: "tachyon-bench-peers-" + tag, Count: z.StreamMsgs, Pub: pub,
		Subs: []peers.Sub{{Peer: sub}}, Capacity: streamCapacityPeers, Pin: true})
}

// floorRTT runs the C ping-pong floor once and reads its percentiles.
func floorRTT(program, prefix string, z peerSizes, args ...string) (Latency, error) {
	obj, err := runJSON(program, append(args, "--iterations", fmt.Sprint(z.RoundTrips), "--warmup", fmt.Sprint(z.RTTWarmup))...)
	if err != nil {
		return Latency{}, err
	}
	return latencyFrom(obj, prefix)
}

// externalRTT runs a peer of the bench/peers contract: its echo on CPU 1,
// then its ping on CPU 0, which prints the percentiles.
func externalRTT(argv []string, tag string, z peerSizes) (Latency, error) {
	name := []string{"--name", "tbp-" + tag, "--timeout-s", "30"}
	_, obj, err := pair(append(append(slices.Clone(argv), "echo", "--pin", "1"), name...),
		append(append(slices.Clone(argv), "ping", "--pin", "0", "--count", fmt.Sprint(z.RoundTrips),
			"--warmup", fmt.Sprint(z.RTTWarmup)), name...))
	if err != nil {
		return Latency{}, err
	}
	return latencyFrom(obj, "rtt_")
}

// externalStream runs a peer's subscriber on CPU 1, then its publisher on
// CPU 0, and returns the rate the subscriber measured.
func externalStream(argv []string, tag string, z peerSizes) (float64, error) {
	total := fmt.Sprint(z.StreamMsgs + z.StreamWarmup)
	name := []string{"--name", "tbp-" + tag + "-s", "--timeout-s", "30", "--count", total}
	obj, _, err := pair(append(append(slices.Clone(argv), "sub", "--pin", "1", "--warmup", fmt.Sprint(z.StreamWarmup)), name...),
		append(append(slices.Clone(argv), "pub", "--pin", "0"), name...))
	if err != nil {
		return 0, err
	}
	rate, ok := obj["msgs_per_s"]
	if !ok || rate <= 0 {
		return 0, fmt.Errorf("%s sub: no msgs_per_s in %v", argv[0], obj)
	}
	return rate, nil
}

// latencyFrom reads PREFIXp50_ns .. PREFIXmax_ns.
func latencyFrom(obj map[string]float64, prefix string) (Latency, error) {
	l := Latency{P50: obj[prefix+"p50_ns"], P90: obj[prefix+"p90_ns"], P99: obj[prefix+"p99_ns"],
		P999: obj[prefix+"p999_ns"], Max: obj[prefix+"max_ns"]}
	if l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 {
		return Latency{}, fmt.Errorf("no %sp50_ns..p999_ns percentiles in %v", prefix, obj)
	}
	return l, nil
}

// pairTimeout bounds one measurement between two processes.
const pairTimeout = 3 * time.Minute

// pair starts server (an echo or a subscriber), then client (a ping or a
// publisher), waits for both and returns the numbers of the JSON object
// each printed last (nil for one that printed none).
func pair(server, client []string) (map[string]float64, map[string]float64, error) {
	ctx, cancel := context.WithTimeout(peersCtx, pairTimeout)
	defer cancel()
	start := func(argv []string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = time.Second
		return cmd, &stdout, &stderr, cmd.Start()
	}
	sc, sout, serr, err := start(server)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", strings.Join(server, " "), err)
	}
	cc, cout, cerr, err := start(client)
	if err != nil {
		cancel()
		_ = sc.Wait()
		return nil, nil, fmt.Errorf("%s: %w", strings.Join(client, " "), err)
	}
	var errs []error
	if err := cc.Wait(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %v: %s", filepath.Base(client[0])+" "+client[1], err, lastLine(cerr.String())))
		cancel() // the server would wait for a client that is gone
	}
	if err := sc.Wait(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %v: %s", filepath.Base(server[0])+" "+server[1], err, lastLine(serr.String())))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	s, errS := numbers(sout.Bytes())
	c, errC := numbers(cout.Bytes())
	if s == nil && c == nil {
		return nil, nil, errors.Join(errS, errC)
	}
	return s, c, nil
}

// runJSON runs a program that prints a JSON object (its last line) and
// returns its numbers.
func runJSON(program string, args ...string) (map[string]float64, error) {
	cmd := exec.Command(program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", program, err, lastLine(stderr.String()))
	}
	return numbers(stdout.Bytes())
}

// numbers parses the last line of out as a JSON object and keeps its numbers.
func numbers(out []byte) (map[string]float64, error) {
	var obj map[string]any
	if err := json.NewDecoder(strings.NewReader(lastLine(string(out)))).Decode(&obj); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("output is not a JSON object: %q", lastLine(string(out)))
	}
	if obj == nil {
		return nil, errors.New("no output")
	}
	m := map[string]float64{}
	for k, v := range obj {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	return m, nil
}

// lockedVersion is a crate's version in a Cargo.lock ("?" if not found).
func lockedVersion(lockFile, crate string) string {
	data, _ := os.ReadFile(lockFile)
	m := regexp.MustCompile(`(?m)^name = "` + regexp.QuoteMeta(crate) + `"\nversion = "([^"]+)"`).FindSubmatch(data)
	if m == nil {
		return "?"
	}
	return string(m[1])
}

// pomVersion is a property of a pom.xml ("?" if not found).
func pomVersion(pom, property string) string {
	data, _ := os.ReadFile(pom)
	m := regexp.MustCompile(`<` + regexp.QuoteMeta(property) + `>([^<]+)</`).FindSubmatch(data)
	if m == nil {
		return "?"
	}
	return string(m[1])
}
