package peers_test

// The interop matrix of issue 6: every publisher language × every subscriber
// language in separate processes, a four-language fan-out with a slow lossy
// reader, and a refused fingerprint from each language. The peers are built
// from source into a temporary directory, so the test checks the code in
// this checkout, not a stale binary.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// root is the repository root, from this file's position.
func root(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

var peerSet struct {
	once sync.Once
	set  peers.Set
	err  error
}

// peerPrograms builds the four peers once per test binary (peers.Build),
// into a directory removed when the process exits through TestMain.
func peerPrograms(t *testing.T) peers.Set {
	t.Helper()
	peerSet.once.Do(func() {
		dir, err := os.MkdirTemp("", "tachyon-interop-")
		if err != nil {
			peerSet.err = err
			return
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		peerSet.set, peerSet.err = peers.Build(root(t), dir)
	})
	if peerSet.err != nil {
		t.Fatal(peerSet.err)
	}
	return peerSet.set
}

// allPeers is every language's peer, Go first.
func allPeers(t *testing.T) []peers.Peer {
	s := peerPrograms(t)
	return []peers.Peer{s.Go, s.Cpp, s.Python, s.Rust}
}

var cleanup []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanup {
		f()
	}
	os.Exit(code)
}

func ringName(t *testing.T, tag string) string {
	name := fmt.Sprintf("t-interop-%d-%s", os.Getpid(), tag)
	t.Cleanup(func() {
		// Peers unlink what they own; a failed run may leave a ring behind.
		if err := ring.Remove(name); err != nil && !errors.Is(err, ring.ErrNotFound) {
			t.Logf("remove %s: %v", name, err)
		}
	})
	return name
}

// TestMatrix runs every publisher language against every subscriber
// language under Block: every message arrives, in order, intact.
func TestMatrix(t *testing.T) {
	all := allPeers(t)
	for _, pub := range all {
		for _, sub := range all {
			t.Run(pub.Lang+"_to_"+sub.Lang, func(t *testing.T) {
				const count = int64(1_000_000)
				run := peers.Run{Ring: ringName(t, pub.Lang+"-"+sub.Lang), Count: count, Pub: pub,
					Subs: []peers.Sub{{Peer: sub}}, Timeout: 90 * time.Second}
				res, err := peers.Execute(run)
				require.NoError(t, err)
				require.NoError(t, res.Check(run))
				s := res.Subs[0]
				assert.Equal(t, count, s.Received)
				assert.Equal(t, int64(0), s.First)
				assert.Equal(t, count-1, s.Last)
				t.Logf("%s -> %s: %d messages, %.2f M msgs/s", pub.Lang, sub.Lang, s.Received, s.MsgsPerS/1e6)
			})
		}
	}
}

// TestFanOut is one Go publisher feeding a subscriber of each language at
// once; in turn, each language plays the slow reader with a finite max_lag.
// The unlimited readers lose nothing; the slow one's drops equal its gaps.
func TestFanOut(t *testing.T) {
	all := allPeers(t)
	goPeer := all[0]
	for slow := range all {
		t.Run("slow_"+all[slow].Lang, func(t *testing.T) {
			run := peers.Run{Ring: ringName(t, "fan-"+all[slow].Lang), Count: 300_000, Pub: goPeer,
				Capacity: 1024, Timeout: 90 * time.Second}
			for i, p := range all {
				s := peers.Sub{Peer: p}
				if i == slow {
					s.MaxLag, s.SlowUs = 256, 20
				}
				run.Subs = append(run.Subs, s)
			}
			res, err := peers.Execute(run)
			require.NoError(t, err)
			require.NoError(t, res.Check(run))
			lossy := res.Subs[slow]
			assert.Positive(t, lossy.Dropped, "the slow reader should have been lapped")
			assert.Equal(t, lossy.Gaps, lossy.Dropped)
			for i, s := range res.Subs {
				if i != slow {
					assert.Equal(t, run.Count, s.Received, "%s subscriber", s.Lang)
				}
			}
			t.Logf("slow %s reader: received %d, dropped %d", lossy.Lang, lossy.Received, lossy.Dropped)
		})
	}
}

// TestFingerprintMismatch: a ring carrying market.Tape is refused by each
// language's seed-message subscriber, with an error that names the ring and
// both fingerprints.
func TestFingerprintMismatch(t *testing.T) {
	all := allPeers(t)
	name := ringName(t, "mismatch")
	pub, err := ring.Create[market.Tape](name, ring.Options{Capacity: 64})
	require.NoError(t, err)
	defer pub.Close()
	for _, p := range all {
		t.Run(p.Lang, func(t *testing.T) {
			argv := append(append([]string{}, p.Argv...), "sub", "--ring", name, "--timeout-s", "5")
			cmd := exec.Command(argv[0], argv[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the %s peer must refuse the ring", p.Lang)
			assert.Equal(t, 1, exit.ExitCode())
			msg := strings.ToLower(stderr.String())
			assert.Contains(t, msg, name)
			assert.Contains(t, msg, "fingerprint")
			assert.Contains(t, msg, fmt.Sprintf("%x", market.TapeFingerprint), "the ring's value")
			assert.Contains(t, msg, fmt.Sprintf("%x", market.MessageFingerprint), "the subscriber's value")
			assert.NotContains(t, msg, "traceback", "a clear error, not a stack trace")
			assert.NotContains(t, msg, "panic")
		})
	}
	st, err := ring.Inspect(name)
	require.NoError(t, err)
	for _, s := range st.Subscribers {
		assert.NotEqual(t, "active", s.State, "a refused subscriber must not hold an entry")
	}
}

// TestRustRingRefusedByAnotherType: the mismatch the other way round — a
// ring the Rust peer creates for market.Message is refused by a subscriber
// of another type, naming both fingerprints.
func TestRustRingRefusedByAnotherType(t *testing.T) {
	rust := peerPrograms(t).Rust
	name := ringName(t, "rust-mismatch")
	argv := append(append([]string{}, rust.Argv...), "pub", "--ring", name, "--count", "1", "--timeout-s", "20")
	pub := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	pub.Stderr = &stderr
	require.NoError(t, pub.Start())
	defer func() { _ = pub.Process.Kill(); _ = pub.Wait() }()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var sub *ring.Subscriber[market.Tape]
		if sub, err = ring.Attach[market.Tape](name, ring.SubscribeOptions{}); err == nil {
			sub.Close()
			t.Fatal("a Tape subscriber attached to a ring of market.Message")
		}
		if !errors.Is(err, ring.ErrNotFound) && !errors.Is(err, ring.ErrNotReady) {
			break
		}
	}
	require.ErrorIs(t, err, ring.ErrMismatch, "rust pub stderr: %s", stderr.String())
	assert.Contains(t, err.Error(), fmt.Sprintf("%#x", market.MessageFingerprint), "the ring's value")
	assert.Contains(t, err.Error(), fmt.Sprintf("%#x", market.TapeFingerprint), "the subscriber's value")
}

// TestPublisherKilledMidClaim: a Go publisher SIGKILLed holding a claimed,
// half-written slot. Every subscriber — Go, C++, Python and Rust — drains what was
// committed and then reports "publisher dead" instead of waiting for the
// claimed slot; the ring never published it. (That a reader never returns
// the half-written message is proven message by message in
// runtime/ring's TestPublisherDeathMidClaim.)
func TestPublisherKilledMidClaim(t *testing.T) {
	subs := allPeers(t)
	goPeer := subs[0]
	name := ringName(t, "midclaim")
	const count = 10_000
	type exited struct {
		lang   string
		err    error
		stderr string
	}
	results := make(chan exited, len(subs))
	for _, p := range subs {
		argv := append(append([]string{}, p.Argv...), "sub", "--ring", name, "--timeout-s", "30")
		cmd := exec.Command(argv[0], argv[1:]...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		go func() {
			err := cmd.Wait()
			results <- exited{p.Lang, err, stderr.String()}
		}()
	}
	pubArgv := append(append([]string{}, goPeer.Argv...), "pub", "--ring", name, "--count", fmt.Sprint(count),
		"--wait-subscribers", fmt.Sprint(len(subs)), "--timeout-s", "30", "--hang-mid-claim")
	pub := exec.Command(pubArgv[0], pubArgv[1:]...)
	pubErr, err := pub.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, pub.Start())
	t.Cleanup(func() { _ = pub.Process.Kill() })
	claimed := make(chan bool, 1)
	go func() {
		lines := bufio.NewScanner(pubErr)
		for lines.Scan() {
			if strings.Contains(lines.Text(), "claimed") {
				claimed <- true
				return
			}
		}
		claimed <- false
	}()
	select {
	case ok := <-claimed:
		require.True(t, ok, "the publisher exited before its claim")
	case <-time.After(30 * time.Second):
		t.Fatal("the publisher never reached its claim")
	}
	require.NoError(t, pub.Process.Kill())
	_ = pub.Wait()
	for range subs {
		select {
		case e := <-results:
			var exit *exec.ExitError
			require.ErrorAs(t, e.err, &exit, "%s subscriber: %s", e.lang, e.stderr)
			assert.Equal(t, 1, exit.ExitCode(), "%s subscriber", e.lang)
			assert.Contains(t, strings.ToLower(e.stderr), "dead", "%s subscriber says why", e.lang)
		case <-time.After(10 * time.Second):
			t.Fatal("a subscriber still hangs 10 s after its publisher died")
		}
	}
	st, err := ring.Inspect(name)
	require.NoError(t, err)
	assert.Equal(t, uint64(count), st.Producer.Published, "the claimed slot was never published")
	for _, s := range st.Subscribers {
		if s.State == "active" {
			assert.LessOrEqual(t, s.Head, uint64(count), "no subscriber read past the committed messages")
		}
	}
	require.NoError(t, ring.Remove(name))
}

// TestPublisherKilled: a Go publisher SIGKILLed mid-stream. Every
// subscriber — Go, C++, Python and Rust — reports "publisher dead" and exits 1
// within a few watchdog periods, instead of hanging.
func TestPublisherKilled(t *testing.T) {
	subs := allPeers(t)
	goPeer := subs[0]
	name := ringName(t, "killed")
	type exited struct {
		lang   string
		err    error
		stderr string
		stdout string
		at     time.Time
	}
	results := make(chan exited, len(subs))
	for _, p := range subs {
		argv := append(append([]string{}, p.Argv...), "sub", "--ring", name, "--timeout-s", "30")
		cmd := exec.Command(argv[0], argv[1:]...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		go func() {
			err := cmd.Wait()
			results <- exited{p.Lang, err, stderr.String(), stdout.String(), time.Now()}
		}()
	}
	pubArgv := append(append([]string{}, goPeer.Argv...), "pub", "--ring", name, "--count", "1000000000",
		"--wait-subscribers", fmt.Sprint(len(subs)), "--timeout-s", "30")
	pub := exec.Command(pubArgv[0], pubArgv[1:]...)
	require.NoError(t, pub.Start())
	// Wait until all of them are registered and the stream is flowing.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := ring.Inspect(name)
		if err == nil && st.Producer.Published > 100_000 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the stream never started")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, pub.Process.Kill())
	_ = pub.Wait()
	killed := time.Now()
	for range subs {
		select {
		case e := <-results:
			var exit *exec.ExitError
			require.ErrorAs(t, e.err, &exit, "%s subscriber: %s", e.lang, e.stderr)
			assert.Equal(t, 1, exit.ExitCode(), "%s subscriber", e.lang)
			assert.Contains(t, strings.ToLower(e.stderr), "dead", "%s subscriber says why", e.lang)
			assert.NotContains(t, strings.ToLower(e.stderr), "traceback")
			assert.Less(t, e.at.Sub(killed), 3*ring.Watchdog+time.Second, "%s subscriber noticed late", e.lang)
		case <-time.After(10 * time.Second):
			t.Fatal("a subscriber still hangs 10 s after its publisher died")
		}
	}
	require.NoError(t, ring.Remove(name))
}

// TestSealedMatrix runs the sealed mode (ABI.md §14) between the peers that
// implement it: the publisher serves a sealed memfd ring on a Unix socket,
// the subscriber dials it, checks its seals and registers; nothing appears
// in /dev/shm.
func TestSealedMatrix(t *testing.T) {
	s := peerPrograms(t)
	all := []peers.Peer{s.Go, s.Cpp, s.Python, s.Rust}
	for _, pub := range all {
		for _, sub := range all {
			t.Run(pub.Lang+"_to_"+sub.Lang, func(t *testing.T) {
				const count = int64(200_000)
				run := peers.Run{Ring: ringName(t, "sealed-"+pub.Lang+"-"+sub.Lang), Count: count, Pub: pub,
					Subs: []peers.Sub{{Peer: sub}}, Timeout: 60 * time.Second,
					Sealed: filepath.Join(t.TempDir(), "ring.sock")}
				res, err := peers.Execute(run)
				require.NoError(t, err)
				require.NoError(t, res.Check(run))
				assert.Equal(t, count, res.Subs[0].Received)
				_, err = os.Stat("/dev/shm/" + run.Ring)
				assert.True(t, os.IsNotExist(err), "a sealed ring leaves nothing in /dev/shm")
			})
		}
	}
}

// TestShortStreamBigRing: a stream far shorter than the ring, to a
// subscriber that registers late: the publisher waits until it is
// registered, so it gets seq 0 first (ABI.md §8.4, "Registered"; v1 could
// start it past the end).
func TestShortStreamBigRing(t *testing.T) {
	s := peerPrograms(t)
	for i := range 6 {
		pub := []peers.Peer{s.Go, s.Rust}[i%2]
		run := peers.Run{Ring: ringName(t, fmt.Sprint("short-", i)), Count: 100, Capacity: 65536, Pub: pub,
			Subs: []peers.Sub{{Peer: s.Go}, {Peer: s.Rust}}, Timeout: 30 * time.Second}
		res, err := peers.Execute(run)
		require.NoError(t, err)
		require.NoError(t, res.Check(run))
		for _, s := range res.Subs {
			require.Equal(t, int64(0), s.First)
			require.Equal(t, int64(100), s.Received)
		}
	}
}

// TestRoundTripMatrix runs each peer's ping (Go, C++, Rust: PEERS.md) against
// every peer's echo: each round trip must come back with its own seq, and
// the ping reports percentiles in the PEERS.md shape.
func TestRoundTripMatrix(t *testing.T) {
	all := allPeers(t)
	for _, ping := range all {
		if ping.Lang == "python" {
			continue // the Python peer has no ping (PEERS.md)
		}
		for _, echo := range all {
			t.Run(ping.Lang+"_"+echo.Lang, func(t *testing.T) {
				base := ringName(t, "rtt-"+ping.Lang+"-"+echo.Lang)
				rings := []string{"--ping", base + "-ping", "--pong", base + "-pong", "--timeout-s", "60"}
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				e := exec.CommandContext(ctx, echo.Argv[0], append(append(append([]string{}, echo.Argv[1:]...), "echo"), rings...)...)
				e.Env = append(os.Environ(), echo.Env...)
				var eout, eerr bytes.Buffer
				e.Stdout, e.Stderr = &eout, &eerr
				require.NoError(t, e.Start())
				p := exec.CommandContext(ctx, ping.Argv[0], append(append(append([]string{}, ping.Argv[1:]...),
					"ping", "--count", "2000", "--warmup", "100"), rings...)...)
				p.Env = append(os.Environ(), ping.Env...)
				out, err := p.Output()
				require.NoError(t, err, "ping: %s", exitStderr(err))
				require.NoError(t, e.Wait(), "echo: %s", eerr.String())
				var got struct {
					Role       string `json:"role"`
					RoundTrips int    `json:"round_trips"`
					P50        int64  `json:"rtt_p50_ns"`
					P99        int64  `json:"rtt_p99_ns"`
					Max        int64  `json:"rtt_max_ns"`
				}
				require.NoError(t, json.Unmarshal(bytes.TrimSpace(out), &got), "%s", out)
				assert.Equal(t, "ping", got.Role)
				assert.Equal(t, 2000, got.RoundTrips)
				assert.True(t, 0 < got.P50 && got.P50 <= got.P99 && got.P99 <= got.Max, "%+v", got)
				assert.Contains(t, eout.String(), `"echoed"`)
			})
		}
	}
}

// exitStderr is what a failed command wrote to stderr, if Output kept it.
func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
