// Command gopeer is the Go interop peer of examples/pipeline/PEERS.md: it
// publishes or subscribes the seed message on a named ring and prints a
// one-line JSON summary.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "pub" && os.Args[1] != "sub" && os.Args[1] != "echo" && os.Args[1] != "ping") {
		fmt.Fprintln(os.Stderr, "usage: gopeer pub|sub --ring NAME [flags] | gopeer echo|ping --ping NAME --pong NAME [flags] (see examples/pipeline/PEERS.md)")
		os.Exit(2)
	}
	role := os.Args[1]
	fs := flag.NewFlagSet("gopeer "+role, flag.ContinueOnError)
	name := fs.String("ring", "", "ring name")
	count := fs.Int64("count", 0, "messages to publish (pub), stop after (sub; 0 = until closed) or time (ping)")
	warmup := fs.Int64("warmup", 0, "untimed round trips before the timed ones (ping)")
	capacity := fs.Int("capacity", 4096, "ring capacity (pub)")
	policy := fs.String("policy", "block", "block, drop_newest or drop_oldest (pub)")
	maxSubs := fs.Int("max-subscribers", 8, "subscriber table size (pub)")
	waitSubs := fs.Int("wait-subscribers", 1, "subscribers to wait for before publishing (pub)")
	batch := fs.Int("batch", 64, "index publication batch (pub)")
	maxLag := fs.Int("max-lag", 0, "max lag; 0 = unlimited (sub)")
	slowUs := fs.Int("slow-us", 0, "sleep after every message, in microseconds (sub)")
	latency := fs.Bool("latency", false, "measure publish-to-receive latency from timestamp_ns (sub)")
	hangMidClaim := fs.Bool("hang-mid-claim", false, "fault injection (pub): after --count messages, claim one more, half-write it and hang until killed")
	timeout := fs.Float64("timeout-s", 30, "give up after this many seconds")
	ping := fs.String("ping", "", "ring to echo from (echo), or to ping on, created (ping)")
	pong := fs.String("pong", "", "ring to echo to, created (echo), or to receive the echo from (ping)")
	cpu := fs.Int("pin", -1, "pin the publishing, receiving or echoing thread to this CPU")
	sealed := fs.String("sealed", "", "sealed mode: serve the ring (pub) or dial it (sub) on the Unix socket at this path")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if role == "echo" || role == "ping" {
		if *ping == "" || *pong == "" {
			fmt.Fprintf(os.Stderr, "gopeer: %s needs --ping and --pong\n", role)
			os.Exit(2)
		}
		limit := time.Duration(*timeout * float64(time.Second))
		var summary map[string]any
		var err error
		if role == "echo" {
			summary, err = echo(*ping, *pong, *cpu, limit)
		} else if *count < 1 || *warmup < 0 {
			fmt.Fprintln(os.Stderr, "gopeer: ping needs --count >= 1 and --warmup >= 0")
			os.Exit(2)
		} else {
			summary, err = pingPong(*ping, *pong, *count, *warmup, *cpu, limit)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "gopeer:", err)
			os.Exit(1)
		}
		summary["lang"], summary["role"], summary["ring"] = "go", role, *ping
		out, _ := json.Marshal(summary)
		fmt.Println(string(out))
		return
	}
	if *name == "" {
		fmt.Fprintln(os.Stderr, "gopeer: --ring is required")
		os.Exit(2)
	}
	limit := time.Duration(*timeout * float64(time.Second))
	var summary map[string]any
	var err error
	if role == "pub" {
		var p ring.Policy
		switch *policy {
		case "block":
			p = ring.Block
		case "drop_newest":
			p = ring.DropNewest
		case "drop_oldest":
			p = ring.DropOldest
		default:
			fmt.Fprintf(os.Stderr, "gopeer: unknown policy %q\n", *policy)
			os.Exit(2)
		}
		summary, err = publish(*name, *sealed, *count, ring.Options{Capacity: *capacity, MaxSubscribers: *maxSubs,
			Policy: p, Batch: *batch, Timeout: limit}, *waitSubs, limit, *hangMidClaim, *cpu)
	} else {
		summary, err = subscribe(*name, *sealed, *count, *maxLag, time.Duration(*slowUs)*time.Microsecond, limit, *latency, *cpu)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopeer:", err)
		os.Exit(1)
	}
	summary["lang"], summary["role"], summary["ring"] = "go", role, *name
	out, _ := json.Marshal(summary)
	fmt.Println(string(out))
}

// patterns[b] is the payload of every message whose seq*131 mod 256 is b:
// payload[i] = (seq*131 + i*7) mod 256 depends on seq only through that
// byte, so filling and checking a payload is one 48-byte copy or compare.
var patterns = func() (p [256][48]byte) {
	for b := range p {
		for i := range p[b] {
			p[b][i] = byte(b + i*7)
		}
	}
	return p
}()

// clockEvery is how often the publisher reads the clock: time.Now costs
// ~50 ns here, half of a message's budget. A timestamp up to 15 messages
// old (well under a microsecond at full rate) only makes a subscriber's
// latency figure larger, never smaller.
const clockEvery = 16

// fill writes message seq as PEERS.md defines it.
func fill(m *market.Message, seq uint64, now *uint64) {
	if seq%clockEvery == 0 {
		*now = uint64(time.Now().UnixNano())
	}
	m.Seq = seq
	m.TimestampNs = *now
	m.Payload = patterns[byte(seq*131)]
}

func intact(m *market.Message) bool { return m.Payload == patterns[byte(m.Seq*131)] }

// pin locks the calling goroutine to its thread and, for cpu >= 0 on a
// machine with two or more CPUs, the thread to cpu (modulo the CPU count).
func pin(cpu int) {
	runtime.LockOSThread()
	if cpu >= 0 && runtime.NumCPU() > 1 {
		var set unix.CPUSet
		set.Set(cpu % runtime.NumCPU())
		_ = unix.SchedSetaffinity(0, &set)
	}
}

// create makes the ring: named, or sealed and served on the Unix socket at
// sockPath until stop is called.
func create(name, sockPath string, opts ring.Options) (pub *ring.Publisher[market.Message], stop func(), err error) {
	if sockPath == "" {
		pub, err = ring.Create[market.Message](name, opts)
		return pub, func() {}, err
	}
	pub, err = ring.CreateSealed[market.Message](name, opts)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := pub.Serve(ln); err != nil {
			fmt.Fprintln(os.Stderr, "gopeer: serve:", err)
		}
	}()
	return pub, func() { _ = ln.Close(); <-served }, nil
}

func publish(name, sockPath string, count int64, opts ring.Options, waitSubs int, limit time.Duration, hangMidClaim bool, cpu int) (map[string]any, error) {
	pub, stop, err := create(name, sockPath, opts)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// Registered subscribers receive every message published from now on
	// (ABI.md §8.4, "Registered").
	if err := pub.WaitSubscribers(ctx, waitSubs); err != nil {
		return nil, err
	}
	if cpu >= 0 {
		pin(cpu)
	}
	start := time.Now()
	var now uint64
	for seq := range uint64(count) {
		m, err := pub.Claim()
		if errors.Is(err, ring.ErrFull) {
			continue // drop_newest: refused and counted by the ring
		}
		if err != nil {
			return nil, fmt.Errorf("publish %d: %w", seq, err)
		}
		fill(m, seq, &now)
		if err := pub.Commit(); err != nil {
			return nil, fmt.Errorf("commit %d: %w", seq, err)
		}
	}
	pub.Flush()
	if hangMidClaim {
		// Die mid-write: a claimed slot, half filled, never committed.
		m, err := pub.Claim()
		if err != nil {
			return nil, fmt.Errorf("claim %d: %w", count, err)
		}
		fill(m, uint64(count), &now)
		m.Payload[0] ^= 0xff
		fmt.Fprintln(os.Stderr, "gopeer: claimed, hanging until killed")
		select {}
	}
	secs := time.Since(start).Seconds()
	return map[string]any{"published": pub.Published(), "dropped": pub.Dropped(), "seconds": secs,
		"msgs_per_s": float64(count) / secs}, nil
}

// attach retries until the ring (or the sealed ring's socket) exists and is
// ready, up to the deadline.
func attach(name, sockPath string, opts ring.SubscribeOptions, deadline time.Time) (*ring.Subscriber[market.Message], error) {
	for {
		var sub *ring.Subscriber[market.Message]
		var err error
		if sockPath != "" {
			sub, err = ring.DialSealed[market.Message](sockPath, opts)
		} else {
			sub, err = ring.Attach[market.Message](name, opts)
		}
		if err == nil {
			return sub, nil
		}
		retry := errors.Is(err, ring.ErrNotFound) || errors.Is(err, ring.ErrNotReady) ||
			sockPath != "" && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED))
		if !retry || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(time.Millisecond)
	}
}

// echo republishes every message of ping on pong until ping's publisher
// closes: the far end of a round-trip measurement.
func echo(ping, pong string, cpu int, limit time.Duration) (map[string]any, error) {
	pin(cpu)
	out, err := ring.Create[market.Message](pong, ring.Options{Capacity: 64, Batch: 1})
	if err != nil {
		return nil, err
	}
	defer out.Close()
	in, err := attach(ping, "", ring.SubscribeOptions{}, time.Now().Add(limit))
	if err != nil {
		return nil, err
	}
	defer in.Close()
	start := time.Now()
	var echoed int64
	for m, err := range in.Messages(context.Background()) {
		if err != nil {
			if errors.Is(err, ring.ErrClosed) {
				break
			}
			return nil, err
		}
		if err := out.Publish(m); err != nil {
			return nil, fmt.Errorf("echo %d: %w", echoed, err)
		}
		echoed++
	}
	return map[string]any{"echoed": echoed, "seconds": time.Since(start).Seconds()}, nil
}

// pingPong is the near end of a round-trip measurement (PEERS.md "ping"):
// it publishes seq = i on ping, receives the echo's copy on pong, and times
// each of warmup+count round trips with the monotonic clock; then it closes
// ping (the echo stops) and reports the percentiles of the last count.
func pingPong(ping, pong string, count, warmup int64, cpu int, limit time.Duration) (map[string]any, error) {
	out, err := ring.Create[market.Message](ping, ring.Options{Capacity: 64, Batch: 1, Timeout: limit})
	if err != nil {
		return nil, err
	}
	defer out.Close()
	deadline := time.Now().Add(limit)
	in, err := attach(pong, "", ring.SubscribeOptions{}, deadline)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := out.WaitSubscribers(ctx, 1); err != nil {
		return nil, err
	}
	pin(cpu)
	rtts := make([]int64, count)
	var back market.Message
	for i := range uint64(warmup + count) {
		t0 := nanotime()
		m, err := out.Claim()
		if err != nil {
			return nil, fmt.Errorf("ping %d: %w", i, err)
		}
		m.Seq = i
		if err := out.Commit(); err != nil {
			return nil, fmt.Errorf("ping %d: %w", i, err)
		}
		if err := in.Recv(ctx, &back); err != nil || back.Seq != i {
			return nil, fmt.Errorf("ping %d: receive: %v (seq %d)", i, err, back.Seq)
		}
		if t := nanotime() - t0; i >= uint64(warmup) {
			rtts[i-uint64(warmup)] = t
		}
	}
	_ = out.Close() // the echo stops
	slices.Sort(rtts)
	q := func(p float64) int64 { return rtts[min(len(rtts)-1, int(p*float64(len(rtts))))] }
	return map[string]any{"round_trips": len(rtts), "rtt_p50_ns": q(0.50), "rtt_p90_ns": q(0.90), "rtt_p99_ns": q(0.99),
		"rtt_p999_ns": q(0.999), "rtt_max_ns": rtts[len(rtts)-1]}, nil
}

func subscribe(name, sockPath string, count int64, maxLag int, slow, limit time.Duration, latency bool, cpu int) (map[string]any, error) {
	deadline := time.Now().Add(limit)
	sub, err := attach(name, sockPath, ring.SubscribeOptions{MaxLag: maxLag}, deadline)
	if err != nil {
		return nil, err
	}
	if cpu >= 0 {
		pin(cpu)
	}
	defer sub.Close()
	var received, gaps, torn, reordered, maxLatency int64
	first, last := int64(-1), int64(-1)
	var start time.Time
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(limit))
	defer cancel()
	for m, err := range sub.Messages(ctx) {
		if err != nil {
			if errors.Is(err, ring.ErrOverwritten) {
				continue // lossy reader lapped mid-read: counted as dropped by the ring
			}
			return nil, err
		}
		if received == 0 {
			start = time.Now()
			first = int64(m.Seq)
		}
		seq := int64(m.Seq)
		switch {
		case last >= 0 && seq <= last:
			reordered++
		case last >= 0 && seq > last+1:
			gaps += seq - last - 1
		case last < 0 && seq > 0:
			gaps += seq
		}
		if !intact(m) {
			torn++
		}
		if latency {
			// timestamp_ns is the publisher's CLOCK_REALTIME at claim time.
			maxLatency = max(maxLatency, time.Now().UnixNano()-int64(m.TimestampNs))
		}
		last = max(last, seq)
		received++
		if slow > 0 {
			time.Sleep(slow)
		}
		if count > 0 && received >= count {
			break
		}
	}
	secs := 0.0
	if received > 0 {
		secs = time.Since(start).Seconds()
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(received) / secs
	}
	out := map[string]any{"received": received, "dropped": sub.Dropped(), "gaps": gaps, "torn": torn,
		"reordered": reordered, "first": first, "last": last, "seconds": secs, "msgs_per_s": rate}
	if latency {
		out["max_latency_ns"] = maxLatency
	}
	return out, nil
}
