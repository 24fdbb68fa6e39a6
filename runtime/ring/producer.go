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

// producer is the untyped producer side of the protocol in ABI.md
// "Publishing". It is not safe for concurrent use.
type producer struct {
	s *shm

	// Pointers into the segment, computed once from the local geometry.
	tail      *uint64
	dropNewP  *uint64
	sleeping  *uint32
	waitEntry *uint32
	waitHead  *uint64
	heartbeat *uint64
	state     *uint32
	epochP    *uint64
	sleepers  unsafe.Pointer // [maxSubs]uint32
	slots     unsafe.Pointer

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

	cursor    uint64 // next index to write
	published uint64 // last tail stored
	claimed   bool
	limit     uint64 // cursor may advance below limit without a table scan
	epoch     uint64 // registry epoch seen at the last scan
	dropped   uint64
	commits   uint64
	closed    bool

	// Diagnostics, read by tests.
	watchdogFires uint64
	evictions     uint64
}

func newProducer(s *shm, timeout time.Duration, spin int) *producer {
	g := &s.hdr.geo
	p := &producer{
		s:         s,
		tail:      s.u64(offTail),
		dropNewP:  s.u64(offDroppedNewst),
		sleeping:  s.u32(offProdSleeping),
		waitEntry: s.u32(offProdWaitEntry),
		waitHead:  s.u64(offProdWaitHead),
		heartbeat: s.u64(offProdHeartbeat),
		state:     s.u32(offProdState),
		epochP:    s.u64(offRegEpoch),
		sleepers:  unsafe.Add(s.base, g.sleepersOf),
		slots:     unsafe.Add(s.base, g.slotsOff),
		slotSize:  g.slotSize,
		msgOff:    g.slotMsgOff,
		mask:      g.mask,
		capacity:  g.capacity,
		nsubs:     int(g.maxSubs),
		policy:    s.hdr.policy,
		batch:     uint64(s.hdr.batch),
		timeout:   timeout,
		liveness:  time.Duration(s.hdr.livenessNs),
		spin:      spin,
	}
	if p.policy == DropOldest {
		p.limit = math.MaxUint64 // never waits, never scans
	}
	return p
}

func (p *producer) stamp(idx uint64) *uint64 {
	return (*uint64)(unsafe.Add(p.slots, (idx&p.mask)*p.slotSize))
}

func (p *producer) msg(idx uint64) unsafe.Pointer {
	return unsafe.Add(p.slots, (idx&p.mask)*p.slotSize+p.msgOff)
}

// claim reserves the next slot and returns its message bytes.
func (p *producer) claim() (unsafe.Pointer, error) {
	if p.closed {
		return nil, ErrClosed
	}
	w := p.cursor
	if p.claimed {
		return p.msg(w), nil
	}
	if w >= p.limit {
		if err := p.makeRoom(w); err != nil {
			return nil, err
		}
	}
	// Seqlock open: stamp = 2w+1 ("index w being written"). A release
	// store: on x86-64 (TSO) the message bytes written after it cannot
	// become visible before it; pairs with the subscriber's stamp re-check
	// after its copy.
	storeRelease(p.stamp(w), 2*w+1)
	p.claimed = true
	return p.msg(w), nil
}

// commit seals the claimed slot and publishes the tail if the batch is full
// or a subscriber sleeps.
func (p *producer) commit() error {
	if !p.claimed {
		return fmt.Errorf("commit %q: %w: no claimed slot", p.s.name, ErrClaimed)
	}
	w := p.cursor
	// Seqlock close: stamp = 2w+2 ("index w committed"). Store after the
	// message bytes; pairs with the subscriber's first stamp load.
	storeRelease(p.stamp(w), 2*w+2)
	p.cursor = w + 1
	p.claimed = false
	if p.cursor-p.published >= p.batch || p.anySleeper() {
		p.publish()
	}
	p.commits++
	if p.commits&0xffff == 0 {
		atomic.StoreUint64(p.heartbeat, monoNow()) // informational; no ordering needed
	}
	return nil
}

// publish stores the tail, wakes sleepers and notices registry changes.
func (p *producer) publish() {
	if p.cursor != p.published {
		// Tail store, sequentially consistent: a release for every slot
		// below it (pairs with the subscriber's tail load), and the first
		// half of the sleeper handshake (store tail, then load the sleeper
		// flags; the subscriber stores its flag, then loads the tail).
		atomic.StoreUint64(p.tail, p.cursor)
		p.published = p.cursor
		if p.anySleeper() {
			futexWake(futexWord(p.tail), math.MaxInt32)
		}
	}
	// Registration handshake: tail store above, then epoch load. A
	// subscriber stores the epoch, then loads the tail; so either we see its
	// registration here, or it saw our tail (ABI.md "Registration").
	if e := atomic.LoadUint64(p.epochP); e != p.epoch && p.policy != DropOldest {
		p.epoch = e
		p.limit = 0
	}
}

// anySleeper loads every subscriber's sleeper flag (sequentially consistent
// loads; second half of the handshake in publish).
func (p *producer) anySleeper() bool {
	for i := 0; i < p.nsubs; i++ {
		if atomic.LoadUint32((*uint32)(unsafe.Add(p.sleepers, 4*i))) != 0 {
			return true
		}
	}
	return false
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
// bounds it (-1 when no unlimited subscriber exists) and its raw head.
func (p *producer) scan(w uint64) (blocker int, head uint64) {
	blocker = -1
	minHead := uint64(0)
	for i := 0; i < p.nsubs; i++ {
		e := p.s.entryOff(i)
		// State, then max_lag, then head: sequentially consistent loads
		// pairing with the registrant's stores (head and max_lag before
		// state = active).
		if atomic.LoadUint32(p.s.u32(e+entState)) != entActive {
			continue
		}
		if atomic.LoadUint64(p.s.u64(e+entMaxLag)) != 0 {
			continue // lossy subscribers never hold the producer back
		}
		h := atomic.LoadUint64(p.s.u64(e + entHead))
		if h > w { // beyond what is committed: see ABI.md §8.2
			// A head beyond the committed count is impossible for an honest
			// subscriber: evict it rather than trust it.
			p.remove(i, atomic.LoadUint64(p.s.u64(e+entGen)), entEvicted)
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
	return blocker, head
}

// wait blocks a Block producer until slot w is free, the timeout expires, or
// the blocking subscriber is reclaimed or evicted.
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
			p.remove(blocker, gen, entFree) // dead: its lock is gone
			continue
		}
		if now.Sub(since) > p.liveness {
			p.remove(blocker, gen, entEvicted) // alive but stalled
			continue
		}
		sleep := Watchdog
		if !deadline.IsZero() {
			sleep = min(sleep, deadline.Sub(now)+time.Millisecond)
		}
		sleep = min(sleep, p.liveness-now.Sub(since)+time.Millisecond)
		headP := p.s.u64(e + entHead)
		// Wake condition: the blocker's head must free a quarter of the
		// ring (at least the one slot needed), so a draining subscriber
		// wakes us once, not once per message. Stored before the flag.
		want := w + 1 - p.capacity + (max(p.capacity/4, 1) - 1)
		atomic.StoreUint32(p.waitEntry, uint32(blocker))
		atomic.StoreUint64(p.waitHead, want)
		// Producer parking handshake: store sleeping = 1, then load the
		// blocker's head (both sequentially consistent). The subscriber
		// stores its head (or, detaching, its state), then loads sleeping
		// (then wait_entry and wait_head); so either we see its change
		// here, or it sees our flag and wakes the futex on its head.
		atomic.StoreUint32(p.sleeping, 1)
		if h := atomic.LoadUint64(headP); h == head &&
			atomic.LoadUint32(p.s.u32(e+entState)) == entActive && atomic.LoadUint64(p.s.u64(e+entGen)) == gen {
			if futexWait(futexWord(headP), uint32(h), sleep) {
				p.watchdogFires++
			}
		}
		atomic.StoreUint32(p.sleeping, 0)
		atomic.StoreUint64(p.heartbeat, monoNow())
	}
}

// remove reclaims (newState entFree, the owner is dead) or evicts (entEvicted,
// the owner is alive but stalled or hostile) subscriber entry i, if it still
// holds generation gen. It runs under the registry lock; if the lock cannot
// be had quickly the entry is left alone and retried later.
func (p *producer) remove(i int, gen uint64, newState uint32) {
	h := p.s.host
	if h.lockRegistry(50*time.Millisecond) != nil {
		return
	}
	defer h.unlockRegistry()
	e := p.s.entryOff(i)
	if atomic.LoadUint32(p.s.u32(e+entState)) != entActive || atomic.LoadUint64(p.s.u64(e+entGen)) != gen {
		return // already changed by its owner or a registrant
	}
	if newState == entFree {
		ok, err := h.tryLockEntry(i)
		if err != nil || !ok {
			return // alive after all
		}
		defer h.unlockEntry(i)
	}
	// Registry writes, under flock: generation first, then state, then the
	// epoch (sequentially consistent stores; readers load state, then gen).
	atomic.StoreUint64(p.s.u64(e+entGen), gen+1)
	atomic.StoreUint32(p.s.u32(e+entState), newState)
	epoch := p.s.u64(offRegEpoch)
	atomic.StoreUint64(epoch, atomic.LoadUint64(epoch)+1) // no RMW needed: the flock holder is the only writer
	p.evictions++
	p.limit = 0
}

// close publishes what is pending and marks the producer closed.
func (p *producer) close() {
	if p.closed {
		return
	}
	p.claimed = false
	p.flush()
	// Closed is stored after the final tail: a subscriber that loads
	// closed, then reloads the tail, has seen every message.
	atomic.StoreUint32(p.state, prodClosed)
	futexWake(futexWord(p.tail), math.MaxInt32)
	p.closed = true
}
