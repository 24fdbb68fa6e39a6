package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// OutConfig configures the ring -> JetStream side.
type OutConfig struct {
	Ring string
	// Name is the ring subscriber's name: a restarted bridge takes over its
	// entry, position and counters (default "tachyon-bridge-STREAM").
	Name string
	// MaxLag 0 is a critical subscriber (the ring waits for the bridge);
	// a positive MaxLag makes it lossy, its drops counted by the ring.
	MaxLag int
	// Message is the message's full name (package.Message) for the headers
	// and the default subject; Identity, when set, is checked against the
	// ring at attach.
	Message  string
	Identity *ring.Identity
	// Layout, when set without Message, names the ring's message by its
	// fingerprint (a ring whose message it does not declare is refused).
	Layout  []Message
	Subject string // default DefaultSubject(Message, type id)
	// Pack is K: up to K consecutive ring messages per NATS message.
	Pack int
	// Window is how many ring messages are in flight (published, not yet
	// acknowledged) at most; the ring slots are held until JetStream
	// acknowledges them (default 4096, at most half the ring).
	Window int
	// AckTimeout bounds the wait for one acknowledgement before the message
	// is published again (default 5s).
	AckTimeout time.Duration
	// ExitOnClose ends Run once the ring's publisher closed the ring and
	// every message was acknowledged; otherwise the bridge waits for the
	// ring to be created again and carries on.
	ExitOnClose bool
	Stream      Stream
	Conn        Conn
	// Stats is the period of the stats lines (0: none).
	Stats time.Duration
}

// OutSummary is what Out did.
type OutSummary struct {
	Role        string  `json:"role"`
	Ring        string  `json:"ring"`
	Subject     string  `json:"subject"`
	Published   uint64  `json:"published"` // ring messages acknowledged by JetStream
	NATSMsgs    uint64  `json:"nats_msgs"`
	Retries     uint64  `json:"retries"`
	Dropped     uint64  `json:"dropped"`     // the ring subscriber's drops (lossy, or overwritten while away)
	Overwritten uint64  `json:"overwritten"` // held slots the ring overwrote (the publisher evicted the bridge)
	Seconds     float64 `json:"seconds"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	// AllocsPerMsg is the process's heap allocations per ring message,
	// nats.go's included (the bridge's own ring side allocates none).
	AllocsPerMsg float64 `json:"allocs_per_msg"`
}

type outCounters struct {
	acked, natsMsgs, inflight, retries, dropped, overwritten, lag atomic.Uint64
}

// Out is a running ring -> JetStream bridge.
type Out struct {
	cfg   OutConfig
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	sub   *ring.RawSubscriber
	enc   *encoder
	stage []byte // copies of the window's messages (packed, or lossy)
	futs  []jetstream.PubAckFuture
	todo  []int // indices of the window's messages still to be acknowledged
	n     outCounters
}

func (c *OutConfig) defaults() {
	if c.Name == "" {
		c.Name = "tachyon-bridge-" + c.Stream.Name
	}
	c.Pack = max(c.Pack, 1)
	if c.Window <= 0 {
		c.Window = 4096
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 5 * time.Second
	}
}

// RunOut carries the ring's messages to JetStream until ctx ends (or the
// ring closes, with ExitOnClose).
func RunOut(ctx context.Context, cfg OutConfig, log *slog.Logger) (OutSummary, error) {
	cfg.defaults()
	o := &Out{cfg: cfg, log: log.With("ring", cfg.Ring)}
	start, mallocs := time.Now(), mallocs()
	err := o.run(ctx)
	secs := time.Since(start).Seconds()
	s := OutSummary{Role: "out", Ring: cfg.Ring, Subject: o.cfg.Subject, Published: o.n.acked.Load(), NATSMsgs: o.n.natsMsgs.Load(),
		Retries: o.n.retries.Load(), Dropped: o.n.dropped.Load(), Overwritten: o.n.overwritten.Load(), Seconds: secs}
	s.MsgsPerS = float64(s.Published) / secs
	s.AllocsPerMsg = perMsg(mallocs, s.Published)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // asked to stop
	}
	return s, err
}

func (o *Out) run(ctx context.Context) error {
	if err := ring.ValidateName(o.cfg.Ring); err != nil {
		return err
	}
	if o.cfg.Pack > 1<<16 {
		return fmt.Errorf("pack %d: at most 65536 messages per NATS message", o.cfg.Pack)
	}
	nc, err := o.cfg.Conn.connect(o.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	o.nc = nc
	o.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(o.cfg.Window/o.cfg.Pack+1, 256)),
		jetstream.WithPublishAsyncTimeout(o.cfg.AckTimeout))
	if err != nil {
		return err
	}
	if o.cfg.Stats > 0 {
		stop := o.statsLoop(o.cfg.Stats)
		defer stop()
	}
	for {
		if err := o.attach(ctx); err != nil {
			return err
		}
		err := o.carry(ctx)
		o.sub.Close()
		o.sub = nil
		switch {
		case err == nil: // the ring closed
			if o.cfg.ExitOnClose {
				return nil
			}
			o.log.Info("waiting for the ring to be created again")
		case errors.Is(err, ring.ErrEvicted):
			o.log.Error("the ring's publisher evicted the bridge (it made no progress for the ring's liveness timeout); attaching again", "err", err)
		default:
			return err
		}
	}
}

// attach attaches to the ring as the named subscriber, waiting for the ring
// to exist, and prepares the window for its message identity.
func (o *Out) attach(ctx context.Context) error {
	// Learn the ring's identity and make sure of the stream before
	// registering: a critical subscriber that registers and then waits on
	// JetStream would hold the ring's publisher back, and be evicted.
	logged := false
	var st *ring.Stats
	for {
		var err error
		if st, err = ring.Inspect(o.cfg.Ring); err == nil && st.Producer.State == "active" {
			break
		}
		if err != nil && !errors.Is(err, ring.ErrNotFound) && !errors.Is(err, ring.ErrNotReady) {
			return err
		}
		if !logged {
			o.log.Info("waiting for the ring (and its publisher)", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	id := ring.Identity{Fingerprint: st.Fingerprint, TypeID: st.TypeID, Size: st.MessageSize, Align: st.MessageAlign}
	if o.cfg.Message == "" && o.cfg.Layout != nil {
		m, ok := MessageByFingerprint(o.cfg.Layout, id.Fingerprint)
		if !ok {
			return fmt.Errorf("ring %q holds %s, which the layout does not declare", o.cfg.Ring, id)
		}
		o.cfg.Message, o.cfg.Identity = m.Name, &m.Identity
	}
	if o.cfg.Identity != nil {
		id = *o.cfg.Identity // AttachRaw checks it against the ring
	}
	if o.cfg.Subject == "" {
		o.cfg.Subject = DefaultSubject(o.cfg.Message, id.TypeID)
	}
	if o.enc == nil {
		if _, err := ensureStream(ctx, o.js, o.cfg.Stream, o.cfg.Subject, o.log); err != nil {
			return err
		}
	}
	var err error
	o.sub, err = ring.AttachRaw(o.cfg.Ring, id, ring.SubscribeOptions{Name: o.cfg.Name, Start: ring.StartLast, MaxLag: o.cfg.MaxLag})
	if err != nil {
		return err
	}
	// The window: whole packs, at most half the ring, so that the
	// publisher can write the other half while the bridge waits for acks.
	window := min(o.cfg.Window, o.sub.Capacity()/2)
	window = max(window/o.cfg.Pack*o.cfg.Pack, o.cfg.Pack)
	epoch := uint64(o.sub.Created().UnixNano())
	nmsgs := (window + o.cfg.Pack - 1) / o.cfg.Pack
	o.enc = newEncoder(o.cfg.Subject, o.cfg.Ring, epoch, id, o.cfg.Message, nmsgs)
	o.cfg.Window = window
	if o.cfg.Pack > 1 || o.cfg.MaxLag > 0 {
		o.stage = make([]byte, window*id.Size)
	}
	o.futs = make([]jetstream.PubAckFuture, nmsgs)
	o.log.Info("attached", "subscriber", o.cfg.Name, "message", id.String(), "seq", o.sub.Seq(), "received", o.sub.Received(),
		"dropped", o.sub.Dropped(), "subject", o.cfg.Subject, "pack", o.cfg.Pack, "window", window, "critical", o.cfg.MaxLag == 0)
	o.n.dropped.Store(o.sub.Dropped())
	return nil
}

// carry moves windows until the ring closes (nil) or an error.
func (o *Out) carry(ctx context.Context) error {
	for {
		b, err := o.sub.BorrowBatch(ctx, o.cfg.Window)
		if errors.Is(err, ring.ErrClosed) || errors.Is(err, ring.ErrPublisherDead) {
			o.log.Info("the ring's publisher is gone and every message is acknowledged", "err", err, "seq", o.sub.Seq())
			return o.publishClosed(ctx)
		}
		if err != nil {
			return err
		}
		if err := o.window(ctx, b); err != nil {
			return err
		}
		o.n.dropped.Store(o.sub.Dropped())
		o.n.lag.Store(o.sub.Lag())
	}
}

// window publishes one borrowed batch and waits until JetStream acknowledged
// all of it. A critical subscriber releases the slots only then, so a bridge
// that dies holds them for its successor: what was not acknowledged is
// published again, with the same Nats-Msg-Id. A lossy one copies and
// checks the slots first (the ring may overwrite them), so that no torn
// message is ever published.
func (o *Out) window(ctx context.Context, b ring.RawBatch) error {
	n, k, size := b.Len(), o.cfg.Pack, o.sub.Identity().Size
	lossy := o.cfg.MaxLag > 0
	if o.stage != nil {
		for i := range n {
			copy(o.stage[i*size:], b.At(i))
		}
	}
	if lossy {
		if err := o.sub.Release(); errors.Is(err, ring.ErrOverwritten) {
			return nil // counted by the ring as dropped
		} else if err != nil {
			return err
		}
	}
	o.enc.reset()
	o.todo = o.todo[:0]
	for i := 0; i < n; i += k {
		c := min(k, n-i)
		var data []byte
		if o.stage != nil {
			data = o.stage[i*size : (i+c)*size]
		} else {
			data = b.At(i) // unpacked and critical: published from the slot itself
		}
		o.enc.encode(len(o.todo), data, b.Seq()+uint64(i), uint64(c), b.Seq())
		o.todo = append(o.todo, len(o.todo))
	}
	o.n.inflight.Store(uint64(n))
	if err := o.publish(ctx); err != nil {
		return err
	}
	o.n.inflight.Store(0)
	o.n.acked.Add(uint64(n))
	if !lossy {
		err := o.sub.Release()
		if errors.Is(err, ring.ErrOverwritten) {
			o.n.overwritten.Add(uint64(n))
			o.log.Error("the ring overwrote slots the bridge held: the publisher evicted it; what was published for them may be torn",
				"from", b.Seq(), "to", b.Seq()+uint64(n))
			return nil
		}
		return err
	}
	return nil
}

// publish publishes the window's messages listed in todo asynchronously and
// waits for their acknowledgements; whatever failed (a timeout, no
// responders while a stream leader is elected, a lost connection) is
// published again, in order, until it is acknowledged or ctx ends.
func (o *Out) publish(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		sent := 0
		var pubErr error
		for _, i := range o.todo {
			f, err := o.js.PublishMsgAsync(&o.enc.msgs[i])
			if err != nil {
				pubErr = err
				break
			}
			o.futs[i] = f
			sent++
		}
		failed := o.todo[:0]
		var lastErr error
		for j, i := range o.todo {
			if j >= sent {
				failed = append(failed, i)
				continue
			}
			select {
			case <-o.futs[i].Ok():
				o.n.natsMsgs.Add(1)
			case err := <-o.futs[i].Err():
				failed = append(failed, i)
				lastErr = err
			}
			o.futs[i] = nil
		}
		if pubErr != nil {
			lastErr = pubErr
		}
		o.todo = failed
		if len(o.todo) == 0 {
			return nil
		}
		o.n.retries.Add(uint64(len(o.todo)))
		wait := min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second)
		o.log.Warn("publish failed; publishing again", "messages", len(o.todo), "attempt", attempt+1, "err", lastErr, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err() // the slots stay unreleased: a restarted bridge publishes them
		case <-time.After(wait):
		}
	}
}

// publishClosed tells the in side that the ring ended at the current
// sequence, so that it does not wait for messages that never come.
func (o *Out) publishClosed(ctx context.Context) error {
	m := o.enc.closedMsg(o.cfg.Subject, o.sub.Seq())
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, o.cfg.AckTimeout)
		_, err := o.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.log.Warn("publish of the end-of-ring marker failed; again", "err", err)
		time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
	}
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// perMsg returns the allocations since before per message.
func perMsg(before, msgs uint64) float64 {
	if msgs == 0 {
		return 0
	}
	return float64(mallocs()-before) / float64(msgs)
}

// every calls fn every period on its own goroutine until stop returns.
func every(period time.Duration, fn func(now time.Time)) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fn(now)
			}
		}
	}()
	return func() { close(done); <-exited }
}

func (o *Out) statsLoop(period time.Duration) (stop func()) {
	last, lastT := o.n.acked.Load(), time.Now()
	return every(period, func(now time.Time) {
		acked := o.n.acked.Load()
		o.log.Info("stats", "msgs_per_s", int64(float64(acked-last)/now.Sub(lastT).Seconds()), "acked", acked,
			"nats_msgs", o.n.natsMsgs.Load(), "pending", o.n.inflight.Load(), "retries", o.n.retries.Load(),
			"ring_dropped", o.n.dropped.Load(), "ring_lag", o.n.lag.Load(), "overwritten", o.n.overwritten.Load())
		last, lastT = acked, now
	})
}
