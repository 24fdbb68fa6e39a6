package ring

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// Defaults of Options.
const (
	// DefaultCapacity is the slot count of a ring created with Capacity 0.
	DefaultCapacity = 1024
	// DefaultMaxSubscribers is the table size of a ring created with
	// MaxSubscribers 0.
	DefaultMaxSubscribers = 8
	// DefaultLivenessTimeout bounds how long a Block producer waits on a
	// subscriber that makes no progress before evicting it.
	DefaultLivenessTimeout = 2 * time.Second
	// Watchdog bounds every futex sleep, so that a dead or closed peer is
	// noticed even if a wake-up is lost.
	Watchdog = 200 * time.Millisecond
	// registryTimeout bounds the wait for the registry lock.
	registryTimeout = time.Second
	// defaultSpin is the number of polls before a waiter parks on a futex;
	// the last yieldPolls of them yield the CPU (sched_yield) first, which
	// matters when peers share few cores.
	defaultSpin = 1024
	yieldPolls  = 64
)

// Values of the producer's fences word (offProdFences).
const (
	fencesLight  = 0
	fencesStrong = 1
)

// producer is the untyped producer side of the protocol in ABI.md
// "Publishing". It is not safe for concurrent use.
type producer struct {
	s *shm

	// Pointers into the segment, computed once from the local geometry.
	tail       *uint64
	dropNewP   *uint64
	notify     *uint32
	sleeping   *uint32
	waitEntry  *uint32
	waitHead   *uint64
	heartbeat  *uint64
	state      *uint32
	scanEpochP *uint64
	fencesP    *uint32
	epochP     *uint64
	highP      *uint32
	sleepers   unsafe.Pointer // [maxSubs]uint32
	slots      unsafe.Pointer

	slotSize uint64
	msgOff   uint64
	mask     uint64
	capacity uint64
	nsubs    int
	policy   Policy
	batch    uint64
	timeout  time.Duration
	liveness time.Duration
	spin     int
	// asym: the ring uses asymmetric fences (its header says so, and this
	// process registered for membarrier when it created it). strong: this
	// producer's hot side fences (a symmetric ring, or an asymmetric one
	// that a membarrier-less subscriber joined: ABI.md §8.6).
	asym   bool
	strong bool
	fence  uint32 // private word for fullFence

	cursor    uint64  // next index to write
	published uint64  // last tail stored
	slot      *uint64 // the claimed slot's stamp
	claimed   bool
	limit     uint64 // cursor may advance below limit without a table scan
	epoch     uint64 // registry epoch seen at the last scan
	dropped   uint64
	closed    bool

	// Diagnostics, read by tests.
	watchdogFires uint64
	evictions     uint64
}

func newProducer(s *shm, timeout time.Duration, spin int) *producer {
	g := &s.hdr.geo
	p := &producer{
		s:          s,
		tail:       s.u64(offTail),
		dropNewP:   s.u64(offDroppedNewst),
		notify:     s.u32(offNotify),
		sleeping:   s.u32(offProdSleeping),
		waitEntry:  s.u32(offProdWaitEntry),
		waitHead:   s.u64(offProdWaitHead),
		heartbeat:  s.u64(offProdHeartbeat),
		state:      s.u32(offProdState),
		scanEpochP: s.u64(offProdScanEpoch),
		fencesP:    s.u32(offProdFences),
		epochP:     s.u64(offRegEpoch),
		highP:      s.u32(offTableHigh),
		sleepers:   unsafe.Add(s.base, g.sleepersOf),
		slots:      unsafe.Add(s.base, g.slotsOff),
		slotSize:   g.slotSize,
		msgOff:     g.slotMsgOff,
		mask:       g.mask,
		capacity:   g.capacity,
		nsubs:      int(g.maxSubs),
		policy:     s.hdr.policy,
		batch:      uint64(s.hdr.batch),
		timeout:    timeout,
		liveness:   time.Duration(s.hdr.livenessNs),
		spin:       spin,
		asym:       s.hdr.asymFences,
		strong:     !s.hdr.asymFences,
	}
	if p.policy == DropOldest {
		p.limit = math.MaxUint64 // never waits; rescans only when the table changes
	}
	return p
}

func (p *producer) stamp(idx uint64) *uint64 {
	return (*uint64)(unsafe.Add(p.slots, (idx&p.mask)*p.slotSize))
}

func (p *producer) msg(idx uint64) unsafe.Pointer {
	return unsafe.Add(p.slots, (idx&p.mask)*p.slotSize+p.msgOff)
}

// claim reserves the next slot and returns its message bytes; limit is 0
// once closed, so every exceptional case takes claimSlow.
func (p *producer) claim() (unsafe.Pointer, error) {
	w := p.cursor
	if w >= p.limit || p.claimed {
		return p.claimSlow(w)
	}
	return p.open(w), nil
}

// open stores slot w's odd stamp — seqlock open, "index w being written",
// ordered before the message bytes written after it (a plain MOV on
// x86-64, STLR + DMB ISHST on arm64); it pairs with the subscriber's stamp
// re-check after its copy — and returns the slot's message bytes.
func (p *producer) open(w uint64) unsafe.Pointer {
	slot := p.stamp(w)
	storeOpenStamp(slot, 2*w+1)
	p.slot = slot
	p.claimed = true
	return unsafe.Add(unsafe.Pointer(slot), p.msgOff)
}

func (p *producer) claimSlow(w uint64) (unsafe.Pointer, error) {
	if p.closed {
		return nil, ErrClosed
	}
	if p.claimed {
		return unsafe.Add(unsafe.Pointer(p.slot), p.msgOff), nil
	}
	if w >= p.limit {
		if err := p.makeRoom(w); err != nil {
			return nil, err
		}
	}
	return p.open(w), nil
}

// commit seals the claimed slot and publishes the tail if the batch is full
// or a subscriber sleeps (seal).
func (p *producer) commit() error {
	if !p.claimed {
		return p.errNoClaim()
	}
	p.claimed = false
	p.seal(p.slot, p.cursor+1)
	return nil
}

// seal closes slot (the seqlock's close: stamp = 2w+2, "index w-1
// committed", a release store after the message bytes; pairs with the
// subscriber's first stamp load), advances the cursor to w and publishes
// the tail if the batch is full; a held-back message goes to heldBack only
// on a strong ring or when another subscriber ever registered or the first
// one sleeps.
func (p *producer) seal(slot *uint64, w uint64) {
	storeRelease(slot, 2*w)
	p.cursor = w
	if w-p.published >= p.batch {
		p.publish()
	} else if p.strong || atomic.LoadUint32(p.highP) > 1 || atomic.LoadUint32((*uint32)(p.sleepers)) != 0 {
		p.heldBack()
	}
}

func (p *producer) errNoClaim() error {
	return fmt.Errorf("commit %q: %w: no claimed slot", p.s.name, ErrClaimed)
}

// heldBack is handshake H1 for a committed message the batch holds back
// from the tail: a parking subscriber stores its sleeper flag and then
// looks at this stamp; on a strong ring the stamp store needs a full fence
// before the flag loads (on an asymmetric one the subscriber's membarrier
// provides it). If one sleeps, the batch is published now.
func (p *producer) heldBack() {
	if p.strong {
		fullFence(&p.fence)
	}
	if p.anySleeper() {
		p.publish()
	}
}

// publish stores the tail, wakes sleepers and notices registry changes.
func (p *producer) publish() {
	if p.cursor != p.published {
		// Tail store: a release for every slot below it (pairs with the
		// subscriber's tail load), and the store side of handshakes H1
		// (then the sleeper flags are loaded) and H5 (then the registry
		// epoch). Sequentially consistent on a strong ring; a plain
		// release store on an asymmetric one, whose parking subscribers and
		// registrants issue a membarrier instead.
		if p.strong {
			atomic.StoreUint64(p.tail, p.cursor)
		} else {
			storeRelease(p.tail, p.cursor)
		}
		if (p.cursor^p.published)>>16 != 0 {
			// Every 65536 commits (informational; no ordering needed).
			atomic.StoreUint64(p.heartbeat, monoNow())
		}
		p.published = p.cursor
		if p.anySleeper() {
			p.wakeSubscribers()
		}
	}
	// Registration handshake H5: tail store above, then epoch load. A
	// registrant stores the epoch, then loads the tail; so either we see its
	// registration here and rescan before the next claim, or it saw our
	// tail (ABI.md §8.4).
	if e := atomic.LoadUint64(p.epochP); e != p.epoch {
		p.epoch = e
		p.limit = 0
	}
}

// anySleeper loads the sleeper flags (the load side of handshake H1) of
// every entry that was ever registered: those below the registry's high
// water mark (a subscriber stores it before it registers, so before it can
// park: ABI.md §5.3). Untrusted, so bounded by the table size.
func (p *producer) anySleeper() bool {
	n := min(int(atomic.LoadUint32(p.highP)), p.nsubs)
	for i := 0; i < n; i++ {
		if atomic.LoadUint32((*uint32)(unsafe.Add(p.sleepers, 4*i))) != 0 {
			return true
		}
	}
	return false
}

// tableHigh is how many table entries were ever registered (the scans'
// bound).
func (p *producer) tableHigh() int { return min(int(atomic.LoadUint32(p.highP)), p.nsubs) }

// wakeSubscribers advances the notify eventcount (after every store a
// sleeper may be waiting for) and wakes every subscriber parked on it. The
// producer is its only writer, so a load and a store suffice.
func (p *producer) wakeSubscribers() {
	atomic.StoreUint32(p.notify, atomic.LoadUint32(p.notify)+1)
	futexWake(p.notify, math.MaxInt32)
}

// flush publishes every committed message.
func (p *producer) flush() { p.publish() }

// makeRoom is the slow path of claim when the cached limit is reached.
func (p *producer) makeRoom(w uint64) error {
	if p.scan(w); w < p.limit {
		return nil
	}
	// Never wait or reject while holding unpublished messages: a parked
	// subscriber would never see them.
	p.flush()
	if p.scan(w); w < p.limit {
		return nil
	}
	switch p.policy {
	case DropNewest:
		p.dropped++
		atomic.StoreUint64(p.dropNewP, p.dropped) // statistic; single writer
		return ErrFull
	default:
		return p.wait(w)
	}
}

// scan recomputes limit from the subscriber table and returns the entry that
// bounds it (-1 when no unlimited subscriber exists) and its raw head. It
// also switches to strong fences when a membarrier-less subscriber joined,
// and then records the registry epoch it reflects (ABI.md §8.2).
func (p *producer) scan(w uint64) (blocker int, head uint64) {
	// The epoch first: the entries loaded below are at least as new as the
	// registrations it counts, which is what scan_epoch promises.
	epoch := atomic.LoadUint64(p.epochP)
	p.epoch = epoch
	blocker = -1
	minHead := uint64(0)
	for i, n := 0, p.tableHigh(); i < n; i++ {
		e := p.s.entryOff(i)
		// State, generation, eviction word, then max_lag and head:
		// acquire loads pairing with the registrant's stores (head and
		// max_lag before state).
		if st := atomic.LoadUint32(p.s.u32(e + entState)); st != entJoining && st != entActive {
			continue
		}
		gen := atomic.LoadUint64(p.s.u64(e + entGen))
		if atomic.LoadUint64(p.s.evictedWord(i)) == gen {
			continue // evicted or reclaimed: no longer holds the producer back
		}
		if !p.strong && atomic.LoadUint32(p.s.u32(e+entFlags))&entFlagStrong != 0 {
			p.becomeStrong()
		}
		if p.policy == DropOldest || atomic.LoadUint64(p.s.u64(e+entMaxLag)) != 0 {
			continue // lossy subscribers never hold the producer back
		}
		h := atomic.LoadUint64(p.s.u64(e + entHead))
		if h > w { // beyond what is committed: see ABI.md §8.2
			// A head beyond the committed count is impossible for an honest
			// subscriber: evict it rather than trust it.
			p.evict(i, gen)
			continue
		}
		eff := h
		if w-h > p.capacity {
			// Behind by more than a lap (a registration in flight):
			// hold it at exactly full so the producer waits for it
			// instead of overwriting.
			eff = w - p.capacity
		}
		if blocker < 0 || eff < minHead {
			blocker, minHead, head = i, eff, h
		}
	}
	if blocker < 0 {
		p.limit = math.MaxUint64
	} else {
		p.limit = minHead + p.capacity
	}
	// Acknowledge the registrations this scan saw (a release store after
	// the table loads; a membarrier-less registrant waits for it).
	atomic.StoreUint64(p.scanEpochP, epoch)
	return blocker, head
}

// becomeStrong switches the producer's hot side to full fences for the rest
// of its life: a subscriber that cannot issue membarrier joined.
func (p *producer) becomeStrong() {
	p.strong = true
	atomic.StoreUint32(p.fencesP, fencesStrong)
}

// wait blocks a Block producer until slot w is free, the timeout expires, or
// the blocking subscriber is reclaimed or evicted. It never needs a lock, so
// nothing another process does with the segment's locks can hold it past
// the liveness timeout (ABI.md §9).
func (p *producer) wait(w uint64) error {
	var deadline time.Time
	if p.timeout > 0 {
		deadline = time.Now().Add(p.timeout)
	}
	lastBlocker, lastHead := -1, uint64(0)
	var since time.Time
	for spins := 0; ; spins++ {
		blocker, head := p.scan(w)
		if w < p.limit {
			return nil
		}
		now := time.Now()
		if blocker != lastBlocker || head != lastHead {
			lastBlocker, lastHead, since = blocker, head, now
		}
		if !deadline.IsZero() && now.After(deadline) {
			return fmt.Errorf("publish %q: %w after %v waiting for subscriber %d", p.s.name, ErrTimeout, p.timeout, blocker)
		}
		if spins < p.spin {
			if spins >= p.spin-yieldPolls {
				osYield()
			}
			continue
		}
		e := p.s.entryOff(blocker)
		gen := atomic.LoadUint64(p.s.u64(e + entGen))
		if !p.s.host.entryAlive(blocker) {
			p.evict(blocker, gen) // dead: the kernel dropped its lock
			continue
		}
		if now.Sub(since) > p.liveness {
			p.evict(blocker, gen) // alive but stalled
			continue
		}
		sleep := Watchdog
		if !deadline.IsZero() {
			sleep = min(sleep, deadline.Sub(now)+time.Millisecond)
		}
		sleep = min(sleep, p.liveness-now.Sub(since)+time.Millisecond)
		wakeP := p.s.u32(e + entWake)
		// Wake condition: the blocker's head must free a quarter of the
		// ring (at least the one slot needed), so a draining subscriber
		// wakes us once, not once per message. Stored before the flag.
		want := w + 1 - p.capacity + (max(p.capacity/4, 1) - 1)
		atomic.StoreUint32(p.waitEntry, uint32(blocker))
		atomic.StoreUint64(p.waitHead, want)
		// Producer parking handshake H2: store sleeping = 1 (sequentially
		// consistent), then on an asymmetric ring a membarrier for the
		// subscribers' fence-free head stores, then load the entry's wake
		// eventcount and re-check its head, state and generation. The
		// subscriber stores its head (or, leaving, its state), then loads
		// sleeping, and then advances the eventcount and wakes it; so either
		// we see its change here, or futex_wait sees the new eventcount.
		atomic.StoreUint32(p.sleeping, 1)
		if p.asym {
			heavyBarrier()
		}
		ev := atomic.LoadUint32(wakeP)
		if h := atomic.LoadUint64(p.s.u64(e + entHead)); h == head &&
			atomic.LoadUint32(p.s.u32(e+entState)) != entFree && atomic.LoadUint64(p.s.u64(e+entGen)) == gen {
			if futexWait(wakeP, ev, sleep) {
				p.watchdogFires++
			}
		}
		atomic.StoreUint32(p.sleeping, 0)
		atomic.StoreUint64(p.heartbeat, monoNow())
	}
}

// evict stops entry i's generation gen from holding the producer back: it
// reclaims a dead subscriber's entry, or evicts a live one that stalled or
// published an impossible head. The producer is the only writer of the
// eviction words, so this needs no lock and no cooperation (ABI.md §9).
func (p *producer) evict(i int, gen uint64) {
	atomic.StoreUint64(p.s.evictedWord(i), gen)
	p.evictions++
	p.limit = 0
	// An evicted subscriber parked on notify learns it now, not at its
	// next watchdog.
	p.wakeSubscribers()
}

// close publishes what is pending and marks the producer closed.
func (p *producer) close() {
	if p.closed {
		return
	}
	p.claimed = false
	p.flush()
	// Closed is stored after the final tail, then the eventcount advances
	// (handshake H4): a subscriber that loads the eventcount, then sees
	// closed, reloads the tail and has every message.
	atomic.StoreUint32(p.state, prodClosed)
	p.wakeSubscribers()
	p.closed = true
	p.limit = 0 // every claim takes the slow path, which reports ErrClosed
}

// activeSubscribers counts the entries that registered completely and are
// neither evicted nor dead. It scans the table first, which acknowledges any
// registration waiting for the producer (ABI.md §8.4, step 4).
func (p *producer) activeSubscribers() int {
	p.scan(p.cursor)
	n := 0
	for i, high := 0, p.tableHigh(); i < high; i++ {
		e := p.s.entryOff(i)
		if atomic.LoadUint32(p.s.u32(e+entState)) != entActive {
			continue
		}
		if atomic.LoadUint64(p.s.evictedWord(i)) == atomic.LoadUint64(p.s.u64(e+entGen)) {
			continue
		}
		if p.s.host.entryAlive(i) {
			n++
		}
	}
	return n
}
