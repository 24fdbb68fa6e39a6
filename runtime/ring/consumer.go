package ring

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// statsEvery is how many head stores pass between flushes of the
// received/dropped/heartbeat statistics to the segment.
const statsEvery = 256

// consumer is the untyped subscriber side of the protocol in ABI.md
// "Receiving". It is not safe for concurrent use.
type consumer struct {
	s   *shm
	idx int
	gen uint64

	// Pointers into the segment, computed once from the local geometry.
	headP      *uint64
	receivedP  *uint64
	droppedP   *uint64
	heartbeatP *uint64
	genP       *uint64
	stateP     *uint32
	sleepP     *uint32
	tailP      *uint64
	prodSleepP *uint32
	prodStateP *uint32
	waitEntryP *uint32
	waitHeadP  *uint64
	slots      unsafe.Pointer

	slotSize uint64
	msgOff   uint64
	mask     uint64
	capacity uint64
	window   uint64 // a lag beyond this is skipped and counted as dropped
	spin     int
	// Offsets from a slot's stamp of one word in each further cache line
	// the slot may span (at most maxWatchLines-1 of them), which a waiting
	// reader loads beside the stamp: see peek.
	watch  [maxWatchLines]uint64
	nWatch int

	head       uint64 // next index to read
	tail       uint64 // committed up to here, as far as we know (monotonic)
	loaded     uint64 // last tail loaded from the header (monotonic)
	join       uint64 // head at registration
	received   uint64
	dropped    uint64
	nb         uint64 // slots borrowed from head
	sinceStats uint64
	lastLive   time.Time
	closed     bool

	// Diagnostics, read by tests.
	watchdogFires uint64
	lostWakeups   uint64
}

// register claims a subscriber entry under the registry lock (ABI.md
// "Registration") and returns the consumer that owns it.
//
// A named subscriber (key != 0) first looks for the entry a subscriber of
// the same name left — closed, or dead so that its liveness lock can be
// taken — and takes it over with its counters (ABI.md §8.4, "Resuming").
func register(s *shm, maxLag uint64, spin int, key uint64, start Start) (*consumer, error) {
	g := &s.hdr.geo
	if maxLag > g.capacity {
		return nil, fmt.Errorf("attach %q: %w: max lag %d exceeds capacity %d", s.name, ErrInvalidOptions, maxLag, g.capacity)
	}
	h := s.host
	if err := h.lockRegistry(registryTimeout); err != nil {
		return nil, fmt.Errorf("attach %q: registry lock: %w", s.name, err)
	}
	defer h.unlockRegistry()
	idx := -1
	resume := false
	if key != 0 {
		for i := 0; i < int(g.maxSubs); i++ {
			e := s.entryOff(i)
			if atomic.LoadUint64(s.u64(e+entKey)) != key {
				continue
			}
			ok, err := h.tryLockEntry(i)
			if err != nil {
				return nil, fmt.Errorf("attach %q: lock entry %d: %w", s.name, i, err)
			}
			if ok {
				idx, resume = i, true
				break
			}
		}
	}
	// Otherwise a fresh entry: first one no named subscriber may come back
	// to, and only when the table has none left, a departed named
	// subscriber's (its resume state is then lost).
	for pass := 0; pass < 2 && idx < 0; pass++ {
		for i := 0; i < int(g.maxSubs); i++ {
			if pass == 0 && atomic.LoadUint64(s.u64(s.entryOff(i)+entKey)) != 0 {
				continue
			}
			// A free entry, or one whose owner died (its liveness lock is
			// gone), can be locked; a live owner's cannot.
			ok, err := h.tryLockEntry(i)
			if err != nil {
				return nil, fmt.Errorf("attach %q: lock entry %d: %w", s.name, i, err)
			}
			if ok {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("attach %q: %w: all %d entries have live owners", s.name, ErrNoEntry, g.maxSubs)
	}
	c := &consumer{
		s:          s,
		idx:        idx,
		tailP:      s.u64(offTail),
		prodSleepP: s.u32(offProdSleeping),
		prodStateP: s.u32(offProdState),
		waitEntryP: s.u32(offProdWaitEntry),
		waitHeadP:  s.u64(offProdWaitHead),
		sleepP:     s.u32(g.sleepersOf + 4*uint64(idx)),
		slots:      unsafe.Add(s.base, g.slotsOff),
		slotSize:   g.slotSize,
		msgOff:     g.slotMsgOff,
		mask:       g.mask,
		capacity:   g.capacity,
		window:     g.capacity,
		spin:       spin,
	}
	if maxLag > 0 {
		c.window = maxLag
	}
	if !raceEnabled {
		// Under the race detector the watch loads would race with the
		// producer's plain message writes (by design: their values are
		// never used), so a race build spins on the stamp alone.
		c.nWatch = watchOffsets(&c.watch, g.slotSize)
	}
	e := s.entryOff(idx)
	c.headP, c.receivedP, c.droppedP = s.u64(e+entHead), s.u64(e+entReceived), s.u64(e+entDropped)
	c.heartbeatP, c.genP, c.stateP = s.u64(e+entHeartbeat), s.u64(e+entGen), s.u32(e+entState)

	// Registry writes (we hold the flock, so we are their only writer; all
	// sequentially consistent stores). A reclaimed entry is first made
	// non-active so the producer stops reading its old head.
	// A resumed entry's last position and counters: untrusted numbers,
	// read once, before the entry is reset.
	lastHead, received, dropped, join := uint64(0), uint64(0), uint64(0), uint64(0)
	if resume {
		lastHead, join = atomic.LoadUint64(c.headP), atomic.LoadUint64(s.u64(e+entJoin))
		received, dropped = atomic.LoadUint64(c.receivedP), atomic.LoadUint64(c.droppedP)
	}
	c.gen = atomic.LoadUint64(c.genP) + 1
	atomic.StoreUint32(c.stateP, entFree)
	atomic.StoreUint64(c.genP, c.gen)
	t := atomic.LoadUint64(c.tailP)
	atomic.StoreUint64(c.headP, t)
	atomic.StoreUint64(c.receivedP, received)
	atomic.StoreUint64(c.droppedP, dropped)
	atomic.StoreUint64(s.u64(e+entKey), key)
	atomic.StoreUint64(c.heartbeatP, monoNow())
	atomic.StoreUint32(s.u32(e+entPID), uint32(processID()))
	atomic.StoreUint64(s.u64(e+entStartTime), processStartTime())
	atomic.StoreUint64(s.u64(e+entMaxLag), maxLag)
	atomic.StoreUint64(s.u64(e+entJoin), t)
	atomic.StoreUint32(c.sleepP, 0)
	atomic.StoreUint32(c.stateP, entActive) // after head and max_lag
	epoch := s.u64(offRegEpoch)
	atomic.StoreUint64(epoch, atomic.LoadUint64(epoch)+1)
	// Handshake with publish(): we stored the epoch, now load the tail. The
	// producer either saw the epoch and rescans, or its tail is at most t2,
	// and it writes at most one batch (<= capacity/2) before its next
	// epoch check, so index t2 is not overwritten before it sees us.
	t2 := atomic.LoadUint64(c.tailP)
	from := t2
	if resume && join <= lastHead && lastHead <= t2 && dropped <= lastHead-join {
		// Resume. The head is exact; the counters were flushed on close,
		// but a subscriber that died may not have flushed its last few
		// hundred: attribute that progress to received, so that
		// received + dropped == head - join holds again. The producer may have committed up to a batch
		// beyond t2 and writes at most one more before it sees us, so
		// index t2 + 2*batch - capacity and above are intact (2*batch <=
		// capacity); older messages were overwritten while we were away.
		received = lastHead - join - dropped
		if start == StartLast {
			from = max(lastHead, sat(t2+2*uint64(s.hdr.batch), g.capacity))
		}
		dropped += from - lastHead
	} else {
		// Fresh, or an entry whose numbers do not add up: start over.
		received, dropped, join = 0, 0, from
	}
	atomic.StoreUint64(c.headP, from)
	atomic.StoreUint64(s.u64(e+entJoin), join)
	atomic.StoreUint64(c.droppedP, dropped)
	atomic.StoreUint64(c.receivedP, received)
	c.head, c.tail, c.loaded, c.join = from, t2, t2, join
	c.received, c.dropped = received, dropped
	if atomic.LoadUint32(c.prodSleepP) != 0 {
		c.wakeProducer()
	}
	return c, nil
}

// maxWatchLines bounds the cache lines of a slot a waiting reader keeps
// warm; the copy of a larger message costs more than its first lines' wait.
const maxWatchLines = 4

// watchOffsets fills w with the offsets, from a slot's stamp, of one 8-byte
// word in each cache line after the stamp's that a slot of slotSize bytes
// may span (slots are 8-aligned, not line-aligned), and returns how many.
func watchOffsets(w *[maxWatchLines]uint64, slotSize uint64) int {
	n := 0
	for off := uint64(64); off < slotSize && n < maxWatchLines-1; off += 64 {
		w[n] = off
		n++
	}
	if last := slotSize - 8; n == 0 || w[n-1] != last {
		w[n] = last // the slot's last word, which may lie one line further
		n++
	}
	return n
}

func (c *consumer) stamp(idx uint64) *uint64 {
	return (*uint64)(unsafe.Add(c.slots, (idx&c.mask)*c.slotSize))
}

func (c *consumer) msg(idx uint64) unsafe.Pointer {
	return unsafe.Add(c.slots, (idx&c.mask)*c.slotSize+c.msgOff)
}

// poll returns how many messages are readable from head without waiting,
// skipping (and counting) any beyond the lag window.
func (c *consumer) poll() (uint64, error) {
	if c.head >= c.tail {
		// Fast path: the next slot's committed stamp (2h+2, stored after the
		// message bytes; pairs with the producer's commit store) proves slot
		// h complete before the producer publishes tail, so a caught-up
		// reader takes one cache line (the slot's) instead of two (tail's,
		// then the slot's). c.tail stays a lower bound of what is committed.
		// Only unlimited subscribers: a lossy one needs tail for its lag
		// window (ABI.md §8.5, step 1a).
		if c.window == c.capacity && atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 {
			if atomic.LoadUint64(c.genP) != c.gen {
				return 0, c.evicted()
			}
			c.tail = c.head + 1
			return 1, nil
		}
		// Tail load, sequentially consistent (an acquire): every slot below
		// it is committed. Pairs with the producer's tail store.
		t := atomic.LoadUint64(c.tailP)
		if t < c.loaded {
			return 0, fmt.Errorf("receive %q: %w: tail moved back from %d to %d", c.s.name, ErrCorrupt, c.loaded, t)
		}
		c.loaded = t
		// Our generation (a load of our own line): an evicted subscriber
		// learns it before it reads on.
		if atomic.LoadUint64(c.genP) != c.gen {
			return 0, c.evicted()
		}
		c.tail = max(c.tail, t)
		if c.tail <= c.head {
			return 0, nil
		}
	}
	n := c.tail - c.head
	if n > c.window {
		skip := n - c.window
		c.head += skip
		c.dropped += skip
		n = c.window
		c.storeHead()
	}
	return n, nil
}

// peek reports whether the slot of head holds its committed message,
// loading that slot only: its stamp, then one word of every other cache
// line it spans. A reader waiting this way holds all of the slot's lines,
// so they travel to its core together when the producer writes them,
// instead of the message's second line being fetched only once the stamp
// flips. On x86 (TSO) the later loads cannot see older data than the stamp
// load did, so a ready stamp means the lines were fetched with the message.
func (c *consumer) peek() bool {
	p := unsafe.Pointer(c.stamp(c.head))
	ready := atomic.LoadUint64((*uint64)(p)) == 2*c.head+2
	for _, off := range c.watch[:c.nWatch] {
		atomic.LoadUint64((*uint64)(unsafe.Add(p, off)))
	}
	return ready
}

// skipLapped handles a slot whose stamp s is not the one expected for head:
// the producer overwrote it (or is overwriting it). The stamp names the
// index j now in the slot, so every index up to j-capacity is gone.
func (c *consumer) skipLapped(s uint64) error {
	want := 2*c.head + 2
	if s < want {
		return fmt.Errorf("receive %q: %w: slot %d stamp %d, want >= %d", c.s.name, ErrCorrupt, c.head&c.mask, s, want)
	}
	j := (s - 1) >> 1
	next := c.head + 1
	if j >= c.capacity && j+1-c.capacity > next {
		next = j + 1 - c.capacity
	}
	c.dropped += next - c.head
	c.head = next
	c.storeHead()
	return nil
}

// next returns the message at head, its stamp checked, without consuming it.
func (c *consumer) next() (unsafe.Pointer, error) {
	for {
		n, err := c.poll()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, ErrEmpty
		}
		// First stamp load (seqlock read-begin), sequentially consistent:
		// the message bytes read after it are at least as new as the
		// stamp. Pairs with the producer's closing stamp store.
		s := atomic.LoadUint64(c.stamp(c.head))
		if s == 2*c.head+2 {
			return c.msg(c.head), nil
		}
		if err := c.skipLapped(s); err != nil {
			return nil, err
		}
	}
}

// consume re-checks head's stamp after the message was copied and, if the
// copy is intact, consumes it. False means the slot was overwritten during
// the copy: discard it (the overwrite was counted).
func (c *consumer) consume() (bool, error) {
	loadFence()
	// Second stamp load (seqlock read-end): an atomic load after the copy;
	// if it still equals 2*head+2 no write to the slot overlapped the copy.
	s := atomic.LoadUint64(c.stamp(c.head))
	if s == 2*c.head+2 {
		c.head++
		c.received++
		c.storeHead()
		return true, nil
	}
	return false, c.skipLapped(s)
}

// borrow returns head's message for in-place reading until release.
func (c *consumer) borrow() (unsafe.Pointer, error) {
	if c.nb != 0 {
		return nil, fmt.Errorf("borrow %q: %w", c.s.name, ErrClaimed)
	}
	p, err := c.next()
	if err != nil {
		return nil, err
	}
	c.nb = 1
	return p, nil
}

// borrowBatch returns up to maxN contiguous committed messages from head.
func (c *consumer) borrowBatch(maxN uint64) (unsafe.Pointer, uint64, error) {
	if c.nb != 0 {
		return nil, 0, fmt.Errorf("borrow %q: %w", c.s.name, ErrClaimed)
	}
	p, err := c.next()
	if err != nil {
		return nil, 0, err
	}
	t := atomic.LoadUint64(c.tailP)
	if t < c.loaded {
		return nil, 0, fmt.Errorf("receive %q: %w: tail moved back from %d to %d", c.s.name, ErrCorrupt, c.loaded, t)
	}
	c.loaded = t
	if t > c.tail { // take all that is published
		c.tail = t
	}
	n := min(c.tail-c.head, maxN, c.capacity-(c.head&c.mask))
	for k := uint64(1); k < n; k++ {
		if atomic.LoadUint64(c.stamp(c.head+k)) != 2*(c.head+k)+2 {
			n = k
			break
		}
	}
	c.nb = n
	return p, n, nil
}

// release ends a borrow. If any borrowed slot's stamp changed meanwhile,
// what was read from the borrow may be torn: the whole borrow is counted as
// dropped (never received) and ErrOverwritten is returned, so the caller
// discards all of it and the accounting stays exact.
func (c *consumer) release() error {
	n := c.nb
	if n == 0 {
		return nil
	}
	loadFence()
	intact := true
	for k := uint64(0); k < n; k++ {
		// Seqlock read-end for each borrowed slot.
		if atomic.LoadUint64(c.stamp(c.head+k)) != 2*(c.head+k)+2 {
			intact = false
			break
		}
	}
	c.nb = 0
	c.head += n
	if intact {
		c.received += n
	} else {
		c.dropped += n
	}
	c.storeHead()
	if !intact {
		return ErrOverwritten
	}
	return nil
}

// storeHead publishes head to the producer.
func (c *consumer) storeHead() {
	// Head store, sequentially consistent: a release of the slots below it
	// (pairs with the producer's head load in scan), and the first half of
	// the producer-wake handshake (store head, then load prod_sleeping).
	atomic.StoreUint64(c.headP, c.head)
	if atomic.LoadUint32(c.prodSleepP) != 0 {
		c.wakeProducer()
	}
	if c.sinceStats++; c.sinceStats >= statsEvery {
		c.flushStats()
	}
}

// wakeProducer wakes a parked producer if it waits on this entry and the
// head reached its wake condition (loads after the sleeping flag; the
// producer stored them before it).
func (c *consumer) wakeProducer() {
	if atomic.LoadUint32(c.waitEntryP) == uint32(c.idx) && c.head >= atomic.LoadUint64(c.waitHeadP) {
		futexWake(futexWord(c.headP), 1)
	}
}

// flushStats stores the statistics (single writer; no ordering needed).
func (c *consumer) flushStats() {
	c.sinceStats = 0
	atomic.StoreUint64(c.receivedP, c.received)
	atomic.StoreUint64(c.droppedP, c.dropped)
	atomic.StoreUint64(c.heartbeatP, monoNow())
}

func (c *consumer) evicted() error {
	return fmt.Errorf("receive %q: %w (entry %d, generation %d)", c.s.name, ErrEvicted, c.idx, c.gen)
}

// terminal reports why no message will come, or nil if one may still come.
func (c *consumer) terminal(checkAlive bool) error {
	// Our entry: generation, then state (sequentially consistent loads;
	// the evicting producer stores the generation first).
	if atomic.LoadUint64(c.genP) != c.gen || atomic.LoadUint32(c.stateP) != entActive {
		return c.evicted()
	}
	cause := error(nil)
	if atomic.LoadUint32(c.prodStateP) == prodClosed {
		cause = ErrClosed
	} else if checkAlive && !c.s.host.producerAlive() {
		cause = ErrPublisherDead
	}
	if cause == nil {
		return nil
	}
	// Closed is stored after the final tail, and a dead producer's tail is
	// final: reload it, and finish delivering first.
	if atomic.LoadUint64(c.tailP) > c.head {
		return nil
	}
	if cause == ErrClosed {
		return ErrClosed
	}
	return fmt.Errorf("receive %q: %w", c.s.name, cause)
}

// wait blocks until a message is readable, spinning first and then parking
// on the tail's futex word, each sleep bounded by Watchdog.
func (c *consumer) wait(ctx context.Context) error {
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for spins := 0; ; spins++ {
		// A subscriber allowed the fast path (poll) spins on the next slot
		// alone and polls in full every 16th time only, so the producer's
		// tail line does not travel on every spin.
		if spins < c.spin && spins&15 != 0 && c.window == c.capacity && !c.peek() {
			if spins >= c.spin-yieldPolls {
				osYield()
			}
			continue
		}
		n, err := c.poll()
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if spins < c.spin {
			if spins >= c.spin-yieldPolls {
				osYield()
			}
			if spins&63 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			continue
		}
		now := time.Now()
		checkAlive := now.Sub(c.lastLive) >= Watchdog
		if checkAlive {
			c.lastLive = now
		}
		if err := c.terminal(checkAlive); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sleep := Watchdog
		if dl, ok := ctx.Deadline(); ok {
			sleep = min(sleep, dl.Sub(now)+time.Millisecond)
		}
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, func() { futexWake(futexWord(c.tailP), math.MaxInt32) })
		}
		c.flushStats()
		// Parking handshake: store our sleeper flag, then load the tail
		// (sequentially consistent). The producer stores the tail, then
		// loads the flags; either it sees our flag and wakes the futex, or
		// we see its tail here and do not sleep.
		atomic.StoreUint32(c.sleepP, 1)
		t := atomic.LoadUint64(c.tailP)
		if t <= c.head {
			if futexWait(futexWord(c.tailP), uint32(t), sleep) {
				c.watchdogFires++
				if atomic.LoadUint64(c.tailP) > c.head {
					c.lostWakeups++
				}
			}
		}
		atomic.StoreUint32(c.sleepP, 0)
	}
}

// close releases the entry (ABI.md "Detach").
func (c *consumer) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.flushStats()
	atomic.StoreUint32(c.sleepP, 0)
	h := c.s.host
	if h.lockRegistry(registryTimeout) == nil {
		gen, st := atomic.LoadUint64(c.genP), atomic.LoadUint32(c.stateP)
		// Ours if still active with our generation, or evicted while we
		// lived (the evictor bumped it once); either way nobody else
		// could take it while we held its liveness lock.
		if (gen == c.gen && st == entActive) || (gen == c.gen+1 && st == entEvicted) {
			atomic.StoreUint64(c.genP, gen+1)
			atomic.StoreUint32(c.stateP, entFree)
			epoch := c.s.u64(offRegEpoch)
			atomic.StoreUint64(epoch, atomic.LoadUint64(epoch)+1)
			// A producer parked on our head must not wait for a
			// subscriber that left (state store above, then this load).
			if atomic.LoadUint32(c.prodSleepP) != 0 && atomic.LoadUint32(c.waitEntryP) == uint32(c.idx) {
				futexWake(futexWord(c.headP), 1)
			}
		}
		h.unlockRegistry()
	}
	h.unlockEntry(c.idx)
}
