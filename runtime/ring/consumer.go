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

// Bounds of a membarrier-less registrant's wait for the producer (ABI.md
// §8.4 step 4): it proceeds once the producer acknowledged its registration,
// or once the tail has not moved for idleProof (an idle producer), and
// fails after ackTimeout of a moving tail without an acknowledgement.
const (
	idleProof  = 100 * time.Millisecond
	ackTimeout = time.Second
	// strongPendingSleep bounds a membarrier-less subscriber's sleeps until
	// the producer has switched to strong fences for it.
	strongPendingSleep = time.Millisecond
)

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
	wakeP      *uint32
	sleepP     *uint32
	evictP     *uint64
	tailP      *uint64
	notifyP    *uint32
	prodSleepP *uint32
	prodStateP *uint32
	waitEntryP *uint32
	waitHeadP  *uint64
	fencesP    *uint32
	slots      unsafe.Pointer

	slotSize uint64
	msgOff   uint64
	mask     uint64
	capacity uint64
	window   uint64 // a lag beyond this is skipped and counted as dropped
	// protected: an unlimited subscriber of a block or drop_newest ring,
	// whose slots the producer overwrites only after evicting it, so a
	// batch needs one eviction check instead of a stamp check per slot
	// (ABI.md §8.5 step 4).
	protected bool
	spin      int
	// asym: the ring uses asymmetric fences. strong: this subscriber could
	// not register for membarrier (ABI.md §8.6): its head stores fence, and
	// it sleeps briefly until the producer has switched to strong fences.
	asym   bool
	strong bool
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
	parked     atomic.Bool // in (or about to enter) futex_wait; read by the cancel waker

	// Diagnostics, read by tests.
	watchdogFires uint64
	lostWakeups   uint64
}

// registerOpts are the subscriber's choices that registration needs.
type registerOpts struct {
	maxLag uint64
	spin   int
	key    uint64
	start  Start
	// noMembarrier makes the subscriber take part as if it could not
	// register for membarrier (tests of ABI.md §8.6; TACHYON_FENCES=strong).
	noMembarrier bool
}

// testHook, when set by a test, is called at the named points of the
// protocol so that a test can interleave another party's steps
// deterministically (see races_test.go). Production code never sets it.
var testHook func(point string)

func hook(point string) {
	if testHook != nil {
		testHook(point)
	}
}

// register claims a subscriber entry under the registry lock (ABI.md §8.4)
// and returns the consumer that owns it.
//
// A named subscriber (key != 0) first looks for the entry a subscriber of
// the same name left — closed, or dead so that its liveness lock can be
// taken — and takes it over with its counters ("Resuming").
func register(s *shm, o registerOpts) (*consumer, error) {
	g := &s.hdr.geo
	if o.maxLag > g.capacity {
		return nil, fmt.Errorf("attach %q: %w: max lag %d exceeds capacity %d", s.name, ErrInvalidOptions, o.maxLag, g.capacity)
	}
	h := s.host
	if err := h.lockRegistry(registryTimeout); err != nil {
		return nil, fmt.Errorf("attach %q: registry lock: %w", s.name, err)
	}
	defer h.unlockRegistry()
	idx, resume, err := pickEntry(s, o.key)
	if err != nil {
		return nil, err
	}
	c := &consumer{
		s:          s,
		idx:        idx,
		tailP:      s.u64(offTail),
		notifyP:    s.u32(offNotify),
		prodSleepP: s.u32(offProdSleeping),
		prodStateP: s.u32(offProdState),
		waitEntryP: s.u32(offProdWaitEntry),
		waitHeadP:  s.u64(offProdWaitHead),
		fencesP:    s.u32(offProdFences),
		sleepP:     s.u32(g.sleepersOf + 4*uint64(idx)),
		evictP:     s.evictedWord(idx),
		slots:      unsafe.Add(s.base, g.slotsOff),
		slotSize:   g.slotSize,
		msgOff:     g.slotMsgOff,
		mask:       g.mask,
		capacity:   g.capacity,
		window:     g.capacity,
		spin:       o.spin,
		asym:       s.hdr.asymFences,
	}
	c.strong = !c.asym || o.noMembarrier || !membarrierRegistered()
	if o.maxLag > 0 {
		c.window = o.maxLag
	}
	c.protected = o.maxLag == 0 && s.hdr.policy != DropOldest
	if !raceEnabled {
		// Under the race detector the watch loads would race with the
		// producer's plain message writes (by design: their values are
		// never used), so a race build spins on the stamp alone.
		c.nWatch = watchOffsets(&c.watch, g.slotSize)
	}
	e := s.entryOff(idx)
	c.headP, c.receivedP, c.droppedP = s.u64(e+entHead), s.u64(e+entReceived), s.u64(e+entDropped)
	c.heartbeatP, c.genP, c.stateP = s.u64(e+entHeartbeat), s.u64(e+entGen), s.u32(e+entState)
	c.wakeP = s.u32(e + entWake)
	if err := c.enroll(o, resume); err != nil {
		return nil, err
	}
	return c, nil
}

// pickEntry chooses and locks a table entry (ABI.md §8.4 step 2): a named
// subscriber's own entry first, then one no named subscriber may come back
// to, and only when the table has none left, a departed named subscriber's
// (its resume state is then lost). A free entry, or one whose owner died
// (the kernel dropped its lock), can be locked; a live owner's cannot.
func pickEntry(s *shm, key uint64) (idx int, resume bool, err error) {
	h, n := s.host, int(s.hdr.geo.maxSubs)
	try := func(i int) (bool, error) {
		ok, err := h.tryLockEntry(i)
		if err != nil {
			return false, fmt.Errorf("attach %q: lock entry %d: %w", s.name, i, err)
		}
		return ok, nil
	}
	if key != 0 {
		for i := 0; i < n; i++ {
			if atomic.LoadUint64(s.u64(s.entryOff(i)+entKey)) != key {
				continue
			}
			if ok, err := try(i); ok || err != nil {
				return i, true, err
			}
		}
	}
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < n; i++ {
			if pass == 0 && atomic.LoadUint64(s.u64(s.entryOff(i)+entKey)) != 0 {
				continue
			}
			if ok, err := try(i); ok || err != nil {
				return i, false, err
			}
		}
	}
	return -1, false, fmt.Errorf("attach %q: %w: all %d entries have live owners", s.name, ErrNoEntry, n)
}

// enroll performs steps 3 to 5 of a registration (ABI.md §8.4) on the locked
// entry: joining at a provisional head, the epoch handshake with the
// producer, then the final head and state. The caller holds the registry
// lock; every store here is a registry or owner write of this entry.
func (c *consumer) enroll(o registerOpts, resume bool) error {
	s := c.s
	e := s.entryOff(c.idx)
	capacity, k := c.capacity, uint64(s.hdr.batch)
	// A resumed entry's last position and counters: untrusted numbers,
	// read once, before the entry is reset.
	var lastHead, received, dropped, join uint64
	if resume {
		lastHead, join = atomic.LoadUint64(c.headP), atomic.LoadUint64(s.u64(e+entJoin))
		received, dropped = atomic.LoadUint64(c.receivedP), atomic.LoadUint64(c.droppedP)
	}
	// resumable says whether the entry's numbers add up against a tail t:
	// a head at most one batch beyond the published tail (a reader may
	// consume committed slots before tail covers them, §8.5 step 1a).
	resumable := func(t uint64) bool {
		return resume && join <= lastHead && lastHead <= t+k && dropped <= lastHead-join
	}
	// Step 3: join at a provisional head that is never above the final one
	// (so the producer, which may rescan between the two stores, never
	// overwrites what the final head keeps): the tail, or for a resume at
	// the last position, that position as far as step 4 can keep it.
	c.gen = atomic.LoadUint64(c.genP) + 1
	atomic.StoreUint32(c.stateP, entFree)
	atomic.StoreUint64(c.genP, c.gen)
	t := atomic.LoadUint64(c.tailP)
	provisional := t
	if resumable(t) && o.start == StartLast {
		provisional = max(lastHead, sat(t+2*k, capacity))
	}
	flags := uint32(0)
	if c.asym && c.strong {
		flags = entFlagStrong
	}
	// The table's high water mark covers this entry before it can park:
	// the producer looks at sleeper flags below it only.
	if highP := s.u32(offTableHigh); atomic.LoadUint32(highP) <= uint32(c.idx) {
		atomic.StoreUint32(highP, uint32(c.idx)+1)
	}
	atomic.StoreUint64(c.headP, provisional)
	atomic.StoreUint64(c.receivedP, 0)
	atomic.StoreUint64(c.droppedP, 0)
	atomic.StoreUint64(s.u64(e+entKey), o.key)
	atomic.StoreUint64(c.heartbeatP, monoNow())
	atomic.StoreUint32(s.u32(e+entPID), uint32(processID()))
	atomic.StoreUint64(s.u64(e+entStartTime), processStartTime())
	atomic.StoreUint64(s.u64(e+entMaxLag), o.maxLag)
	atomic.StoreUint64(s.u64(e+entJoin), provisional)
	atomic.StoreUint32(s.u32(e+entFlags), flags)
	atomic.StoreUint32(c.sleepP, 0)
	atomic.StoreUint32(c.stateP, entJoining) // after head and max_lag
	hook("register:joining")

	// Step 4: handshake H5. We store the epoch, then load the tail; the
	// producer stores the tail, then loads the epoch. Either it sees our
	// epoch at its next publication and rescans (seeing our provisional
	// head) before it claims again, or it had published at most t2 and
	// committed at most t2+k-1; it writes at most k more before that
	// rescan, so no index >= t2+2k-capacity is overwritten.
	epochP := s.u64(offRegEpoch)
	epoch := atomic.LoadUint64(epochP) + 1
	atomic.StoreUint64(epochP, epoch) // sequentially consistent: the fence of a strong ring
	switch {
	case c.asym && !c.strong:
		heavyBarrier() // the producer's tail store and epoch load have no fence
	case c.asym:
		if err := c.awaitAck(epoch); err != nil {
			return err
		}
	}
	hook("register:epoch")
	t2 := atomic.LoadUint64(c.tailP)
	from := t2
	if resumable(t2) {
		// Resume. The head is exact; the counters were flushed on close,
		// but a subscriber that died may not have flushed its last few
		// hundred: attribute that progress to received, so that
		// received + dropped == head - join holds again.
		received = lastHead - join - dropped
		if o.start == StartLast {
			from = max(lastHead, sat(t2+2*k, capacity))
		} else {
			from = max(t2, lastHead)
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
	atomic.StoreUint32(c.stateP, entActive)
	c.head, c.tail, c.loaded, c.join = from, t2, t2, join
	c.received, c.dropped = received, dropped
	// Step 5: a producer parked on our provisional head may go on now.
	if atomic.LoadUint32(c.prodSleepP) != 0 && atomic.LoadUint32(c.waitEntryP) == uint32(c.idx) {
		c.wakeProducerNow()
	}
	return nil
}

// awaitAck is step 4 of a membarrier-less registrant on an asymmetric ring
// (ABI.md §8.6): the producer's hot side has no fence, so before the tail
// it loads can bound what was overwritten, the producer must have scanned
// the table since our epoch (it then also switched to strong fences), or
// be idle long enough that its next epoch load cannot miss ours.
func (c *consumer) awaitAck(epoch uint64) error {
	scanP := c.s.u64(offProdScanEpoch)
	start := time.Now()
	last, since := atomic.LoadUint64(c.tailP), start
	for {
		if atomic.LoadUint64(scanP) >= epoch {
			return nil
		}
		now := time.Now()
		if t := atomic.LoadUint64(c.tailP); t != last {
			last, since = t, now
		} else if now.Sub(since) >= idleProof || atomic.LoadUint32(c.prodStateP) != prodActive || !c.s.host.producerAlive() {
			return nil
		}
		if now.Sub(start) > ackTimeout {
			return fmt.Errorf("attach %q: %w: the publisher kept publishing for %v without acknowledging a membarrier-less subscriber (ABI.md §8.6)", c.s.name, ErrTimeout, ackTimeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// maxWatchLines bounds the cache lines of a slot a waiting reader keeps
// warm; the copy of a larger message costs more than its first lines' wait.
const maxWatchLines = 4

// watchOffsets fills w with the offsets, from a slot's stamp, of one 8-byte
// word in each cache line after the stamp's that a slot of slotSize bytes
// may span (packed slots are 8-aligned, not line-aligned), and returns how
// many.
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

// isEvicted reports whether the producer evicted (or reclaimed) this
// subscriber: its eviction word names our generation (or someone rewrote
// our generation, which only a hostile process does).
func (c *consumer) isEvicted() bool {
	return atomic.LoadUint64(c.evictP) == c.gen || atomic.LoadUint64(c.genP) != c.gen
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
		// Only subscribers whose window is the whole ring: a lossy one
		// loads tail first for its lag window (ABI.md §8.5, step 1a).
		if c.window == c.capacity && atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 {
			if c.isEvicted() {
				return 0, c.evicted()
			}
			c.tail = c.head + 1
			return 1, nil
		}
		// Tail load (an acquire): every slot below it is committed. Pairs
		// with the producer's tail store.
		t := atomic.LoadUint64(c.tailP)
		if t < c.loaded {
			return 0, fmt.Errorf("receive %q: %w: tail moved back from %d to %d", c.s.name, ErrCorrupt, c.loaded, t)
		}
		c.loaded = t
		if c.isEvicted() {
			return 0, c.evicted()
		}
		c.tail = max(c.tail, t)
		if c.tail <= c.head {
			// Caught up with the published tail. A lossy subscriber may still
			// read a message a batching producer committed and holds back:
			// its lag is then below batch (step 1b).
			if c.window < c.capacity && atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 {
				c.tail = c.head + 1
				return 1, nil
			}
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

// peek returns the stamp of head's slot, loading that slot only: its
// stamp, then one word of every other cache line it spans. A reader waiting
// this way holds all of the slot's lines, so they travel to its core
// together when the producer writes them, instead of the message's second
// line being fetched only once the stamp flips. On x86 (TSO) the later
// loads cannot see older data than the stamp load did, so a ready stamp
// means the lines were fetched with the message.
func (c *consumer) peek() uint64 {
	p := unsafe.Pointer(c.stamp(c.head))
	st := atomic.LoadUint64((*uint64)(p))
	for _, off := range c.watch[:c.nWatch] {
		atomic.LoadUint64((*uint64)(unsafe.Add(p, off)))
	}
	return st
}

// skipLapped handles a slot whose stamp s is not the one expected for head:
// the producer overwrote it (or is overwriting it). The stamp names the
// index j now in the slot, so every index up to j-capacity is gone.
func (c *consumer) skipLapped(s uint64) error {
	want := 2*c.head + 2
	if s < want {
		return fmt.Errorf("receive %q: %w: slot %d stamp %d, want >= %d (index %d)", c.s.name, ErrCorrupt, c.head&c.mask, s, want, c.head)
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
	// Fast path, a caught-up subscriber whose window is the whole ring
	// (poll's): one acquire load of head's stamp both proves the slot
	// committed and begins the seqlock read.
	if c.head >= c.tail && c.window == c.capacity {
		if atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 && !c.isEvicted() {
			c.tail = c.head + 1
			return c.msg(c.head), nil
		}
	}
	for {
		n, err := c.poll()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, ErrEmpty
		}
		// First stamp load (seqlock read-begin), an acquire: the message
		// bytes read after it are at least as new as the stamp. Pairs with
		// the producer's closing stamp store.
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
	if !c.protected {
		for k := uint64(1); k < n; k++ {
			if atomic.LoadUint64(c.stamp(c.head+k)) != 2*(c.head+k)+2 {
				n = k
				break
			}
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
	if c.protected {
		// The producer stores our eviction before it overwrites a slot we
		// hold back: if we read an overwritten byte, this load sees it.
		intact = !c.isEvicted()
	} else {
		for k := uint64(0); k < n; k++ {
			// Seqlock read-end for each borrowed slot.
			if atomic.LoadUint64(c.stamp(c.head+k)) != 2*(c.head+k)+2 {
				intact = false
				break
			}
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
	// Head store: a release of the slots below it (pairs with the
	// producer's head load in scan), and the store side of the
	// producer-wake handshake H2 (then prod_sleeping is loaded).
	// Sequentially consistent unless the ring's parked producer issues a
	// membarrier for us (an asymmetric ring, and we registered for it).
	if c.strong {
		atomic.StoreUint64(c.headP, c.head)
	} else {
		storeRelease(c.headP, c.head)
	}
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
		c.wakeProducerNow()
	}
}

// wakeProducerNow advances this entry's wake eventcount (we are its only
// writer) and wakes the producer parked on it.
func (c *consumer) wakeProducerNow() {
	atomic.StoreUint32(c.wakeP, atomic.LoadUint32(c.wakeP)+1)
	futexWake(c.wakeP, 1)
}

// flushStats stores the statistics (single writer; no ordering needed).
func (c *consumer) flushStats() {
	c.sinceStats = 0
	atomic.StoreUint64(c.receivedP, c.received)
	atomic.StoreUint64(c.droppedP, c.dropped)
	atomic.StoreUint64(c.heartbeatP, monoNow())
}

// errClosed is what a call on a closed subscriber returns: ErrClosed (no
// message will come), naming the ring and that this side closed.
func (c *consumer) errClosed(op string) error {
	return fmt.Errorf("%s %q: %w: this subscriber was closed", op, c.s.name, ErrClosed)
}

func (c *consumer) evicted() error {
	return fmt.Errorf("receive %q: %w (entry %d, generation %d)", c.s.name, ErrEvicted, c.idx, c.gen)
}

// terminal reports why no message will come, or nil if one may still come.
func (c *consumer) terminal(checkAlive bool) error {
	if c.isEvicted() {
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
	// final: reload it, and finish delivering first. A dead producer may
	// also have committed messages it never published (batching): an
	// unlimited subscriber's next stamp tells.
	if atomic.LoadUint64(c.tailP) > c.head || atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 {
		return nil
	}
	if cause == ErrClosed {
		return ErrClosed
	}
	return fmt.Errorf("receive %q: %w", c.s.name, cause)
}

// wait blocks until a message is readable, spinning first and then parking
// on the notify eventcount, each sleep bounded by Watchdog.
func (c *consumer) wait(ctx context.Context) error {
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for spins := 0; ; spins++ {
		// A subscriber allowed the fast path (poll) spins on the next slot
		// alone, and polls in full only once the slot holds its message or
		// a later one (lapped, on a drop_oldest ring): the producer's tail
		// line then never travels while it waits.
		if spins < c.spin && spins != 0 && c.window == c.capacity {
			if st := c.peek(); st == 2*c.head+2 {
				// The slot holds its message: the caller's receive takes it
				// (and checks eviction) at once; a poll here on the way
				// cost ~70 ns of round trip. A later index (lapped) goes
				// through poll below.
				return nil
			} else if st < 2*c.head+2 {
				if err := c.spinTurn(ctx, spins); err != nil {
					return err
				}
				continue
			}
		}
		n, err := c.poll()
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if spins < c.spin {
			if err := c.spinTurn(ctx, spins); err != nil {
				return err
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
		if c.strong && c.asym && atomic.LoadUint32(c.fencesP) != fencesStrong {
			// The producer has not switched to strong fences for us yet: a
			// wake-up could be lost, so sleep briefly (ABI.md §8.6).
			sleep = min(sleep, strongPendingSleep)
		}
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, c.cancelWaker)
		}
		c.flushStats()
		hook("wait:park")
		if ready, err := c.park(ctx, sleep); ready || err != nil {
			return err
		}
	}
}

// spinTurn ends one turn of wait's spinning: the last yieldPolls turns
// yield the CPU, and every 64th looks at ctx.
func (c *consumer) spinTurn(ctx context.Context, spins int) error {
	if spins >= c.spin-yieldPolls {
		osYield()
	}
	if spins&63 == 0 {
		return ctx.Err()
	}
	return nil
}

// park is one sleep of wait (handshake H1): it reports ready when a
// message or a terminal state appeared while it announced itself.
func (c *consumer) park(ctx context.Context, sleep time.Duration) (ready bool, err error) {
	// Store our sleeper flag (sequentially consistent), then — on an
	// asymmetric ring, whose producer stores tail and stamps without a
	// fence — a membarrier; then load the eventcount and re-check for
	// data: the tail, the stamp of head (a message a batching producer
	// holds back), the producer's state and our eviction. The producer
	// stores tail or a stamp, then loads the flags, and if it sees ours
	// advances the eventcount and wakes it; so either we see its store here,
	// or futex_wait sees the new eventcount.
	atomic.StoreUint32(c.sleepP, 1)
	defer atomic.StoreUint32(c.sleepP, 0)
	if c.asym && !c.strong {
		heavyBarrier()
	}
	ev := atomic.LoadUint32(c.notifyP)
	c.parked.Store(true)
	defer c.parked.Store(false)
	if n, err := c.poll(); n > 0 || err != nil {
		return true, err // poll looked at tail and at the stamp of head
	}
	if atomic.LoadUint32(c.prodStateP) == prodClosed || c.isEvicted() || ctx.Err() != nil {
		return false, nil // wait's next turn reports it
	}
	hook("wait:futex")
	if futexWait(c.notifyP, ev, sleep) {
		c.watchdogFires++
		if atomic.LoadUint64(c.tailP) > c.head || atomic.LoadUint64(c.stamp(c.head)) == 2*c.head+2 {
			c.lostWakeups++
		}
	}
	return false, nil
}

// cancelWaker runs when a waiting call's context is done: it wakes the
// subscriber for as long as it is parked. A single wake could land between
// the waiter's last ctx check and its futex_wait and be lost; the waiter
// clears parked after futex_wait returns, so repeating the wake until then
// cannot miss it.
func (c *consumer) cancelWaker() {
	for c.parked.Load() {
		futexWake(c.notifyP, math.MaxInt32)
		time.Sleep(50 * time.Microsecond)
	}
}

// close releases the entry (ABI.md §8.7). If the registry lock cannot be
// had (another process holds it), the entry is left as it is and only its
// liveness lock is dropped: the producer then reclaims it as dead, so a
// lock held by someone else never makes the producer wait for us.
func (c *consumer) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.flushStats()
	atomic.StoreUint32(c.sleepP, 0)
	h := c.s.host
	if h.lockRegistry(registryTimeout) == nil {
		// Ours while our generation is there: nobody else could take the
		// entry while we held its liveness lock.
		if st := atomic.LoadUint32(c.stateP); atomic.LoadUint64(c.genP) == c.gen && st != entFree {
			atomic.StoreUint64(c.genP, c.gen+1)
			atomic.StoreUint32(c.stateP, entFree) // sequentially consistent: handshake H3
			epoch := c.s.u64(offRegEpoch)
			atomic.StoreUint64(epoch, atomic.LoadUint64(epoch)+1)
			// A producer parked on our entry must not wait for a
			// subscriber that left (state store above, then this load).
			if atomic.LoadUint32(c.prodSleepP) != 0 && atomic.LoadUint32(c.waitEntryP) == uint32(c.idx) {
				c.wakeProducerNow()
			}
		}
		h.unlockRegistry()
	}
	h.unlockEntry(c.idx)
}
