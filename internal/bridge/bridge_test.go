package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/internal/bridgetest"
	"github.com/tachyon-io/tachyon/internal/natstest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

func TestMain(m *testing.M) {
	// TestClusterNodeKill runs cluster nodes as children of this binary.
	if asked, err := natstest.RunNodeIfAsked(); asked {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		os.Exit(1)
	}
	code := m.Run()
	if left := bridgetest.LeftRings(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: rings left behind: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// testLog logs to the test's output (-v), warnings and errors only unless
// TACHYON_BRIDGE_DEBUG is set.
func testLog(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("TACHYON_BRIDGE_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type pipeline struct {
	src, dst string
	url      []string
	stream   string
	out      OutConfig
	in       InConfig
}

func newPipeline(t *testing.T, urls ...string) *pipeline {
	p := &pipeline{src: bridgetest.RingName(t), dst: bridgetest.RingName(t), url: urls, stream: "T"}
	st := Stream{Name: p.stream, Create: true, Replicas: 1}
	conn := Conn{URLs: urls}
	p.out = OutConfig{Ring: p.src, Message: "market.Message", Stream: st, Conn: conn, ExitOnClose: true, AckTimeout: 2 * time.Second}
	id, err := ring.IdentityOf[market.Message]()
	require.NoError(t, err)
	p.in = InConfig{Ring: p.dst, Consumer: "in", Identity: &id, Message: "market.Message", Stream: st, Conn: conn,
		ExitOnClose: true, WaitSubscribers: 1, State: filepath.Join(t.TempDir(), "in.json"), Capacity: 1024}
	return p
}

// sized scales a test's message count down under the race detector, whose
// instrumentation slows the bridges and the NATS server several-fold.
func sized(n uint64) uint64 {
	if raceEnabled {
		return n / 10
	}
	return n
}

// runAsync runs a bridge side (RunOut or RunIn) and delivers its summary.
func runAsync[C, S any](t *testing.T, ctx context.Context, run func(context.Context, C, *slog.Logger) (S, error), cfg C) <-chan S {
	c := make(chan S, 1)
	go func() {
		s, err := run(ctx, cfg, testLog(t))
		assert.NoError(t, err, "%T", cfg)
		c <- s
	}()
	return c
}

func runOutAsync(t *testing.T, ctx context.Context, cfg OutConfig) <-chan OutSummary {
	return runAsync(t, ctx, RunOut, cfg)
}

func runInAsync(t *testing.T, ctx context.Context, cfg InConfig) <-chan InSummary {
	return runAsync(t, ctx, RunIn, cfg)
}

// TestEndToEnd: publisher -> ring -> out -> JetStream -> in -> ring ->
// subscriber, unpacked and packed: every sequence once, in order, intact;
// the stream's messages carry the identity headers and bytes unchanged.
func TestEndToEnd(t *testing.T) {
	url := bridgetest.StartServer(t)
	for _, pack := range []int{1, 16} {
		t.Run(fmt.Sprintf("pack=%d", pack), func(t *testing.T) {
			p := newPipeline(t, url)
			p.stream = fmt.Sprintf("E2E%d", pack)
			p.out.Stream.Name, p.in.Stream.Name = p.stream, p.stream
			p.out.Subject = "tachyon.e2e" + fmt.Sprint(pack)
			p.in.Subject = p.out.Subject
			p.out.Pack, p.out.Window = pack, 256
			n := sized(20_000)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			got := bridgetest.Subscribe(t, p.dst, 120*time.Second, 0)
			ins := runInAsync(t, ctx, p.in)
			outs := runOutAsync(t, ctx, p.out)
			require.NoError(t, <-bridgetest.PublishN(t, p.src, n, ring.Options{Capacity: 4096}, 0))
			o, i := <-outs, <-ins
			bridgetest.CheckExactlyOnce(t, <-got, n)
			assert.EqualValues(t, n, o.Published)
			// A pack never spans two windows, and a window is what was
			// there to borrow: at least n/pack NATS messages.
			assert.GreaterOrEqual(t, o.NATSMsgs, (n+uint64(pack)-1)/uint64(pack))
			assert.LessOrEqual(t, o.NATSMsgs, n)
			assert.Zero(t, o.Dropped)
			assert.EqualValues(t, n, i.Committed)
			assert.Zero(t, i.Gaps)
			assert.Zero(t, i.Refused)

			// One stored message, read back as a plain NATS user would.
			nc, err := nats.Connect(url)
			require.NoError(t, err)
			defer nc.Close()
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			s, err := js.Stream(ctx, p.stream)
			require.NoError(t, err)
			raw, err := s.GetMsg(ctx, 2)
			require.NoError(t, err)
			h := raw.Header
			assert.Len(t, h, 3, "three headers: %v", h)
			assert.Equal(t, "fingerprint=0x1b43e6c9e14a376c type=1 size=64 align=8 name=market.Message", h.Get(HdrMessage))
			var epoch, seq, count, window uint64
			_, err = fmt.Sscanf(h.Get(HdrSeq), "ring="+p.src+" epoch=%d seq=%d count=%d window=%d", &epoch, &seq, &count, &window)
			require.NoError(t, err, h.Get(HdrSeq))
			assert.Positive(t, seq, "the second message")
			assert.LessOrEqual(t, window, seq)
			assert.LessOrEqual(t, count, uint64(pack))
			assert.Equal(t, fmt.Sprintf("%s:%d:%d+%d", p.src, epoch, seq, count), h.Get(HdrMsgID))
			require.Len(t, raw.Data, int(count)*market.MessageSize)
			for k := range count {
				var m market.Message
				require.NoError(t, m.UnmarshalBinary(raw.Data[k*market.MessageSize:][:market.MessageSize]))
				assert.Equal(t, seq+k, m.Seq, "the ring's bytes, unchanged")
				assert.True(t, bridgetest.Intact(&m))
			}
		})
	}
}

// TestMismatchRefused: a destination ring of another fingerprint refuses
// every message, naming both values: with --on-mismatch stop the bridge
// exits with the error and the message stays unacknowledged; with term it
// is terminated and counted; nothing reaches the ring either way.
func TestMismatchRefused(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outs := runOutAsync(t, ctx, p.out)
	require.NoError(t, <-bridgetest.PublishN(t, p.src, 10, ring.Options{Capacity: 64}, 0))
	<-outs

	other := *p.in.Identity
	other.Fingerprint = 0x00c0ffee00c0ffee
	p.in.Identity, p.in.WaitSubscribers, p.in.OnMismatch = &other, 0, "stop"
	_, err := RunIn(ctx, p.in, discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused stream message 1 (subject tachyon.market.Message)")
	assert.Contains(t, err.Error(), "fingerprint 0x1b43e6c9e14a376c, want 0xc0ffee00c0ffee")
	assert.Contains(t, err.Error(), p.dst)

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(ctx, p.stream, "in")
	require.NoError(t, err)
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.AckFloor.Stream, "nothing acknowledged")

	p.in.OnMismatch = "term"
	p.in.ExitOnClose = true
	s, err := RunIn(ctx, p.in, discard)
	require.NoError(t, err)
	assert.EqualValues(t, 10, s.Refused)
	assert.Zero(t, s.Committed)
	info, err = cons.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.NumAckPending, "terminated and acknowledged")
	assert.EqualValues(t, 11, info.AckFloor.Stream)
}

// TestLossyDropsCounted: a lossy out bridge that cannot keep up loses
// messages, never silently: the ring counts them as its drops, the in side
// counts the same sequences as gaps (from the first sequence it sees), and
// every message that arrives is intact and in order.
func TestLossyDropsCounted(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	p.out.MaxLag, p.out.Window = 32, 16
	n := sized(50_000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := bridgetest.Subscribe(t, p.dst, 60*time.Second, 0)
	ins := runInAsync(t, ctx, p.in)
	outs := runOutAsync(t, ctx, p.out)
	require.NoError(t, <-bridgetest.PublishN(t, p.src, n, ring.Options{Capacity: 64}, 100*time.Microsecond))
	o, i := <-outs, <-ins
	r := <-got
	require.NoError(t, r.Err)
	assert.Zero(t, r.Torn)
	assert.Zero(t, r.Reorder)
	require.NotEmpty(t, r.Seqs)
	assert.Positive(t, o.Dropped, "the publisher outran the lossy bridge")
	assert.Equal(t, n, uint64(len(r.Seqs))+o.Dropped, "every message arrived or was counted as dropped")
	assert.Equal(t, o.Dropped-r.Seqs[0], i.Gaps, "every drop after the first message is seen at the far end")
	assert.EqualValues(t, len(r.Seqs), i.Committed)
	t.Logf("%d of %d arrived, %d dropped by the lossy subscriber", len(r.Seqs), n, o.Dropped)
}

// TestBackpressure: a destination ring that fills up (a slow subscriber, a
// small ring) holds the in bridge back; JetStream keeps the backlog and
// nothing is dropped.
func TestBackpressure(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	p.in.Capacity = 64
	const n = 2_000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := bridgetest.Subscribe(t, p.dst, 60*time.Second, 200*time.Microsecond)
	ins := runInAsync(t, ctx, p.in)
	outs := runOutAsync(t, ctx, p.out)
	require.NoError(t, <-bridgetest.PublishN(t, p.src, n, ring.Options{Capacity: 4096}, 0))
	o := <-outs
	assert.EqualValues(t, n, o.Published, "JetStream took every message while the far ring was full")
	i := <-ins
	bridgetest.CheckExactlyOnce(t, <-got, n)
	assert.EqualValues(t, n, i.Committed)
	assert.Zero(t, i.Gaps)
}

// TestSecondInRefused: a second in bridge for a ring that a live one feeds
// is refused, naming the live publisher, before it touches the consumer.
func TestSecondInRefused(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	p.in.WaitSubscribers = 0
	ctx, cancel := context.WithCancel(context.Background())
	ins := runInAsync(t, ctx, p.in)
	require.NoError(t, bridgetest.WaitRing(p.dst, 10*time.Second))
	second := p.in
	second.State = filepath.Join(t.TempDir(), "second.json")
	_, err := RunIn(context.Background(), second, discard)
	assert.ErrorContains(t, err, fmt.Sprintf("ring %q already has a live publisher (pid %d)", p.dst, os.Getpid()))
	cancel()
	<-ins
}

// TestNoStreamRefused: with stream creation off, a missing stream is an
// error naming it, and nothing is registered on the ring.
func TestNoStreamRefused(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	p.out.Stream.Create = false
	pub, err := ring.Create[market.Message](p.src, ring.Options{Capacity: 64})
	require.NoError(t, err)
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = RunOut(ctx, p.out, discard)
	assert.ErrorContains(t, err, `stream "T" does not exist, and stream creation is off (--create-stream=false)`)
	st, err := ring.Inspect(p.src)
	require.NoError(t, err)
	assert.Empty(t, st.Subscribers, "refused before registering")
}

// TestStatsLines: --stats logs the counters an operator watches.
func TestStatsLines(t *testing.T) {
	url := bridgetest.StartServer(t)
	p := newPipeline(t, url)
	p.out.Stats, p.in.Stats = 20*time.Millisecond, 20*time.Millisecond
	var outLog, inLog lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := bridgetest.Subscribe(t, p.dst, 60*time.Second, 0)
	ins := make(chan error, 1)
	go func() {
		_, err := RunIn(ctx, p.in, slog.New(slog.NewTextHandler(&inLog, nil)))
		ins <- err
	}()
	outs := make(chan error, 1)
	go func() {
		_, err := RunOut(ctx, p.out, slog.New(slog.NewTextHandler(&outLog, nil)))
		outs <- err
	}()
	require.NoError(t, <-bridgetest.PublishN(t, p.src, 5000, ring.Options{Capacity: 4096}, time.Millisecond))
	require.NoError(t, <-outs)
	require.NoError(t, <-ins)
	bridgetest.CheckExactlyOnce(t, <-got, 5000)
	for _, key := range []string{"msg=stats", "msgs_per_s=", "acked=", "pending=", "retries=", "ring_dropped=", "ring_lag="} {
		assert.Contains(t, outLog.String(), key)
	}
	for _, key := range []string{"msg=stats", "msgs_per_s=", "committed=", "acked=", "pending=", "redelivered=", "refused="} {
		assert.Contains(t, inLog.String(), key)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
