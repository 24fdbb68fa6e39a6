package ring

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file pin issue 14's protocol races (5-7) and the lost
// wake-ups of close and cancellation. Each interleaving is forced with
// testHook, which pauses one party at a named step while the test plays the
// other: no sleeps, no luck. Each failed on ABI v1.

// withHook installs fn as testHook for the rest of the test.
func withHook(t *testing.T, fn func(point string)) {
	t.Helper()
	testHook = fn
	t.Cleanup(func() { testHook = nil })
}

// once returns a hook that runs fn the first time point is reached.
func once(point string, fn func()) func(string) {
	var o sync.Once
	return func(p string) {
		if p == point {
			o.Do(fn)
		}
	}
}

// publishNext publishes n ticks whose seq is their ring index.
func publishNext(t *testing.T, pub *Publisher[Tick], n int) {
	t.Helper()
	var m Tick
	for i := 0; i < n; i++ {
		m.fill(pub.Published())
		require.NoError(t, pub.Publish(&m))
	}
}

// publishUntilBlocked publishes ticks from seq on until a Block publisher
// with a short timeout reports that it waits; it returns the next seq.
func publishUntilBlocked(t *testing.T, pub *Publisher[Tick], seq uint64) uint64 {
	t.Helper()
	var m Tick
	for ; ; seq++ {
		m.fill(seq)
		if err := pub.Publish(&m); err != nil {
			require.ErrorIs(t, err, ErrTimeout)
			return seq
		}
	}
}

// TestRaceResumeProvisionalHead (race 5): a named subscriber resumes at its
// last position while the producer, held back by another subscriber,
// rescans between the registrant's two head stores. On v1 the first store
// put the live tail in the entry, so the producer's limit ran a lap past
// the backlog and overwrote it. Now the provisional head is never above the
// final one: the backlog survives, and the resumed subscriber loses at most
// the 2*batch margin of the epoch handshake (§8.4), and nothing else.
func TestRaceResumeProvisionalHead(t *testing.T) {
	const capacity = 16
	pub, r, err := newHeapRing[Tick]("resume5", Options{Capacity: capacity, MaxSubscribers: 2, Timeout: 20 * time.Millisecond, LivenessTimeout: time.Hour})
	require.NoError(t, err)
	defer pub.Close()
	other, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer other.Close()
	drain := func() {
		var m Tick
		for other.TryRecv(&m) == nil {
		}
	}
	named, err := r.attach(SubscribeOptions{Name: "risk", Start: StartLast})
	require.NoError(t, err)
	publishNext(t, pub, 10)
	var m Tick
	for i := 0; i < 10; i++ {
		require.NoError(t, named.TryRecv(&m))
	}
	require.NoError(t, named.Close()) // its last position: 10
	publishNext(t, pub, 4)            // tail 14; the backlog is 10..13
	drain()

	// While the returning subscriber is joining, the producer fills the
	// ring as far as it may: it rescans at its limit (the other subscriber
	// drained everything) and sees the joining entry.
	var stoppedAt uint64
	withHook(t, once("register:joining", func() {
		drain()
		stoppedAt = publishUntilBlocked(t, pub, 14)
	}))
	back, err := r.attach(SubscribeOptions{Name: "risk", Start: StartLast})
	require.NoError(t, err)
	defer back.Close()
	testHook = nil
	assert.Equal(t, uint64(10+capacity), stoppedAt, "the producer stops a lap past the backlog, not a lap past the tail")

	// Every message from its start is intact and in order; what it lost is
	// only the handshake's margin.
	start := back.c.head
	assert.LessOrEqual(t, start, uint64(10+2*pub.p.batch), "start %d: the backlog 10..13 was overwritten", start)
	assert.Equal(t, start-10, back.Dropped())
	for want := start; want < stoppedAt; want++ {
		require.NoError(t, back.TryRecv(&m))
		require.Equal(t, want, m.Seq)
		require.True(t, m.intact())
	}
	drain()
	publishNext(t, pub, 4)
	for want := stoppedAt; want < stoppedAt+4; want++ {
		require.NoError(t, back.TryRecv(&m))
		require.Equal(t, want, m.Seq)
	}
}

// TestRaceResumeAheadOfTail (race 6): a named subscriber that read
// committed messages ahead of the published tail (the stamp fast path,
// batch 8) and then closed keeps its position and counters when it comes
// back. On v1 the resume check required head <= tail: it started fresh,
// with received 0, and was sent the same messages again.
func TestRaceResumeAheadOfTail(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("resume6", Options{Capacity: 64, Batch: 8})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := r.attach(SubscribeOptions{Name: "audit", Start: StartLast})
	require.NoError(t, err)
	publishNext(t, pub, 3) // committed, not published (batch 8)
	require.Zero(t, loadTail(pub.s))
	var m Tick
	for i := uint64(0); i < 3; i++ {
		require.NoError(t, sub.TryRecv(&m))
		require.Equal(t, i, m.Seq)
	}
	require.NoError(t, sub.Close())

	back, err := r.attach(SubscribeOptions{Name: "audit", Start: StartLast})
	require.NoError(t, err)
	defer back.Close()
	assert.Equal(t, uint64(3), back.Received(), "counters carried over")
	publishNext(t, pub, 1)
	pub.Flush()
	require.NoError(t, back.TryRecv(&m))
	assert.Equal(t, uint64(3), m.Seq, "resumed where it stopped, nothing delivered twice")
}

// TestRaceHeldBackMessage (race 7): a batching producer commits a message
// and holds it back (no subscriber sleeps yet); the subscriber then parks.
// On v1 it re-checked only the tail and slept: an unlimited subscriber got
// the message after the 200 ms watchdog, a lossy one not until the next
// publication. Now parking looks at the stamp of head too, and the
// producer fences (or the subscriber issues a membarrier) between the
// commit and the sleeper-flag load.
func TestRaceHeldBackMessage(t *testing.T) {
	for _, maxLag := range []int{0, 32} {
		for _, fences := range []Fences{FencesStrong, FencesAuto} {
			name := map[int]string{0: "unlimited", 32: "lossy"}[maxLag] + "/" + fences.String()
			t.Run(name, func(t *testing.T) {
				pub, r, err := newHeapRing[Tick]("held"+name, Options{Capacity: 64, Batch: 8, Fences: fences})
				require.NoError(t, err)
				defer pub.Close()
				sub, err := r.attach(SubscribeOptions{MaxLag: maxLag, spin: -1})
				require.NoError(t, err)
				defer sub.Close()
				// The subscriber found nothing and is about to park: the
				// producer commits now, sees no sleeper and holds it back.
				withHook(t, once("wait:park", func() { publishNext(t, pub, 1) }))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var m Tick
				require.NoError(t, sub.Recv(ctx, &m))
				assert.Equal(t, uint64(0), m.Seq)
				assert.Zero(t, loadTail(pub.s), "the message was still held back")
				assert.Zero(t, sub.c.watchdogFires, "delivered without waiting for the watchdog")
			})
		}
	}
}

// TestWakeAtTheBrink: a close, or a cancellation, that lands after the
// subscriber's last check and before it sleeps is not lost. On v1 both
// woke the tail's futex word without changing it, so a waiter that had
// not yet entered futex_wait slept until the watchdog.
func TestWakeAtTheBrink(t *testing.T) {
	for _, what := range []string{"close", "cancel"} {
		t.Run(what, func(t *testing.T) {
			pub, r, err := newHeapRing[Tick]("brink-"+what, Options{Capacity: 8})
			require.NoError(t, err)
			defer pub.Close()
			sub, err := r.attach(SubscribeOptions{spin: -1})
			require.NoError(t, err)
			defer sub.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			withHook(t, once("wait:futex", func() {
				if what == "close" {
					require.NoError(t, pub.Close())
				} else {
					cancel()
				}
			}))
			var m Tick
			t0 := time.Now()
			err = sub.Recv(ctx, &m)
			if what == "close" {
				require.ErrorIs(t, err, ErrClosed)
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}
			assert.Zero(t, sub.c.watchdogFires, "woken, not rescued by the watchdog")
			assert.Less(t, time.Since(t0), Watchdog/2)
		})
	}
}

// TestJoiningIsNotRegistered: while a subscriber registers, the publisher
// does not count it (Subscribers, WaitSubscribers), and once it counts it,
// every message published afterwards reaches it. On v1 an entry was
// "active" before its start index was fixed, so a publisher that waited
// for it could start publishing past where it then started (the peers'
// --wait-subscribers race).
func TestJoiningIsNotRegistered(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("joining", Options{Capacity: 1024})
	require.NoError(t, err)
	defer pub.Close()
	joining := make(chan struct{})
	proceed := make(chan struct{})
	withHook(t, func(p string) {
		if p == "register:epoch" {
			close(joining)
			<-proceed
		}
	})
	type result struct {
		sub *Subscriber[Tick]
		err error
	}
	done := make(chan result)
	go func() {
		sub, err := r.attach(SubscribeOptions{})
		done <- result{sub, err}
	}()
	<-joining
	assert.Zero(t, pub.Subscribers(), "a joining entry is not registered yet")
	publishNext(t, pub, 5) // published while it joins: not promised to it
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	require.Error(t, pub.WaitSubscribers(ctx, 1))
	cancel()
	close(proceed)
	res := <-done
	require.NoError(t, res.err)
	sub := res.sub
	defer sub.Close()
	testHook = nil
	require.NoError(t, pub.WaitSubscribers(context.Background(), 1))
	assert.Equal(t, 1, pub.Subscribers())
	first := pub.Published()
	publishNext(t, pub, 100)
	pub.Flush()
	var m Tick
	for want := first; want < first+100; want++ {
		require.NoError(t, sub.TryRecv(&m))
		require.Equal(t, want, m.Seq)
	}
}

// TestMembarrierLessSubscriber: on an asymmetric ring, a subscriber that
// cannot issue membarrier joins with the STRONG flag; the producer's next
// scan acknowledges it and switches to strong fences for good, and from
// then on the subscriber parks and is woken with no watchdog rescue.
func TestMembarrierLessSubscriber(t *testing.T) {
	if !membarrierRegistered() {
		t.Skip("this process cannot register for membarrier: every ring it creates is strong")
	}
	pub, r, err := newHeapRing[Tick]("mbless", Options{Capacity: 64, Fences: FencesAsymmetric})
	require.NoError(t, err)
	defer pub.Close()
	require.True(t, pub.p.asym)
	require.False(t, pub.p.strong)
	sub, err := r.attach(SubscribeOptions{noMembarrier: true, spin: -1})
	require.NoError(t, err)
	defer sub.Close()
	require.True(t, sub.c.strong)
	assert.Equal(t, 1, pub.Subscribers()) // the scan acknowledges and switches
	assert.True(t, pub.p.strong, "the producer fences for a membarrier-less subscriber")

	const n = 2000
	done := make(chan error, 1)
	go func() {
		var m Tick
		for i := uint64(0); i < n; i++ {
			if err := sub.Recv(context.Background(), &m); err != nil {
				done <- err
				return
			}
			if m.Seq != i || !m.intact() {
				done <- errors.New("out of order or torn")
				return
			}
		}
		done <- nil
	}()
	var m Tick
	for i := uint64(0); i < n; i++ {
		m.fill(i)
		require.NoError(t, pub.Publish(&m))
		if i%64 == 0 {
			time.Sleep(50 * time.Microsecond) // let the subscriber park now and then
		}
	}
	require.NoError(t, <-done)
	assert.Zero(t, sub.c.lostWakeups, "lost wake-ups")
}

// TestProtectedBatchEvicted: an unlimited subscriber of a Block ring skips
// the per-slot stamp checks of its batches (ABI.md §8.5 step 4); if it was
// evicted while it held a batch, the producer may have overwritten it, and
// Release must say so from the eviction word alone.
func TestProtectedBatchEvicted(t *testing.T) {
	pub, r, err := newHeapRing[Tick]("protected", Options{Capacity: 8, LivenessTimeout: 50 * time.Millisecond, Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := r.attach(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	require.True(t, sub.c.protected)
	publishNext(t, pub, 8)
	b, err := sub.BorrowBatch(context.Background(), 8)
	require.NoError(t, err)
	require.Equal(t, 8, b.Len())
	publishNext(t, pub, 8) // waits out the liveness timeout, evicts, overwrites the batch
	assert.Equal(t, uint64(1), pub.p.evictions)
	require.ErrorIs(t, sub.Release(), ErrOverwritten)
	assert.Equal(t, uint64(8), sub.Dropped())
	assert.Zero(t, sub.Received())
}
