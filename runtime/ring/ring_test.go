package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestTornReadDropOldest: a DropOldest ring of 4 slots, a copying reader and
// a borrowing reader that reads slowly while borrowed, >= 1 M overwrites:
// no torn message is ever accepted, and every message is accounted for.
func TestTornReadDropOldest(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 4, Policy: DropOldest})
	require.NoError(t, err)
	n := uint64(2_000_000)
	if raceEnabled || testing.Short() {
		n = 300_000
	}
	recv, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	borrow, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	var overwritten atomic.Uint64
	var wg sync.WaitGroup
	var rRecv, rBorrow subResult
	wg.Go(func() { rRecv = verify(recv, modeRecv, 200*time.Nanosecond, func() uint64 { return n }) })
	wg.Go(func() {
		// Copy word by word with pauses, so that overwrites land mid-copy.
		var r subResult
		next := uint64(0)
		ctx := context.Background()
		for {
			m, err := borrow.Borrow(ctx)
			if err != nil {
				require.ErrorIs(t, err, ErrClosed)
				break
			}
			var c Tick
			src := (*[8]uint64)(unsafe.Pointer(m))
			dst := (*[8]uint64)(unsafe.Pointer(&c))
			for k := range dst {
				dst[k] = atomic.LoadUint64(&src[k])
				for i := 0; i < 20; i++ {
					_ = atomic.LoadUint64(&src[0])
				}
			}
			if errors.Is(borrow.Release(), ErrOverwritten) {
				overwritten.Add(1)
				continue
			}
			if !c.intact() {
				r.Corrupt++
				continue
			}
			if c.Seq < next {
				r.OutOfOrder++
				continue
			}
			r.GapSum += c.Seq - next
			next = c.Seq + 1
		}
		r.GapSum += n - next
		r.Received, r.Dropped = borrow.Received(), borrow.Dropped()
		rBorrow = r
	})
	publishTicks(t, pub, n, true)
	require.NoError(t, pub.Close())
	wg.Wait()
	require.NoError(t, recv.Close())
	require.NoError(t, borrow.Close())
	assertResult(t, "copying reader", rRecv, n, false)
	require.Zero(t, rBorrow.Corrupt, "torn messages accepted")
	require.Zero(t, rBorrow.OutOfOrder)
	require.Equal(t, n, rBorrow.Received+rBorrow.Dropped)
	require.GreaterOrEqual(t, n-4, uint64(1_000_000)*map[bool]uint64{true: 0, false: 1}[raceEnabled || testing.Short()])
	t.Logf("published %d (%d overwrites); copying reader %+v; borrowing reader received %d, dropped %d, %d borrows overwritten mid-read",
		n, n-4, rRecv, rBorrow.Received, rBorrow.Dropped, overwritten.Load())
}

// TestSIGKILLSubscriber kills one of two unlimited subscribers (separate
// processes) mid-stream under Block: the producer is never blocked longer
// than the liveness timeout, and the survivor loses nothing.
func TestSIGKILLSubscriber(t *testing.T) {
	const liveness = time.Second
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 64, Policy: Block, LivenessTimeout: liveness})
	require.NoError(t, err)
	n := uint64(2_000_000)
	if raceEnabled || testing.Short() {
		n = 200_000
	}
	env := func(slow int) map[string]string {
		return map[string]string{"RING": name, "MODE": "recv", "N": strconv.FormatUint(n, 10), "SLOW_NS": strconv.Itoa(slow)}
	}
	victim := startChild(t, "sub", env(1000))
	victim.expect(t, "ready")
	survivor := startChild(t, "sub", env(0))
	survivor.expect(t, "ready")
	var worst time.Duration
	var m Tick
	for seq := uint64(0); seq < n; seq++ {
		if seq == n/4 {
			victim.kill(t)
		}
		m.fill(seq)
		t0 := time.Now()
		require.NoError(t, pub.Publish(&m))
		worst = max(worst, time.Since(t0))
	}
	require.NoError(t, pub.Close())
	r := survivor.result(t)
	assertResult(t, "survivor", r, n, true)
	assert.Less(t, worst, liveness+50*time.Millisecond, "producer blocked too long")
	assert.Equal(t, uint64(1), pub.p.evictions, "the dead entry is reclaimed once")
	t.Logf("worst publish %v (liveness timeout %v), survivor %+v", worst, liveness, r)
}

// TestSIGKILLSubscriberLoop: 100 times, a slow subscriber registers and is
// SIGKILLed mid-stream while a survivor reads everything. The table has room
// for just the survivor and one victim, so every victim reuses the entry of
// the one killed before it; the producer is never blocked beyond the
// liveness timeout and the survivor loses nothing.
func TestSIGKILLSubscriberLoop(t *testing.T) {
	const liveness = time.Second
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 64, Policy: Block, MaxSubscribers: 2, LivenessTimeout: liveness})
	require.NoError(t, err)
	survivor := startChild(t, "sub", map[string]string{"RING": name, "MODE": "batch"})
	survivor.expect(t, "ready")
	var published atomic.Uint64
	var stop atomic.Bool
	done := make(chan error, 1)
	var worst time.Duration
	go func() {
		var m Tick
		for seq := uint64(0); !stop.Load(); seq++ {
			m.fill(seq)
			t0 := time.Now()
			if err := pub.Publish(&m); err != nil {
				done <- err
				return
			}
			worst = max(worst, time.Since(t0))
			published.Store(seq + 1)
		}
		done <- nil
	}()
	for i := range 100 {
		victim := startChild(t, "sub", map[string]string{"RING": name, "MODE": "recv", "SLOW_NS": "20000"})
		require.Equal(t, "ready", victim.line(t), "victim %d could not register: its predecessor's entry was not reclaimed", i)
		// Let the victim exert backpressure for a moment, then kill it.
		for before := published.Load(); published.Load() < before+128; {
			time.Sleep(100 * time.Microsecond)
		}
		victim.kill(t)
	}
	stop.Store(true)
	require.NoError(t, <-done)
	pub.Flush()
	n := published.Load()
	require.NoError(t, pub.Close())
	assertResult(t, "survivor", survivor.result(t), n, true)
	assert.Less(t, worst, liveness+100*time.Millisecond, "producer blocked beyond the liveness timeout")
	t.Logf("%d messages, 100 victims, worst publish %v", n, worst)
}

// TestPublisherDeathMidClaim: a publisher SIGKILLed holding a claimed,
// half-written slot. The subscriber receives every committed message, never
// the half-written one, then ErrPublisherDead within the watchdog bound.
func TestPublisherDeathMidClaim(t *testing.T) {
	name := ringName(t)
	const n = 100
	p := startChild(t, "pub", map[string]string{"RING": name, "N": strconv.Itoa(n), "CAP": "256", "HANG": "claim"})
	p.expect(t, "ready")
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	p.send(t, "go")
	p.expect(t, "claimed")
	p.kill(t)
	t0 := time.Now()
	var m Tick
	got := 0
	for {
		if err = sub.Recv(context.Background(), &m); err != nil {
			break
		}
		require.True(t, m.intact(), "message %d torn", got)
		require.Equal(t, uint64(got), m.Seq)
		got++
	}
	require.ErrorIs(t, err, ErrPublisherDead)
	assert.Equal(t, n, got, "every committed message, and not the claimed one")
	assert.Less(t, time.Since(t0), 2*Watchdog+100*time.Millisecond)
	require.NoError(t, Remove(name))
}

// TestPublisherDeath: a publisher process SIGKILLed after publishing: the
// subscriber receives everything published, then ErrPublisherDead within
// about one watchdog period.
func TestPublisherDeath(t *testing.T) {
	name := ringName(t)
	const n = 1000
	p := startChild(t, "pub", map[string]string{"RING": name, "N": strconv.Itoa(n), "CAP": "4096", "HANG": "1"})
	p.expect(t, "ready")
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	p.send(t, "go")
	p.expect(t, "published")
	p.kill(t)
	t0 := time.Now()
	var m Tick
	got := 0
	for {
		err = sub.Recv(context.Background(), &m)
		if err != nil {
			break
		}
		require.True(t, m.intact())
		require.Equal(t, uint64(got), m.Seq)
		got++
	}
	require.ErrorIs(t, err, ErrPublisherDead)
	assert.Contains(t, err.Error(), name)
	assert.Equal(t, n, got)
	assert.Less(t, time.Since(t0), 2*Watchdog+100*time.Millisecond)
	// The dead owner's segment is stale: Remove deletes it.
	require.NoError(t, Remove(name))
}

func TestPublisherClose(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("close", Options{Capacity: 8})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	var m Tick
	for i := uint64(0); i < 5; i++ {
		m.fill(i)
		require.NoError(t, pub.Publish(&m))
	}
	done := make(chan []uint64)
	go func() {
		var seqs []uint64
		for msg, err := range sub.Messages(context.Background()) {
			require.NoError(t, err)
			seqs = append(seqs, msg.Seq)
		}
		done <- seqs
	}()
	time.Sleep(20 * time.Millisecond) // let it drain and park
	require.NoError(t, pub.Close())
	select {
	case seqs := <-done:
		require.Equal(t, []uint64{0, 1, 2, 3, 4}, seqs)
	case <-time.After(time.Second):
		t.Fatal("subscriber did not see the close")
	}
	require.ErrorIs(t, sub.Recv(context.Background(), &m), ErrClosed)
	_, err = pub.Claim()
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, sub.Close())
}

// TestEvictStalled: an alive subscriber that stops reading is evicted after
// the liveness timeout; another loses nothing; the stalled one learns it.
func TestEvictStalled(t *testing.T) {
	for _, heap := range []bool{true, false} {
		t.Run(map[bool]string{true: "heap", false: "shm"}[heap], func(t *testing.T) {
			opts := Options{Capacity: 16, LivenessTimeout: 300 * time.Millisecond}
			var pub *Publisher[Tick]
			var attach func(SubscribeOptions) (*Subscriber[Tick], error)
			if heap {
				p, r, err := newHeapRing[Tick]("evict", opts)
				require.NoError(t, err)
				pub, attach = p, r.attach
			} else {
				name := ringName(t)
				p, err := Create[Tick](name, opts)
				require.NoError(t, err)
				pub, attach = p, func(o SubscribeOptions) (*Subscriber[Tick], error) { return Attach[Tick](name, o) }
			}
			stalled, err := attach(SubscribeOptions{})
			require.NoError(t, err)
			good, err := attach(SubscribeOptions{})
			require.NoError(t, err)
			const n = 200
			var r subResult
			var wg sync.WaitGroup
			wg.Go(func() { r = verify(good, modeRecv, 0, func() uint64 { return n }) })
			t0 := time.Now()
			publishTicks(t, pub, n, false)
			blocked := time.Since(t0)
			if !heap {
				st, err := Inspect(pub.Name())
				require.NoError(t, err)
				require.Len(t, st.Subscribers, 2)
				assert.Equal(t, "evicted", st.Subscribers[0].State)
				assert.True(t, st.Subscribers[0].Alive)
			}
			require.NoError(t, pub.Close())
			wg.Wait()
			assertResult(t, "good", r, n, true)
			var m Tick
			for {
				if err = stalled.Recv(context.Background(), &m); err != nil {
					break
				}
			}
			require.ErrorIs(t, err, ErrEvicted)
			assert.GreaterOrEqual(t, blocked, opts.LivenessTimeout)
			assert.Less(t, blocked, opts.LivenessTimeout+Watchdog+100*time.Millisecond)
			require.NoError(t, stalled.Close())
			require.NoError(t, good.Close())
		})
	}
}

// TestNamedSubscriberRestart: a named subscriber that closes or dies and
// comes back takes over its entry with its counters, resuming at its last
// position (StartLast) or at the live tail (StartLive); either way
// received + dropped == published since it first joined.
func TestNamedSubscriberRestart(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("restart", Options{Capacity: 64, MaxSubscribers: 3})
	require.NoError(t, err)
	defer pub.Close()
	var seq uint64
	publish := func(n int) {
		var m Tick
		for range n {
			m.fill(seq)
			require.NoError(t, pub.Publish(&m))
			seq++
		}
		pub.Flush()
	}
	drain := func(sub *Subscriber[Tick]) (first, n uint64) {
		var m Tick
		first = ^uint64(0)
		for sub.TryRecv(&m) == nil {
			require.True(t, m.intact())
			first = min(first, m.Seq)
			n++
		}
		return first, n
	}
	counters := func(sub *Subscriber[Tick]) (uint64, uint64) {
		sub.c.flushStats()
		return atomic.LoadUint64(sub.c.receivedP), atomic.LoadUint64(sub.c.droppedP)
	}
	named := SubscribeOptions{Name: "risk-engine", Start: StartLast}

	sub, err := r.attach(named)
	require.NoError(t, err)
	publish(20)
	var m Tick
	for range 10 {
		require.NoError(t, sub.TryRecv(&m))
	}
	require.NoError(t, sub.Close()) // read 0..9; 10..19 unread
	publish(10)

	// Back at its last position: nothing was overwritten, nothing is lost.
	sub, err = r.attach(named)
	require.NoError(t, err)
	assert.Equal(t, 0, sub.c.idx, "takes over its own entry")
	first, n := drain(sub)
	assert.Equal(t, uint64(10), first)
	assert.Equal(t, uint64(20), n)
	rec, drop := counters(sub)
	assert.Equal(t, [2]uint64{30, 0}, [2]uint64{rec, drop})
	require.NoError(t, sub.Close())

	// Away while the ring wrapped: what was overwritten counts as dropped.
	publish(100) // 30..129; the ring keeps the last 64
	sub, err = r.attach(named)
	require.NoError(t, err)
	first, n = drain(sub)
	assert.Greater(t, first, uint64(30))
	assert.Equal(t, seq-first, n, "every message still in the ring")
	rec, drop = counters(sub)
	assert.Equal(t, seq, rec+drop, "received + dropped == published since it joined")
	assert.Equal(t, first-30, drop)

	// It dies (its locks dropped, as the kernel does); an anonymous
	// subscriber meanwhile gets a fresh entry and fresh counters.
	sub.s.host.(*heapHost).kill()
	anon, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, 0, anon.c.idx, "an anonymous subscriber leaves a named one's entry alone")
	publish(5)
	_, n = drain(anon)
	assert.Equal(t, uint64(5), n)

	// StartLive: it skips what it missed and counts it as dropped.
	sub, err = r.attach(SubscribeOptions{Name: "risk-engine", Start: StartLive})
	require.NoError(t, err)
	assert.Equal(t, 0, sub.c.idx)
	_, n = drain(sub)
	assert.Zero(t, n)
	publish(1)
	first, n = drain(sub)
	assert.Equal(t, [2]uint64{seq - 1, 1}, [2]uint64{first, n})
	rec, drop = counters(sub)
	assert.Equal(t, seq, rec+drop)
	drain(anon)
	ar, ad := counters(anon)
	assert.Equal(t, [2]uint64{6, 0}, [2]uint64{ar, ad}, "the anonymous subscriber's own counters")

	h, err := r.open()
	require.NoError(t, err)
	st, err := statsOf(h)
	require.NoError(t, err)
	assert.Equal(t, SubscriberKey("risk-engine"), st.Subscribers[0].Key)
	assert.Zero(t, st.Subscribers[1].Key)
}

// TestReclaimDead: a subscriber whose handle dies (its locks dropped, as
// the kernel does) stops holding the producer back within a watchdog.
func TestReclaimDead(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("dead", Options{Capacity: 8, LivenessTimeout: time.Hour})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	sub.s.host.(*heapHost).kill()
	publishTicks(t, pub, 100, true)
	// Reclaimed as soon as the producer looked (its liveness lock is
	// gone), not after a watchdog sleep: counters, not the clock, so a
	// loaded machine cannot fail it.
	assert.Zero(t, pub.p.watchdogFires, "the producer slept a watchdog period on a dead subscriber")
	assert.Equal(t, uint64(1), pub.p.evictions)
	// The next registrant reuses the entry with a new generation.
	sub2, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	assert.Equal(t, 0, sub2.c.idx)
	assert.Equal(t, uint64(2), sub2.c.gen) // 1 registered (and reclaimed: the eviction word says 1), 2 re-registered
	require.NoError(t, pub.Close())
}

// TestHostileHead: a subscriber that writes head = tail + 2^40 is evicted;
// the others lose nothing.
func TestHostileHead(t *testing.T) {
	// A liveness timeout far beyond the test: the hostile head must be
	// caught by validation, not by stall eviction.
	pub, r, err := newHeapRing[Tick]("hostile", Options{Capacity: 16, LivenessTimeout: time.Hour})
	require.NoError(t, err)
	bad, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	good, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	const n = 1000
	var res subResult
	var wg sync.WaitGroup
	wg.Go(func() { res = verify(good, modeRecv, 0, func() uint64 { return n }) })
	atomic.StoreUint64(bad.c.headP, 1<<40)
	t0 := time.Now()
	publishTicks(t, pub, n, true)
	assert.Less(t, time.Since(t0), 10*time.Second, "the producer waited on a hostile head")
	require.NoError(t, pub.Close())
	wg.Wait()
	assertResult(t, "good", res, n, true)
	var m Tick
	require.ErrorIs(t, bad.TryRecv(&m), ErrEvicted)
}

// TestRegistrationChurn: unlimited subscribers attach and detach while a
// Block producer runs; each sees a gap-free run from its first message.
func TestRegistrationChurn(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("churn", Options{Capacity: 32, Batch: 8, MaxSubscribers: 4})
	require.NoError(t, err)
	n := uint64(100_000)
	if raceEnabled {
		n = 30_000
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var joins atomic.Uint64
	for w := 0; w < 3; w++ {
		wg.Go(func() {
			for !stop.Load() {
				sub, err := r.attach(SubscribeOptions{})
				if errors.Is(err, ErrNoEntry) {
					continue
				}
				require.NoError(t, err)
				joins.Add(1)
				var m Tick
				first := true
				var next uint64
				for k := 0; k < 2000; k++ {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					err := sub.Recv(ctx, &m)
					cancel()
					if err != nil {
						break
					}
					require.True(t, m.intact())
					if !first {
						require.Equal(t, next, m.Seq, "gap after join")
					}
					first, next = false, m.Seq+1
				}
				require.Zero(t, sub.Dropped())
				require.NoError(t, sub.Close())
			}
		})
	}
	publishTicks(t, pub, n, true)
	stop.Store(true)
	require.NoError(t, pub.Close())
	wg.Wait()
	assert.Greater(t, joins.Load(), uint64(3))
	t.Logf("joins %d, producer watchdog fires %d, evictions %d", joins.Load(), pub.p.watchdogFires, pub.p.evictions)
}

func TestBlockTimeout(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("timeout", Options{Capacity: 4, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	publishTicks(t, pub, 4, true)
	t0 := time.Now()
	_, err = pub.Claim()
	require.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), `"timeout"`)
	assert.GreaterOrEqual(t, time.Since(t0), 50*time.Millisecond)
	var m Tick
	require.NoError(t, sub.TryRecv(&m))
	_, err = pub.Claim()
	require.NoError(t, err)
}

func TestDropNewestFull(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("full", Options{Capacity: 4, Policy: DropNewest})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	var m Tick
	for i := uint64(0); i < 6; i++ {
		m.fill(i)
		err := pub.Publish(&m)
		if i < 4 {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ErrFull)
		}
	}
	assert.Equal(t, uint64(2), pub.Dropped())
	assert.Equal(t, uint64(2), atomic.LoadUint64(pub.s.u64(offDroppedNewst)))
	for i := uint64(0); i < 4; i++ {
		require.NoError(t, sub.TryRecv(&m))
		require.Equal(t, i, m.Seq)
	}
	require.ErrorIs(t, sub.TryRecv(&m), ErrEmpty)
}

// TestLossyMaxLag: a subscriber with max lag L never lags more than L, and
// counts what it skipped.
func TestLossyMaxLag(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("lag", Options{Capacity: 64})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{MaxLag: 8})
	require.NoError(t, err)
	defer sub.Close()
	publishTicks(t, pub, 50, true) // never blocks: the only subscriber is lossy
	var m Tick
	require.NoError(t, sub.TryRecv(&m))
	assert.Equal(t, uint64(42), m.Seq)
	assert.Equal(t, uint64(42), sub.Dropped())
	assert.Equal(t, uint64(7), sub.Lag())
	_, err = r.attach(SubscribeOptions{MaxLag: 65})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestBorrowBatch(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("batch", Options{Capacity: 8})
	require.NoError(t, err)
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	ctx := context.Background()
	publishTicks(t, pub, 6, true)
	var m Tick
	for i := 0; i < 5; i++ {
		require.NoError(t, sub.TryRecv(&m))
	}
	var m2 Tick
	for i := uint64(6); i < 10; i++ {
		m2.fill(i)
		require.NoError(t, pub.Publish(&m2))
	}
	// Messages 5..9 sit in slots 5,6,7,0,1: the batch stops at the wrap.
	b, err := sub.BorrowBatch(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, 3, b.Len())
	for i := 0; i < b.Len(); i++ {
		assert.Equal(t, uint64(5+i), b.At(i).Seq)
		assert.True(t, b.At(i).intact())
	}
	assert.Panics(t, func() { b.At(3) })
	_, err = sub.TryBorrow()
	require.ErrorIs(t, err, ErrClaimed)
	require.NoError(t, sub.Release())
	b, err = sub.BorrowBatch(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, 2, b.Len())
	assert.Equal(t, uint64(8), b.At(0).Seq)
	require.NoError(t, sub.Release())
	assert.Equal(t, uint64(10), sub.Received())
}

// TestAlign64: slots of an @align(64) message are 64-byte aligned in the
// mapping.
func TestAlign64(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Book](name, Options{Capacity: 4, Policy: DropOldest})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := Attach[Book](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, uint64(128), pub.s.hdr.geo.slotSize)
	for i := uint64(0); i < 6; i++ {
		b, err := pub.Claim()
		require.NoError(t, err)
		require.Zero(t, uintptr(unsafe.Pointer(b))%64)
		b.Seq, b.Check = i, ^i
		require.NoError(t, pub.Commit())
	}
	var b Book
	require.NoError(t, sub.TryRecv(&b))
	assert.Equal(t, uint64(2), b.Seq)
	assert.Equal(t, ^uint64(2), b.Check)
	assert.Equal(t, uint64(2), sub.Dropped())
}

func TestAttachMismatch(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{})
	require.NoError(t, err)
	defer pub.Close()
	_, err = Attach[TickV2](name, SubscribeOptions{})
	require.ErrorIs(t, err, ErrMismatch)
	assert.Equal(t, `attach "`+name+`": ring: message type mismatch: fingerprint 0x7ac49e0f1d2b3c4d, want 0x7ac49e0f1d2bffff`, err.Error())
	_, err = Attach[Book](name, SubscribeOptions{})
	require.ErrorIs(t, err, ErrMismatch)
	_, err = Attach[Tick](name+"-missing", SubscribeOptions{})
	require.ErrorIs(t, err, ErrNotFound)
	// No entry was leaked by the refused attaches.
	st, err := Inspect(name)
	require.NoError(t, err)
	assert.Empty(t, st.Subscribers)
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"market.ticks", true},
		{"a", true},
		{"A-b_c.9", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{strings.Repeat("x", 256), false},
		{"a/b", false},
		{"/abs", false},
		{"..", false},
		{"a..b", false},
		{".", false},
		{"sp ace", false},
		{"nul\x00", false},
		{"é", false},
	} {
		err := ValidateName(tc.name)
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, ErrInvalidName, "%q", tc.name)
		}
	}
	_, err := Create[Tick]("../etc/passwd", Options{})
	require.ErrorIs(t, err, ErrInvalidName)
	assert.Contains(t, err.Error(), `"../etc/passwd"`)
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Capacity: 3}, {Capacity: 1}, {Capacity: 1 << 31}, {MaxSubscribers: -1}, {MaxSubscribers: 5000},
		{Capacity: 8, Batch: 5}, {Policy: 7}, {Timeout: -1}, {Mode: 0o666}, {Mode: os.ModeDir | 0o600},
	} {
		_, err := Create[Tick](ringName(t), o)
		assert.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
	assert.Empty(t, leftovers())
}

// TestSegmentSecurity: O_EXCL against squatters, exact modes despite the
// umask, refusal of world-writable segments.
func TestSegmentSecurity(t *testing.T) {
	name := ringName(t)
	// A squatter's pre-created 0666 file is refused by Create and Attach.
	require.NoError(t, os.WriteFile(ShmDir+"/"+name, make([]byte, 4096), 0o666))
	require.NoError(t, os.Chmod(ShmDir+"/"+name, 0o666))
	_, err := Create[Tick](name, Options{})
	require.ErrorIs(t, err, ErrExists)
	_, err = Attach[Tick](name, SubscribeOptions{})
	require.ErrorIs(t, err, ErrInsecure)
	require.NoError(t, os.Remove(ShmDir+"/"+name))

	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, mode := range []os.FileMode{0, 0o640} {
		name := ringName(t)
		pub, err := Create[Tick](name, Options{Mode: mode})
		require.NoError(t, err)
		fi, err := os.Stat(ShmDir + "/" + name)
		require.NoError(t, err)
		want := mode
		if want == 0 {
			want = 0o600
		}
		assert.Equal(t, want, fi.Mode().Perm())
		require.NoError(t, pub.Close())
		_, err = os.Stat(ShmDir + "/" + name)
		assert.True(t, os.IsNotExist(err), "owner's Close unlinks")
	}
	// A symlink is not followed.
	name = ringName(t)
	require.NoError(t, os.Symlink("/etc/hostname", ShmDir+"/"+name))
	_, err = Attach[Tick](name, SubscribeOptions{})
	require.Error(t, err)
	_, err = Create[Tick](name, Options{})
	require.Error(t, err)
	require.NoError(t, os.Remove(ShmDir+"/"+name))
}

// TestOtherUser: a ring is private to its creator's uid. Another user
// cannot open a default (0600) ring; with a group-shared mode it still needs
// to opt in to a foreign owner. Switching users needs root, which CI has.
func TestOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another uid; the 0600 mode itself is checked by TestSegmentSecurity")
	}
	// The test binary may sit in a private build directory: give the other
	// user a copy it can execute.
	bin := filepath.Join(t.TempDir(), "ring.test")
	data, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	// t.TempDir is <tmp>/<TestName><random>/<nnn>, both private.
	dir := filepath.Dir(bin)
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	attachAs := func(name string, foreign bool) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=attach", "RING="+name)
		if foreign {
			cmd.Env = append(cmd.Env, "FOREIGN=1")
		}
		// nobody, in the creator's group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: uint32(os.Getegid())}}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	private := ringName(t)
	pub, err := Create[Tick](private, Options{Capacity: 8})
	require.NoError(t, err)
	defer pub.Close()
	assert.Contains(t, attachAs(private, true), "permission denied")

	shared := ringName(t)
	old := unix.Umask(0)
	pub2, err := Create[Tick](shared, Options{Capacity: 8, Mode: 0o660})
	unix.Umask(old)
	require.NoError(t, err)
	defer pub2.Close()
	assert.Contains(t, attachAs(shared, false), fmt.Sprintf("owner uid %d, want 65534", os.Geteuid()))
	assert.Equal(t, "attached", attachAs(shared, true))
}

func TestNoSpace(t *testing.T) {
	_, err := Create[Tick](ringName(t), Options{Capacity: MaxCapacity})
	require.ErrorIs(t, err, ErrNoSpace)
	assert.Empty(t, leftovers())
}

func TestInspect(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 64, MaxSubscribers: 2})
	require.NoError(t, err)
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	lossy, err := Attach[Tick](name, SubscribeOptions{MaxLag: 16})
	require.NoError(t, err)
	publishTicks(t, pub, 40, true)
	var m Tick
	for i := 0; i < 10; i++ {
		require.NoError(t, sub.TryRecv(&m))
	}
	sub.c.flushStats()
	st, err := Inspect(name)
	require.NoError(t, err)
	assert.Equal(t, uint64(tickFingerprint), st.Fingerprint)
	assert.Equal(t, "active", st.Producer.State)
	assert.True(t, st.Producer.Alive)
	assert.Equal(t, os.Getpid(), st.Producer.PID)
	assert.Equal(t, uint64(40), st.Producer.Published)
	assert.Equal(t, uint64(40), st.Fill) // the lossy subscriber is slowest
	require.Len(t, st.Subscribers, 2)
	assert.Equal(t, SubscriberStats{Index: 0, State: "active", PID: os.Getpid(), Alive: true, Generation: 1,
		Head: 10, Received: 10, Lag: 30}, withoutAge(st.Subscribers[0]))
	assert.Equal(t, uint64(16), st.Subscribers[1].MaxLag)
	var sb strings.Builder
	require.NoError(t, WriteStats(&sb, st))
	out := sb.String()
	for _, want := range []string{name, "0x7ac49e0f1d2b3c4d", "64 line slots", "slot 128 B", "policy block", "fill      40/64",
		"RECEIVED", "unlimited", "active", "yes"} {
		assert.Contains(t, out, want)
	}
	t.Log("\n" + out)
	require.NoError(t, sub.Close())
	require.NoError(t, lossy.Close())
	require.NoError(t, pub.Close())
	_, err = Inspect(name)
	require.ErrorIs(t, err, ErrNotFound)
}

func withoutAge(s SubscriberStats) SubscriberStats { s.HeartbeatAge = 0; return s }

// TestInspectBadSegments: empty, truncated, garbage and not-ready segments
// are errors, never crashes.
func TestInspectBadSegments(t *testing.T) {
	good := ringName(t)
	pub, err := Create[Tick](good, Options{Capacity: 64})
	require.NoError(t, err)
	raw, err := os.ReadFile(ShmDir + "/" + good)
	require.NoError(t, err)
	require.NoError(t, pub.Close())
	notReady := append([]byte(nil), raw...)
	putLE32(notReady[offReady:], 0)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty (creator has not sized it)", nil, ErrNotReady},
		{"short", raw[:100], ErrCorrupt},
		{"header only", raw[:HeaderSize], ErrCorrupt},
		{"truncated slots", raw[:len(raw)-1], ErrCorrupt},
		{"garbage", []byte(strings.Repeat("garbage!", 200)), ErrCorrupt},
		{"not ready", notReady, ErrNotReady},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := ringName(t)
			require.NoError(t, os.WriteFile(ShmDir+"/"+name, tc.data, 0o600))
			_, err := Inspect(name)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), name)
			_, err = Attach[Tick](name, SubscribeOptions{ReadyTimeout: 10 * time.Millisecond})
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// TestRemoveStale: the segments of SIGKILLed owners are removed; live rings
// are never removed.
func TestRemoveStale(t *testing.T) {
	prefix := ringName(t) + "-"
	var names []string
	for i := 0; i < 5; i++ {
		name := prefix + strconv.Itoa(i)
		t.Cleanup(func() { _ = unlinkSegment(name) })
		c := startChild(t, "owner", map[string]string{"RING": name})
		c.expect(t, "ready")
		c.kill(t)
		names = append(names, name)
	}
	live := prefix + "live"
	t.Cleanup(func() { _ = unlinkSegment(live) })
	pub, err := Create[Tick](live, Options{})
	require.NoError(t, err)
	require.ErrorIs(t, Remove(live), ErrInUse)
	// Creating over a name reports its owner and whether it is stale.
	_, err = Create[Tick](names[0], Options{})
	require.ErrorIs(t, err, ErrExists)
	assert.Regexp(t, `created \d+s ago by pid \d+, whose publisher is dead: it is stale; remove it with ring.Remove or `+
		"`tachyon-gen stat --reap "+names[0]+"`", err.Error())
	_, err = Create[Tick](live, Options{})
	require.ErrorIs(t, err, ErrExists)
	assert.Contains(t, err.Error(), fmt.Sprintf("by pid %d, whose publisher is alive", os.Getpid()))
	removed, err := RemoveStale(prefix)
	require.NoError(t, err)
	assert.ElementsMatch(t, names, removed)
	_, err = Inspect(live)
	require.NoError(t, err)
	require.NoError(t, pub.Close())
	require.ErrorIs(t, Remove(live), ErrNotFound)
	// A file that is not a ring is never removed.
	other := prefix + "other"
	require.NoError(t, os.WriteFile(ShmDir+"/"+other, []byte("not a ring, just bytes"), 0o600))
	require.ErrorIs(t, Remove(other), ErrCorrupt)
	require.NoError(t, os.Remove(ShmDir+"/"+other))
}

// TestAllocs: 0 allocations per message on claim/commit, publish,
// borrow/release, batch borrow and copy receive.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 1024, Policy: DropOldest})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	ctx := context.Background()
	var m Tick
	allocs := testing.AllocsPerRun(10000, func() {
		p, _ := pub.Claim()
		p.Seq++
		_ = pub.Commit()
		_ = pub.Publish(&m)
		b, _ := sub.Borrow(ctx)
		_ = b.Seq
		_ = sub.Release()
		bt, _ := sub.BorrowBatch(ctx, 8)
		_ = bt.At(0)
		_ = sub.Release()
	})
	assert.Zero(t, allocs)
	allocs = testing.AllocsPerRun(10000, func() {
		_ = pub.Publish(&m)
		_ = sub.Recv(ctx, &m)
		_ = sub.TryRecv(&m)
	})
	assert.Zero(t, allocs)
}

// TestParkedWakeups: ping-pong where both sides park every time (no
// spinning): no wake-up is lost (the watchdog never finds data waiting).
func TestParkedWakeups(t *testing.T) {
	n := 20_000
	if raceEnabled || testing.Short() {
		n = 2_000
	}
	ping, pong := ringName(t), ringName(t)
	opts := Options{Capacity: 8, spin: -1}
	pp, err := Create[Tick](ping, opts)
	require.NoError(t, err)
	qp, err := Create[Tick](pong, opts)
	require.NoError(t, err)
	defer qp.Close()
	ps, err := Attach[Tick](ping, SubscribeOptions{spin: -1})
	require.NoError(t, err)
	defer ps.Close()
	qs, err := Attach[Tick](pong, SubscribeOptions{spin: -1})
	require.NoError(t, err)
	defer qs.Close()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m Tick
		for ps.Recv(ctx, &m) == nil {
			_ = qp.Publish(&m)
		}
	}()
	var m Tick
	t0 := time.Now()
	for i := 0; i < n; i++ {
		m.fill(uint64(i))
		require.NoError(t, pp.Publish(&m))
		require.NoError(t, qs.Recv(ctx, &m))
		require.Equal(t, uint64(i), m.Seq)
	}
	require.NoError(t, pp.Close()) // ends the echo goroutine
	<-done
	assert.Zero(t, qs.c.lostWakeups+ps.c.lostWakeups, "lost wake-ups")
	t.Logf("%d parked round trips in %v; watchdog fired %d times, lost wake-ups 0", n, time.Since(t0), qs.c.watchdogFires+ps.c.watchdogFires)
}

// TestIdleCPU: a subscriber blocked on an idle ring uses ~0% CPU.
func TestIdleCPU(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	cpu := func() time.Duration {
		var ru unix.Rusage
		require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// t0 before the deadline is set: the wait is measured from no later
	// than the moment the deadline starts counting.
	c0, t0 := cpu(), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var m Tick
	require.ErrorIs(t, sub.Recv(ctx, &m), context.DeadlineExceeded)
	used, wall := cpu()-c0, time.Since(t0)
	assert.GreaterOrEqual(t, wall, time.Second, "returned before its deadline")
	assert.Less(t, wall, time.Second+Watchdog, "the deadline ends the sleep, not the watchdog")
	assert.Less(t, used, 30*time.Millisecond, "idle subscriber CPU")
	t.Logf("idle for %v: %v CPU (%.2f%%)", wall, used, 100*used.Seconds()/wall.Seconds())
}

// TestRecvCancel: cancelling the context wakes a parked receive promptly.
func TestRecvCancel(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("cancel", Options{})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	t0 := time.Now()
	_, err = sub.Borrow(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.GreaterOrEqual(t, time.Since(t0), 30*time.Millisecond)
	assert.Zero(t, sub.c.watchdogFires, "woken by the cancellation, not by the watchdog")
}

// TestSubscriberTableFull: N entries, then ErrNoEntry; a closed entry is
// reused.
func TestSubscriberTableFull(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{MaxSubscribers: 2})
	require.NoError(t, err)
	defer pub.Close()
	a, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	b, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer b.Close()
	_, err = Attach[Tick](name, SubscribeOptions{})
	require.ErrorIs(t, err, ErrNoEntry)
	require.NoError(t, a.Close())
	c, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	assert.Equal(t, 0, c.c.idx)
	require.NoError(t, c.Close())
}

// Compile-time: syscall is used for SIGKILL in the harness.
var _ = syscall.SIGKILL

// TestCreateAttachRace (HAZARDS 4): attachers racing a creator see "not
// found", "not ready" or a complete, valid header, never a corrupt one.
func TestCreateAttachRace(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for i := range rounds {
		name := ringName(t)
		done := make(chan error, 1)
		go func() {
			for {
				sub, err := Attach[Tick](name, SubscribeOptions{})
				if err == nil {
					done <- sub.Close()
					return
				}
				if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotReady) {
					done <- err
					return
				}
			}
		}()
		if i%3 == 0 {
			time.Sleep(time.Duration(i%50) * time.Microsecond)
		}
		pub, err := Create[Tick](name, Options{Capacity: 64})
		require.NoError(t, err)
		require.NoError(t, <-done, "round %d", i)
		require.NoError(t, pub.Close())
	}
}

// TestCloseUnlinksOnlyItsOwnName: an owner whose name was removed and taken
// by another ring leaves the newcomer alone when it closes.
func TestCloseUnlinksOnlyItsOwnName(t *testing.T) {
	name := ringName(t)
	first, err := Create[Tick](name, Options{Capacity: 8})
	require.NoError(t, err)
	require.NoError(t, os.Remove(ShmDir+"/"+name)) // an operator removed it
	second, err := Create[Tick](name, Options{Capacity: 8})
	require.NoError(t, err)
	require.NoError(t, first.Close())
	_, err = Inspect(name)
	require.NoError(t, err, "the second ring's name must survive the first one's Close")
	require.NoError(t, second.Close())
	_, err = os.Stat(ShmDir + "/" + name)
	assert.True(t, os.IsNotExist(err))
}

// TestWatchOffsets: a waiting reader loads, beside the stamp, one word of
// every other cache line a slot spans, wherever the slot starts (slots are
// 8-aligned, not line-aligned), never a word outside the slot, and at most
// maxWatchLines words; a slot spanning more lines is watched in its first
// ones and its last. Checked against the lines each placement really spans.
func TestWatchOffsets(t *testing.T) {
	for size := uint64(16); size <= 1024; size += 8 {
		var w [maxWatchLines]uint64
		n := watchOffsets(&w, size)
		require.LessOrEqual(t, n, maxWatchLines)
		for _, off := range w[:n] {
			require.LessOrEqual(t, off+8, size, "slot size %d: offset %d leaves the slot", size, off)
			require.Zero(t, off%8, "slot size %d: offset %d is not 8-aligned", size, off)
		}
		for start := uint64(0); start < 64; start += 8 {
			first, last := start/64, (start+size-1)/64
			covered := map[uint64]bool{first: true} // the stamp's line
			for _, off := range w[:n] {
				covered[(start+off)/64] = true
			}
			require.True(t, covered[last], "slot size %d at %d: its last line is not watched", size, start)
			if last-first+1 <= maxWatchLines {
				for line := first; line <= last; line++ {
					require.True(t, covered[line], "slot size %d at %d: line %d not watched", size, start, line)
				}
			}
		}
	}
}

// TestUseAfterClose: every call on a closed handle returns a clear error
// (ErrClosed, "this subscriber was closed") or a zero value, and names
// survive; none reads the unmapped segment.
func TestUseAfterClose(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 16})
	require.NoError(t, err)
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	raw, err := AttachAny(name, SubscribeOptions{})
	require.NoError(t, err)
	require.NoError(t, pub.Publish(&Tick{Seq: 1}))
	pub.Flush()
	require.NoError(t, sub.Close())
	require.NoError(t, raw.Close())

	ctx := context.Background()
	var m Tick
	for what, err := range map[string]error{
		"TryRecv": sub.TryRecv(&m), "Recv": sub.Recv(ctx, &m), "Release": sub.Release(),
		"raw Release": raw.Release(),
	} {
		require.ErrorIs(t, err, ErrClosed, what)
		assert.Contains(t, err.Error(), "this subscriber was closed", what)
		assert.Contains(t, err.Error(), name, what)
	}
	_, err = sub.Borrow(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = sub.TryBorrow()
	assert.ErrorIs(t, err, ErrClosed)
	_, err = sub.BorrowBatch(ctx, 8)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = raw.BorrowBatch(ctx, 8)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = raw.TryBorrowBatch(8)
	assert.ErrorIs(t, err, ErrClosed)
	yields := 0
	for m, err := range sub.Messages(ctx) {
		yields++
		assert.Nil(t, m)
		assert.ErrorIs(t, err, ErrClosed, "yielded once, as any error but the publisher's close")
	}
	assert.Equal(t, 1, yields)
	assert.Zero(t, sub.Lag())
	assert.Zero(t, raw.Lag())
	assert.Equal(t, name, sub.Name())
	assert.Equal(t, name, raw.Name())
	assert.NoError(t, sub.Close(), "a second Close is a no-op")

	require.NoError(t, pub.Close())
	assert.Equal(t, name, pub.Name())
	_, err = pub.Claim()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, pub.Publish(&m), ErrClosed)
}
