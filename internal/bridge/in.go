package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// InConfig configures the JetStream -> ring side.
type InConfig struct {
	Ring     string
	Consumer string // the durable consumer's name
	// Subject filters the consumer (default: the message's subject when the
	// message is named, else every subject of the stream).
	Subject string
	// Identity of the ring to create; nil learns it from the first message
	// (every later one must match it). Message is its name, if known.
	Identity *ring.Identity
	Message  string
	// SourceRing accepts only messages from that source ring (default: the
	// first one seen, remembered in the state file).
	SourceRing string

	// The destination ring.
	Capacity        int
	MaxSubscribers  int
	Policy          ring.Policy
	LivenessTimeout time.Duration
	// WaitSubscribers delays consuming until that many subscribers are
	// registered on the destination ring (a subscriber reads only what is
	// published after it registers).
	WaitSubscribers int

	// State is the file that records which source sequence the ring's
	// messages are (default $TMPDIR/tachyon-bridge-in-RING.json).
	State string
	// OnMismatch is "term" (a refused message is terminated, JetStream's
	// dead letter, and the bridge goes on) or "stop" (it stays unacked and
	// the bridge exits with the error).
	OnMismatch string
	// ExitOnClose ends Run when the source ring's end-of-ring marker
	// arrives: the destination ring is closed (its subscribers drain it,
	// then see it closed).
	ExitOnClose bool

	Fetch         int           // messages pulled ahead (default 1024)
	MaxAckPending int           // consumer's max_ack_pending (default 65536)
	AckWait       time.Duration // consumer's ack_wait (default 30s)
	Stream        Stream
	Conn          Conn
	Stats         time.Duration
}

// InSummary is what In did.
type InSummary struct {
	Role        string  `json:"role"`
	Ring        string  `json:"ring"`
	Committed   uint64  `json:"committed"` // ring messages written to the destination ring
	NATSMsgs    uint64  `json:"nats_msgs"`
	Duplicates  uint64  `json:"duplicates"` // ring messages dropped as already committed
	Redelivered uint64  `json:"redelivered"`
	Gaps        uint64  `json:"gaps"` // source sequences that never came (the source's drops)
	Reordered   uint64  `json:"reordered"`
	Refused     uint64  `json:"refused"`
	Resets      uint64  `json:"resets"`
	Seconds     float64 `json:"seconds"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	// AllocsPerMsg is the process's heap allocations per ring message,
	// nats.go's included.
	AllocsPerMsg float64 `json:"allocs_per_msg"`
}

type inCounters struct {
	committed, natsMsgs, acked, dups, redelivered, gaps, refused, resets, held atomic.Uint64
}

// delivery is a JetStream message received and not yet acknowledged.
type delivery struct {
	m        jetstream.Msg
	resolved bool // committed, or dropped as a duplicate
	termed   bool // refused and terminated
}

// In is a running JetStream -> ring bridge.
type In struct {
	cfg    InConfig
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	cons   jetstream.Consumer
	pub    *ring.RawPublisher
	id     ring.Identity
	seq    sequencer

	// deliveries since the last acknowledgement, in delivery order; the
	// first has number base. frame.tag is a delivery's number.
	deliveries []delivery
	base       uint64
	prefix     int      // deliveries known resolved from the first (ackable)
	run        position // the source position the current run continues at
	runValid   bool
	closed     bool
	disrupted  atomic.Bool
	lastHK     time.Time
	ctx        context.Context
	mu         sync.Mutex // the consuming goroutine's state against ackLoop's
	iter       atomic.Pointer[jetstream.MessagesContext]
	scratch    frame // the frame being handled (the sequencer copies what it holds)
	n          inCounters
}

// RunIn carries JetStream messages into the ring until ctx ends (or the
// source ring's end arrives, with ExitOnClose).
func RunIn(ctx context.Context, cfg InConfig, log *slog.Logger) (InSummary, error) {
	if cfg.Fetch <= 0 {
		cfg.Fetch = 1024
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 65536
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 16384
	}
	if cfg.MaxSubscribers == 0 {
		cfg.MaxSubscribers = ring.DefaultMaxSubscribers
	}
	if cfg.State == "" {
		cfg.State = filepath.Join(os.TempDir(), "tachyon-bridge-in-"+cfg.Ring+".json")
	}
	if cfg.OnMismatch == "" {
		cfg.OnMismatch = "term"
	}
	in := &In{cfg: cfg, log: log.With("ring", cfg.Ring)}
	in.seq = sequencer{limit: max(cfg.MaxAckPending/4, 1), commit: in.commit, drop: in.drop,
		gap: func(epoch, from, to uint64) {
			in.log.Warn("source sequences never came (dropped upstream)", "epoch", epoch, "from", from, "to", to)
		}}
	start, mallocs := time.Now(), mallocs()
	err := in.runAll(ctx)
	secs := time.Since(start).Seconds()
	s := InSummary{Role: "in", Ring: cfg.Ring, Committed: in.n.committed.Load(), NATSMsgs: in.n.natsMsgs.Load(),
		Duplicates: in.seq.dups, Redelivered: in.n.redelivered.Load(), Gaps: in.seq.gaps, Reordered: in.seq.reordered,
		Refused: in.n.refused.Load(), Resets: in.n.resets.Load(), Seconds: secs}
	s.MsgsPerS = float64(s.Committed) / secs
	s.AllocsPerMsg = perMsg(mallocs, s.Committed)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return s, err
}

var errDisrupted = errors.New("delivery disrupted")

func (in *In) runAll(ctx context.Context) error {
	in.ctx = ctx
	if err := ring.ValidateName(in.cfg.Ring); err != nil {
		return err
	}
	if in.cfg.OnMismatch != "term" && in.cfg.OnMismatch != "stop" {
		return fmt.Errorf("on-mismatch %q: want term or stop", in.cfg.OnMismatch)
	}
	if in.cfg.Subject == "" && in.cfg.Identity != nil && in.cfg.Message != "" {
		in.cfg.Subject = DefaultSubject(in.cfg.Message, in.cfg.Identity.TypeID)
	}
	in.cfg.Conn.Name = cmp.Or(in.cfg.Conn.Name, "tachyon-bridge in "+in.cfg.Ring)
	nc, err := in.cfg.Conn.connect(in.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	in.nc = nc
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		in.log.Info("nats reconnected: the consumer restarts from its acknowledged position", "server", nc.ConnectedUrlRedacted())
		in.disrupted.Store(true)
		if it := in.iter.Load(); it != nil {
			(*it).Stop()
		}
	})
	if in.js, err = jetstream.New(nc); err != nil {
		return err
	}
	// The ring first: a second bridge for a ring that has a live one must
	// stop before it touches the consumer.
	if err := in.recover(); err != nil {
		return err
	}
	if err := in.openConsumer(ctx); err != nil {
		return err
	}
	defer in.closeRing()
	if in.cfg.Identity != nil {
		if err := in.createRing(ctx, *in.cfg.Identity); err != nil {
			return err
		}
	}
	if in.cfg.Stats > 0 {
		stop := in.statsLoop(ctx, in.cfg.Stats)
		defer stop()
	}
	for {
		err := in.consume(ctx)
		if err == nil || !errors.Is(err, errDisrupted) {
			in.finish()
			return err
		}
		if err := in.reset(ctx); err != nil {
			return err
		}
	}
}

// openConsumer finds or creates the stream and the durable consumer, and
// resets the consumer to its acknowledged position if a predecessor left
// messages delivered but unacknowledged (they would otherwise come back
// only after ack_wait, behind newer ones).
func (in *In) openConsumer(ctx context.Context) error {
	stream, err := ensureStream(ctx, in.js, in.cfg.Stream, in.cfg.Subject, in.log)
	if err != nil {
		return err
	}
	in.stream = stream
	cc := jetstream.ConsumerConfig{
		Durable:       in.cfg.Consumer,
		Description:   "tachyon-bridge in -> ring " + in.cfg.Ring,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       in.cfg.AckWait,
		MaxAckPending: in.cfg.MaxAckPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: in.cfg.Subject,
	}
	err = retryAPI(ctx, in.log, "create consumer", func(ctx context.Context) (err error) {
		in.cons, err = stream.CreateOrUpdateConsumer(ctx, cc)
		return err
	})
	if err != nil {
		return fmt.Errorf("consumer %q on stream %q: %w (the bridge needs a pull consumer with ack policy all)", in.cfg.Consumer, in.cfg.Stream.Name, err)
	}
	var info *jetstream.ConsumerInfo
	if err := retryAPI(ctx, in.log, "consumer info", func(ctx context.Context) (err error) {
		info, err = in.cons.Info(ctx)
		return err
	}); err != nil {
		return err
	}
	in.log.Info("consumer", "consumer", in.cfg.Consumer, "filter", in.cfg.Subject, "ack_floor", info.AckFloor.Stream,
		"ack_pending", info.NumAckPending, "pending", info.NumPending)
	if info.NumAckPending > 0 {
		return in.resetConsumer(ctx)
	}
	return nil
}

func (in *In) resetConsumer(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := in.stream.ResetConsumer(rctx, in.cfg.Consumer)
		cancel()
		if err == nil {
			in.n.resets.Add(1)
			in.log.Info("consumer reset to its acknowledged position", "from", r.ResetSeq)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= 50 {
			return fmt.Errorf("reset consumer %q (needs a NATS server with the consumer reset API): %w", in.cfg.Consumer, err)
		}
		in.log.Warn("consumer reset failed; again", "err", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// reset restarts delivery from the acknowledged position after a
// disruption (a reconnect, a lost pull), when JetStream may have messages
// in flight that were lost: it would redeliver them only after ack_wait,
// behind newer ones. What was committed and not acknowledged comes again
// and is dropped as a duplicate.
func (in *In) reset(ctx context.Context) error {
	in.ackPrefix(true)
	in.base += uint64(len(in.deliveries))
	clear(in.deliveries)
	in.deliveries = in.deliveries[:0]
	in.prefix = 0
	in.seq.held = nil
	return in.resetConsumer(ctx)
}

// recover reads the state file and the destination ring a predecessor left,
// to know which source sequence was committed last.
func (in *In) recover() error {
	rec, err := loadRecord(in.cfg.State)
	if err != nil {
		return err
	}
	if rec != nil && rec.RingName != in.cfg.Ring {
		return fmt.Errorf("state file %s belongs to ring %q, not %q: give each bridge its own --state", in.cfg.State, rec.RingName, in.cfg.Ring)
	}
	committed := int64(-1)
	st, err := ring.Inspect(in.cfg.Ring)
	switch {
	case err == nil:
		if st.Producer.Alive {
			return fmt.Errorf("ring %q already has a live publisher (pid %d): is another tachyon-bridge in feeding it?", in.cfg.Ring, st.Producer.PID)
		}
		if rec != nil && st.Created.UnixNano() == rec.RingCreated {
			committed = in.probe()
		}
	case !errors.Is(err, ring.ErrNotFound):
		return err
	}
	if rec != nil && rec.Known {
		pos, exact := rec.resume(committed)
		in.seq.known, in.seq.pos = true, pos
		if in.cfg.SourceRing != "" && in.cfg.SourceRing != pos.Ring {
			return fmt.Errorf("state file %s says ring %q was fed from ring %q, not --source-ring %q: remove it to start over", in.cfg.State, in.cfg.Ring, pos.Ring, in.cfg.SourceRing)
		}
		if !exact {
			in.log.Warn("the previous destination ring was removed while the bridge was down: the messages of its last run may be delivered again", "state", in.cfg.State)
		}
		in.log.Info("resuming", "source_ring", pos.Ring, "epoch", pos.Epoch, "next", pos.Next, "committed_before", committed)
		if st != nil && exact {
			// What the old ring told is recorded before the ring is
			// removed: a bridge killed between here and the new ring's
			// first record must not find the position in doubt.
			r := runRecord{RingName: in.cfg.Ring, Start: pos, Known: true, Clean: true}
			if err := r.save(in.cfg.State); err != nil {
				return fmt.Errorf("state file %s: %w", in.cfg.State, err)
			}
		}
	} else if in.cfg.SourceRing != "" {
		in.seq.pos.Ring = in.cfg.SourceRing
	}
	if st != nil {
		if err := ring.Remove(in.cfg.Ring); err != nil && !errors.Is(err, ring.ErrNotFound) {
			return err
		}
	}
	return nil
}

// probe counts the messages a dead predecessor committed to the ring: the
// ring's published tail, and any message committed after it (committed
// messages are readable by their slot stamps before the tail is stored).
func (in *In) probe() int64 {
	sub, err := ring.AttachAny(in.cfg.Ring, ring.SubscribeOptions{})
	if err != nil {
		st, _ := ring.Inspect(in.cfg.Ring)
		in.log.Warn("cannot attach to count what the previous run committed; using its published count", "err", err)
		if st == nil {
			return -1
		}
		return int64(st.Producer.Published)
	}
	defer sub.Close()
	for {
		if _, err := sub.TryBorrowBatch(1 << 16); err != nil {
			return int64(sub.Seq())
		}
		_ = sub.Release()
	}
}

// createRing creates the destination ring for messages of id.
func (in *In) createRing(ctx context.Context, id ring.Identity) error {
	opts := ring.Options{Capacity: in.cfg.Capacity, MaxSubscribers: in.cfg.MaxSubscribers + 1, // one entry for a successor's probe
		Policy: in.cfg.Policy, Batch: min(64, in.cfg.Capacity/2), Timeout: time.Second, LivenessTimeout: in.cfg.LivenessTimeout}
	pub, err := ring.CreateRaw(in.cfg.Ring, id, opts)
	if err != nil {
		return err
	}
	in.pub, in.id = pub, id
	in.runValid = false
	if err := in.saveRecord(false); err != nil {
		return err
	}
	in.log.Info("created ring", "message", id.String(), "capacity", in.cfg.Capacity, "policy", in.cfg.Policy.String())
	deadline := time.Now().Add(time.Second)
	for in.cfg.WaitSubscribers > 0 {
		st, err := ring.Inspect(in.cfg.Ring)
		if err != nil {
			return err
		}
		active := 0
		for _, s := range st.Subscribers {
			if s.State == "active" {
				active++
			}
		}
		if active >= in.cfg.WaitSubscribers {
			break
		}
		if time.Now().After(deadline) {
			in.log.Info("waiting for subscribers", "have", active, "want", in.cfg.WaitSubscribers)
			deadline = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// saveRecord writes the state for the run that continues at in.seq.pos
// (clean: the bridge stops, and pos is final).
func (in *In) saveRecord(clean bool) error {
	r := runRecord{RingName: in.cfg.Ring, RingCreated: in.pub.Created().UnixNano(), Index: in.pub.Published(),
		Start: in.seq.pos, Known: in.seq.known, Clean: clean}
	if err := r.save(in.cfg.State); err != nil {
		return fmt.Errorf("state file %s: %w", in.cfg.State, err)
	}
	return nil
}

func (in *In) closeRing() {
	if in.pub != nil {
		in.pub.Close()
		in.pub = nil
	}
}

// finish acknowledges what is committed and records the final position
// before the ring is closed.
func (in *In) finish() {
	in.ackPrefix(true)
	if in.pub != nil {
		if err := in.saveRecord(true); err != nil {
			in.log.Error("state not saved", "err", err)
		}
	}
}

// consume receives until ctx ends, the source ring's end (with
// ExitOnClose), an error, or a disruption (errDisrupted). Next blocks, so
// that the iterator's heartbeat check sees a pull lost with a consumer
// leader; acknowledgements and in-progress notes go from ackLoop.
func (in *In) consume(ctx context.Context) error {
	iter, err := in.cons.Messages(jetstream.PullMaxMessages(in.cfg.Fetch),
		jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second))
	if err != nil {
		return fmt.Errorf("consume %q: %w", in.cfg.Consumer, err)
	}
	in.iter.Store(&iter)
	defer func() {
		in.iter.Store(nil)
		iter.Stop()
	}()
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	if in.disrupted.Swap(false) {
		return errDisrupted
	}
	done := in.ackLoop()
	defer done()
	for {
		m, err := iter.Next()
		switch {
		case err == nil:
			in.mu.Lock()
			err := in.handle(m)
			if err == nil && in.ackable() >= 256 {
				in.ackPrefix(false)
			}
			in.mu.Unlock()
			if err != nil {
				return err
			}
			if in.closed && in.cfg.ExitOnClose {
				return nil
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return errDisrupted // a reconnect stopped it
		default:
			in.log.Warn("pull interrupted; the consumer restarts from its acknowledged position", "err", err)
			return errDisrupted
		}
	}
}

// ackLoop acknowledges what is committed every few milliseconds, and
// housekeeps, until the returned function is called.
func (in *In) ackLoop() (stop func()) {
	hk := min(in.cfg.AckWait/3, time.Second)
	return every(2*time.Millisecond, func(time.Time) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if time.Since(in.lastHK) >= hk {
			in.housekeep()
		} else {
			in.ackPrefix(false)
		}
	})
}

// handle takes one JetStream message.
func (in *In) handle(m jetstream.Msg) error {
	in.n.natsMsgs.Add(1)
	in.deliveries = append(in.deliveries, delivery{m: m})
	tag := in.base + uint64(len(in.deliveries)-1)
	f := &in.scratch
	err := decodeFrame(f, m.Headers(), m.Data())
	if err == nil {
		err = in.admit(f)
	}
	if err != nil {
		return in.refuse(tag, err)
	}
	f.tag = tag
	closed, err := in.seq.offer(f)
	in.n.held.Store(uint64(len(in.seq.held)))
	if closed {
		in.closed = true
		in.log.Info("the source ring ended", "source_ring", f.ring, "epoch", f.epoch, "at", f.first)
	}
	return err
}

// admit checks a frame against the ring it is for, creating the ring from
// the first frame when the identity is learned from the stream.
func (in *In) admit(f *frame) error {
	if in.seq.pos.Ring != "" && f.ring != in.seq.pos.Ring {
		return fmt.Errorf("it comes from ring %q; ring %q is fed from ring %q", f.ring, in.cfg.Ring, in.seq.pos.Ring)
	}
	if f.closed {
		return nil
	}
	if in.pub == nil {
		if err := in.createRing(in.ctx, f.id); err != nil {
			return err
		}
		in.log.Info("learned the message identity from the stream", "message", f.id.String(), "name", f.name)
	}
	return in.id.Compare("deliver to ring", in.cfg.Ring, f.id)
}

// refuse leaves a message out of the ring: terminated (JetStream's dead
// letter: an advisory on $JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED), or,
// with OnMismatch stop, unacknowledged, ending the bridge.
func (in *In) refuse(tag uint64, why error) error {
	in.n.refused.Add(1)
	d := &in.deliveries[tag-in.base]
	where := ""
	if md, err := d.m.Metadata(); err == nil {
		where = fmt.Sprintf(" %d", md.Sequence.Stream)
	}
	err := fmt.Errorf("refused stream message%s (subject %s): %w", where, d.m.Subject(), why)
	if in.cfg.OnMismatch == "stop" {
		in.deliveries = in.deliveries[:len(in.deliveries)-1]
		return err
	}
	in.log.Error("terminated", "err", err)
	if terr := d.m.TermWithReason(err.Error()); terr != nil {
		in.log.Warn("terminate failed", "err", terr)
	}
	d.resolved, d.termed = true, true
	return nil
}

// commit writes f's messages from index skip on into the ring, waiting
// while it is full (the JetStream messages stay unacknowledged meanwhile:
// backpressure into the stream).
func (in *In) commit(f *frame, skip uint64) (uint64, error) {
	first := f.first + skip
	if !in.runValid || in.run.Ring != f.ring || in.run.Epoch != f.epoch || in.run.Next != first {
		// A new run: recorded before its first message is committed.
		if err := in.saveRecord(false); err != nil {
			return 0, err
		}
		in.run, in.runValid = position{Ring: f.ring, Epoch: f.epoch, Next: first}, true
	}
	size := uint64(in.id.Size)
	done := uint64(0)
	for i := skip; i < f.count; i++ {
		slot, err := in.pub.Claim()
		for errors.Is(err, ring.ErrTimeout) && in.ctx.Err() == nil {
			// Full: keep JetStream from redelivering while we wait.
			in.housekeep()
			slot, err = in.pub.Claim()
		}
		if err == nil {
			err = in.ctx.Err()
		}
		if err != nil {
			in.pub.Flush()
			in.run.Next += done
			in.n.committed.Add(done)
			return done, err
		}
		copy(slot, f.data[i*size:(i+1)*size])
		if err := in.pub.Commit(); err != nil {
			return done, err
		}
		done++
	}
	in.pub.Flush()
	in.run.Next += done
	in.n.committed.Add(done)
	in.resolve(f)
	return done, nil
}

// delivery returns f's delivery, nil if it was dropped by a reset.
func (in *In) delivery(f *frame) *delivery {
	if f.tag < in.base || f.tag-in.base >= uint64(len(in.deliveries)) {
		return nil
	}
	return &in.deliveries[f.tag-in.base]
}

// resolve marks f's message done: committed.
func (in *In) resolve(f *frame) {
	if d := in.delivery(f); d != nil {
		d.resolved = true
	}
}

// drop marks f's message done: a duplicate (or a control frame), counting
// JetStream's redeliveries among them.
func (in *In) drop(f *frame) {
	d := in.delivery(f)
	if d == nil {
		return
	}
	if md, err := d.m.Metadata(); err == nil && md.NumDelivered > 1 {
		in.n.redelivered.Add(1)
	}
	d.resolved = true
}

// ackable returns how many deliveries from the first are resolved
// (amortised O(1): the count only grows until ackPrefix).
func (in *In) ackable() int {
	for in.prefix < len(in.deliveries) && in.deliveries[in.prefix].resolved {
		in.prefix++
	}
	return in.prefix
}

// ackPrefix acknowledges (ack policy all) the resolved deliveries from the
// first; sync waits for the server's confirmation.
func (in *In) ackPrefix(sync bool) {
	n := in.ackable()
	if n == 0 {
		return
	}
	for i := n - 1; i >= 0; i-- {
		d := in.deliveries[i]
		if d.termed {
			continue
		}
		var err error
		if sync {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = d.m.DoubleAck(ctx)
			cancel()
		} else {
			err = d.m.Ack()
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			in.log.Warn("ack failed (the messages will be redelivered and dropped as duplicates)", "err", err)
		}
		break
	}
	in.n.acked.Add(uint64(n))
	clear(in.deliveries[:n])
	in.deliveries = append(in.deliveries[:0], in.deliveries[n:]...)
	in.base += uint64(n)
	in.prefix = 0
}

// housekeep acknowledges what it can and tells JetStream that the
// deliveries it cannot acknowledge yet are in progress.
func (in *In) housekeep() {
	in.lastHK = time.Now()
	in.ackPrefix(false)
	for _, d := range in.deliveries {
		if !d.termed {
			_ = d.m.InProgress()
		}
	}
	in.n.held.Store(uint64(len(in.seq.held)))
}

func (in *In) statsLoop(ctx context.Context, period time.Duration) (stop func()) {
	last, lastT := in.n.committed.Load(), time.Now()
	return every(period, func(now time.Time) {
		c := in.n.committed.Load()
		pending := int64(-1)
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		if info, err := in.cons.Info(ictx); err == nil {
			pending = int64(info.NumPending + uint64(info.NumAckPending))
		}
		cancel()
		in.log.Info("stats", "msgs_per_s", int64(float64(c-last)/now.Sub(lastT).Seconds()), "committed", c,
			"nats_msgs", in.n.natsMsgs.Load(), "acked", in.n.acked.Load(), "pending", pending,
			"redelivered", in.n.redelivered.Load(), "refused", in.n.refused.Load(), "held", in.n.held.Load(),
			"resets", in.n.resets.Load())
		last, lastT = c, now
	})
}
