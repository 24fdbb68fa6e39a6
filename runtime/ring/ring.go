package ring

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Options configure a ring at creation. The zero value is valid: a Block
// ring of DefaultCapacity slots, DefaultMaxSubscribers entries, no batching,
// mode 0600.
type Options struct {
	// Capacity is the slot count, a power of two (default DefaultCapacity).
	Capacity int
	// MaxSubscribers is the subscriber table size (default
	// DefaultMaxSubscribers).
	MaxSubscribers int
	// Policy is the producer's behaviour when the ring is full.
	Policy Policy
	// Batch is K: the tail is published every K commits, on Flush, before
	// the producer waits, and whenever a subscriber sleeps. 0 or 1 publishes
	// every commit; at most Capacity/2.
	Batch int
	// Timeout bounds one Block publish (ErrTimeout); 0 waits as long as the
	// blocking subscriber is alive and progressing.
	Timeout time.Duration
	// LivenessTimeout is how long a Block producer waits on a live
	// subscriber that makes no progress before evicting it (default
	// DefaultLivenessTimeout). A dead subscriber is reclaimed within one
	// Watchdog period regardless.
	LivenessTimeout time.Duration
	// Mode is the segment's permission bits (default 0600); it is applied
	// with fchmod, so the umask does not filter it. World-writable modes
	// are refused.
	Mode os.FileMode
	// SlotLayout is how slots are laid out (default SlotAuto: slots of
	// whole cache lines when a message fits in 120 bytes — one line up to
	// 56 — packed otherwise; SlotLayout.Resolve).
	SlotLayout SlotLayout
	// Fences chooses how the ring's handshakes are fenced (default
	// FencesAuto: asymmetric, with membarrier, where this process can
	// register for it).
	Fences Fences

	// spin overrides defaultSpin (tests: 0 forces parking).
	spin int
	// forceAsym marks the ring asymmetric without registering for
	// membarrier (golden vectors must not depend on the machine).
	forceAsym bool
}

// SubscribeOptions configure a subscriber at attach.
type SubscribeOptions struct {
	// MaxLag is 0 for an unlimited (critical) subscriber: a Block or
	// DropNewest producer never overwrites a message it has not read. A
	// finite MaxLag (1..Capacity) makes a lossy subscriber: the producer
	// never waits for it, and whenever it falls more than MaxLag behind
	// the tail or is lapped it skips ahead, counting every skipped message
	// as dropped.
	MaxLag int
	// ReadyTimeout bounds the wait for a segment still being initialised
	// (default 1s).
	ReadyTimeout time.Duration
	// AllowForeignOwner accepts a segment owned by another uid.
	AllowForeignOwner bool
	// Name makes a durable subscriber: when a subscriber of the same name
	// closed or died earlier, this one takes over its entry, keeping its
	// received and dropped counters, and starts as Start says. Anonymous
	// subscribers (the default) always start fresh at the live tail.
	Name string
	// Start is where a named subscriber that takes over an entry resumes.
	Start Start

	spin         int
	noMembarrier bool // tests: join as a membarrier-less process would
}

// Fences says how a ring's cross-process handshakes are fenced (ABI.md
// §8.6). It is chosen at creation and recorded in the header.
type Fences int

const (
	// FencesAuto uses asymmetric fences where the creating process can
	// register for membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), strong
	// fences otherwise (seccomp, old kernels). TACHYON_FENCES=strong in the
	// environment forces strong.
	FencesAuto Fences = iota
	// FencesStrong fences both sides of every handshake (a locked
	// instruction on the publish and release paths).
	FencesStrong
	// FencesAsymmetric requires asymmetric fences: the publish and release
	// paths carry no fence, and the rare parking and registration paths
	// issue a membarrier. Create fails where it is unavailable.
	FencesAsymmetric
)

// String returns the fence mode's name.
func (f Fences) String() string {
	switch f {
	case FencesAuto:
		return "auto"
	case FencesStrong:
		return "strong"
	case FencesAsymmetric:
		return "asymmetric"
	}
	return fmt.Sprintf("fences(%d)", int(f))
}

// Start says where a restarted named subscriber resumes reading.
type Start int

const (
	// StartLive skips what was published while it was away: it reads from
	// the live tail, and counts the skipped messages as dropped.
	StartLive Start = iota
	// StartLast resumes at its last position: every message still in the
	// ring is delivered; those overwritten while it was away are counted
	// as dropped.
	StartLast
)

// SubscriberKey is the 64-bit key a named subscriber stores in its entry
// (ABI.md §7): FNV-1a of the name, with 0 (anonymous) mapped to 1.
func SubscriberKey(name string) uint64 {
	if name == "" {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return max(h, 1)
}

func (o *Options) normalize() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidOptions}, a...)...) }
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.MaxSubscribers == 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.Batch == 0 {
		o.Batch = 1
	}
	if o.LivenessTimeout == 0 {
		o.LivenessTimeout = DefaultLivenessTimeout
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.spin == 0 {
		o.spin = defaultSpin
	} else if o.spin < 0 {
		o.spin = 0
	}
	switch {
	case o.Capacity < 2 || o.Capacity&(o.Capacity-1) != 0 || o.Capacity > MaxCapacity:
		return bad("capacity %d is not a power of two in [2, %d]", o.Capacity, MaxCapacity)
	case o.MaxSubscribers < 1 || o.MaxSubscribers > MaxSubscribers:
		return bad("max subscribers %d outside [1, %d]", o.MaxSubscribers, MaxSubscribers)
	case o.Batch < 1 || o.Batch > o.Capacity/2:
		return bad("batch %d outside [1, %d]", o.Batch, o.Capacity/2)
	case o.Policy > DropOldest:
		return bad("policy %d", uint32(o.Policy))
	case o.Timeout < 0 || o.LivenessTimeout < 0:
		return bad("negative timeout")
	case o.Mode&^os.ModePerm != 0 || o.Mode&0o002 != 0:
		return bad("mode %v (permission bits only, not world-writable)", o.Mode)
	case o.SlotLayout < SlotAuto || o.SlotLayout > SlotLine:
		return bad("slot layout %d", int(o.SlotLayout))
	case o.Fences < FencesAuto || o.Fences > FencesAsymmetric:
		return bad("fences %d", int(o.Fences))
	}
	return nil
}

// identity is a Go message type's wire identity.
type identity struct {
	fingerprint uint64
	typeID      uint32
	size, align uint64
}

// identityOf checks that T can live in a segment (its Go size is its
// declared size; it holds no pointers) and returns its identity.
func identityOf[T Layout]() (identity, error) {
	var zero T
	id := identity{zero.TachyonFingerprint(), zero.TachyonTypeID(), uint64(zero.TachyonSize()), uint64(zero.TachyonAlign())}
	rt := reflect.TypeFor[T]()
	switch {
	case zero.TachyonSize() <= 0 || uintptr(zero.TachyonSize()) != unsafe.Sizeof(zero):
		return id, fmt.Errorf("%w: type %v: TachyonSize %d, Go size %d", ErrMismatch, rt, zero.TachyonSize(), unsafe.Sizeof(zero))
	case zero.TachyonAlign() <= 0 || !isPow2(id.align) || uintptr(zero.TachyonAlign()) < unsafe.Alignof(zero):
		return id, fmt.Errorf("%w: type %v: TachyonAlign %d, Go alignment %d", ErrMismatch, rt, zero.TachyonAlign(), unsafe.Alignof(zero))
	case hasPointers(rt):
		return id, fmt.Errorf("%w: type %v holds pointers and cannot live in shared memory", ErrMismatch, rt)
	}
	return id, nil
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// checkIdentity compares a ring header with T's identity.
func checkIdentity(op, name string, h *header, id identity) error {
	return compareIdentity(op, name, h.identity(), id)
}

// identity is the message identity a header records.
func (h *header) identity() identity {
	return identity{fingerprint: h.fingerprint, typeID: h.typeID, size: h.geo.msgSize, align: h.geo.msgAlign}
}

// compareIdentity names the first field in which a ring's identity (got)
// differs from the caller's (want), with both values.
func compareIdentity(op, name string, got, want identity) error {
	mismatch := func(field string, g, w uint64) error {
		return fmt.Errorf("%s %q: %w: %s %#x, want %#x", op, name, ErrMismatch, field, g, w)
	}
	switch {
	case got.fingerprint != want.fingerprint:
		return mismatch("fingerprint", got.fingerprint, want.fingerprint)
	case got.typeID != want.typeID:
		return mismatch("type id", uint64(got.typeID), uint64(want.typeID))
	case got.size != want.size:
		return mismatch("message size", got.size, want.size)
	case got.align != want.align:
		return mismatch("message alignment", got.align, want.align)
	}
	return nil
}

func newHeader[T Layout](op, name string, opts *Options) (header, error) {
	id, err := identityOf[T]()
	if err != nil {
		return header{}, fmt.Errorf("%s %q: %w", op, name, err)
	}
	return headerFor(op, name, id, opts)
}

// headerFor builds the header of a new ring of identity id: the options
// normalised and validated, the geometry, the fence mode.
func headerFor(op, name string, id identity, opts *Options) (header, error) {
	if err := opts.normalize(); err != nil {
		return header{}, fmt.Errorf("%s %q: %w", op, name, err)
	}
	line := opts.SlotLayout.Resolve(id.size, id.align) == SlotLine
	g, err := computeGeometry(id.size, id.align, uint64(opts.Capacity), uint64(opts.MaxSubscribers), line)
	if err != nil {
		return header{}, fmt.Errorf("%s %q: %w: %v", op, name, ErrInvalidOptions, err)
	}
	asym := opts.forceAsym
	switch opts.Fences {
	case FencesAuto:
		asym = asym || membarrierRegistered()
	case FencesAsymmetric:
		if !asym && !membarrierRegistered() {
			return header{}, fmt.Errorf("%s %q: %w: asymmetric fences need membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which this process cannot register (kernel, seccomp or %s=strong)",
				op, name, ErrUnsupported, fencesEnv)
		}
		asym = true
	case FencesStrong:
		asym = false
	}
	return header{
		fingerprint: id.fingerprint,
		typeID:      id.typeID,
		policy:      opts.Policy,
		batch:       uint32(opts.Batch),
		asymFences:  asym,
		livenessNs:  uint64(opts.LivenessTimeout),
		createdNs:   uint64(time.Now().UnixNano()),
		geo:         g,
	}, nil
}

// Publisher is the single producer of a ring of T. It is not safe for
// concurrent use.
type Publisher[T Layout] struct {
	p      *producer
	s      *shm
	owner  bool        // unlink the name on Close
	sealed *sealedInfo // a sealed (memfd) ring's hand-over state, else nil
}

// sealedInfo is what a sealed publisher's Serve hands out: its own
// descriptor of the segment, guarded so that Close (on the publishing
// goroutine) and Serve (on another) never race over it.
type sealedInfo struct {
	mu     sync.Mutex
	fd     int // a dup of the segment's descriptor, -1 once closed
	id     identity
	name   string
	closeF func(fd int)
}

func (si *sealedInfo) close() {
	si.mu.Lock()
	defer si.mu.Unlock()
	if si.fd >= 0 {
		si.closeF(si.fd)
		si.fd = -1
	}
}

// Create creates the named ring for messages of type T and returns its
// publisher, the segment's owner: Close unlinks the name. The name must pass
// ValidateName; an existing segment of that name is an error (ErrExists).
func Create[T Layout](name string, opts Options) (*Publisher[T], error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	hdr, err := newHeader[T]("create", name, &opts)
	if err != nil {
		return nil, err
	}
	s, err := createSegment(name, &hdr, opts.Mode)
	if err != nil {
		return nil, err
	}
	return &Publisher[T]{p: newProducer(s, opts.Timeout, opts.spin), s: s, owner: true}, nil
}

// Name returns the ring's name.
func (p *Publisher[T]) Name() string { return p.p.s.name }

// Claim reserves the next slot and returns it for in-place filling; Commit
// publishes it. Claim without Commit returns the same slot again. On a full
// ring it waits (Block, up to Options.Timeout: ErrTimeout) or returns ErrFull
// (DropNewest); DropOldest never waits. The pointer is valid until Commit.
func (p *Publisher[T]) Claim() (*T, error) {
	m, err := p.p.claim()
	if err != nil {
		return nil, err
	}
	return (*T)(m), nil
}

// Commit publishes the claimed slot (the tail becomes visible per
// Options.Batch).
func (p *Publisher[T]) Commit() error { return p.p.commit() }

// Publish copies msg into the next slot and commits it.
func (p *Publisher[T]) Publish(msg *T) error {
	if pp := p.p; !raceEnabled && pp.cursor < pp.limit && !pp.claimed {
		// Fast path: claim's open stamp, the copy, commit's seal.
		w := pp.cursor
		slot := pp.stamp(w)
		storeOpenStamp(slot, 2*w+1)
		*(*T)(unsafe.Add(unsafe.Pointer(slot), pp.msgOff)) = *msg
		pp.seal(slot, w+1)
		return nil
	}
	m, err := p.p.claim()
	if err != nil {
		return err
	}
	if raceEnabled {
		copyToSlot(m, unsafe.Pointer(msg), unsafe.Sizeof(*msg))
	} else {
		*(*T)(m) = *msg
	}
	return p.p.commit()
}

// Flush makes every committed message visible to subscribers now.
func (p *Publisher[T]) Flush() { p.p.flush() }

// Subscribers returns how many subscribers are registered (their
// registration complete: every message published from now on reaches
// them), alive and not evicted.
func (p *Publisher[T]) Subscribers() int { return p.p.activeSubscribers() }

// WaitSubscribers waits until at least n subscribers are registered
// (Subscribers), polling the table; it returns ctx's error if ctx ends
// first. A subscriber counted here receives every message published after
// WaitSubscribers returns.
func (p *Publisher[T]) WaitSubscribers(ctx context.Context, n int) error {
	for p.p.activeSubscribers() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %q: %d of %d subscribers registered: %w", p.s.name, p.p.activeSubscribers(), n, ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
	return nil
}

// Published returns how many messages have been committed.
func (p *Publisher[T]) Published() uint64 { return p.p.cursor }

// Dropped returns how many messages DropNewest rejected.
func (p *Publisher[T]) Dropped() uint64 { return p.p.dropped }

// Close flushes, marks the ring closed (subscribers drain it, then receive
// ErrClosed), releases the segment and, for the owner, unlinks its name.
// Pointers from Claim are invalid afterwards.
func (p *Publisher[T]) Close() error {
	if p.s == nil {
		return nil
	}
	err := p.closeProducer()
	if p.sealed != nil {
		p.sealed.close()
	}
	if p.owner {
		err = errors.Join(err, unlinkOwned(p.s.name, p.s.host))
	}
	err = errors.Join(err, p.s.host.release())
	p.s = nil
	return err
}

// closeProducer publishes what is pending and marks the ring closed (a
// segment truncated under us makes it an error; everything is released
// regardless).
func (p *Publisher[T]) closeProducer() (err error) {
	defer guardFault(p.s.name, debug.SetPanicOnFault(true), &err)
	p.p.close()
	return nil
}

// Subscriber is one registered reader of a ring of T. It is not safe for
// concurrent use.
type Subscriber[T Layout] struct {
	c   *consumer
	s   *shm
	buf T // Messages' copy
}

// Attach opens the named ring, checks it against T (fingerprint, type id,
// size, alignment; ErrMismatch names both values) and registers a
// subscriber. It reads messages published after it registered.
func Attach[T Layout](name string, opts SubscribeOptions) (*Subscriber[T], error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	id, err := identityOf[T]()
	if err != nil {
		return nil, fmt.Errorf("attach %q: %w", name, err)
	}
	if opts.MaxLag < 0 {
		return nil, fmt.Errorf("attach %q: %w: negative max lag", name, ErrInvalidOptions)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = time.Second
	}
	s, err := openSegment("attach", name, true, opts.ReadyTimeout, opts.AllowForeignOwner)
	if err != nil {
		return nil, err
	}
	return subscribe[T](s, id, opts)
}

func subscribe[T Layout](s *shm, id identity, opts SubscribeOptions) (*Subscriber[T], error) {
	c, err := subscribeAs(s, id, opts)
	if err != nil {
		return nil, err
	}
	return &Subscriber[T]{c: c, s: s}, nil
}

// subscribeAs checks the segment against id and registers a consumer on
// it (typed and untyped subscribers alike); on failure it releases s.
func subscribeAs(s *shm, id identity, opts SubscribeOptions) (*consumer, error) {
	if err := checkIdentity("attach", s.name, &s.hdr, id); err != nil {
		s.host.release()
		return nil, err
	}
	spin := opts.spin
	if spin == 0 {
		spin = defaultSpin
	} else if spin < 0 {
		spin = 0
	}
	c, err := register(s, registerOpts{maxLag: uint64(opts.MaxLag), spin: spin, key: SubscriberKey(opts.Name),
		start: opts.Start, noMembarrier: opts.noMembarrier})
	if err != nil {
		s.host.release()
		return nil, err
	}
	return c, nil
}

// Name returns the ring's name.
func (s *Subscriber[T]) Name() string { return s.c.s.name }

// Borrow waits for the next message and returns it in place, valid until
// Release. For a lossy subscriber (MaxLag > 0, or a DropOldest ring) the
// slot may be overwritten while borrowed: Release then returns
// ErrOverwritten and what was read must be discarded. Borrow returns
// ErrClosed or ErrPublisherDead once every message has been delivered,
// ErrEvicted if the producer evicted this subscriber, or ctx's error.
func (s *Subscriber[T]) Borrow(ctx context.Context) (_ *T, err error) {
	if s.s == nil {
		return nil, s.c.errClosed("borrow")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	for {
		m, err := s.c.borrow()
		if err != ErrEmpty {
			return (*T)(m), err
		}
		if err := s.c.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// TryBorrow is Borrow without waiting: ErrEmpty if no message is ready.
func (s *Subscriber[T]) TryBorrow() (_ *T, err error) {
	if s.s == nil {
		return nil, s.c.errClosed("borrow")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	m, err := s.c.borrow()
	return (*T)(m), err
}

// Batch is a run of contiguous borrowed slots, valid until Release.
type Batch[T Layout] struct {
	base   unsafe.Pointer
	n      int
	stride uintptr
}

// Len returns the number of messages in the batch.
func (b Batch[T]) Len() int { return b.n }

// At returns the i-th message of the batch in place.
func (b Batch[T]) At(i int) *T {
	if uint(i) >= uint(b.n) {
		batchIndexPanic(i, b.n)
	}
	return (*T)(unsafe.Add(b.base, uintptr(i)*b.stride))
}

// batchIndexPanic is At's out-of-range panic, out of line so that At
// inlines into the caller's loop.
//
//go:noinline
func batchIndexPanic(i, n int) {
	panic(fmt.Sprintf("ring: batch index %d out of range [0, %d)", i, n))
}

// BorrowBatch waits for at least one message and borrows up to max
// contiguous ones (fewer at the ring's wrap point). Release releases them.
func (s *Subscriber[T]) BorrowBatch(ctx context.Context, max int) (_ Batch[T], err error) {
	if s.s == nil {
		return Batch[T]{}, s.c.errClosed("borrow")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	if max < 1 {
		max = 1
	}
	for {
		m, n, err := s.c.borrowBatch(uint64(max))
		if err != ErrEmpty {
			return Batch[T]{base: m, n: int(n), stride: uintptr(s.c.slotSize)}, err
		}
		if err := s.c.wait(ctx); err != nil {
			return Batch[T]{}, err
		}
	}
}

// Release ends the current borrow (single or batch). It returns
// ErrOverwritten if any borrowed slot was overwritten meanwhile: then the
// whole borrow must be discarded, and it was counted as dropped.
func (s *Subscriber[T]) Release() (err error) {
	if s.s == nil {
		return s.c.errClosed("release")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	return s.c.release()
}

// TryRecv copies the next message into dst without waiting: ErrEmpty if
// none is ready. A lossy subscriber never returns a torn message: a copy
// overlapped by an overwrite is discarded, counted, and the next is read.
func (s *Subscriber[T]) TryRecv(dst *T) (err error) {
	if s.s == nil {
		return s.c.errClosed("receive")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	return s.tryRecv(dst)
}

// tryRecv is TryRecv for a caller that holds the fault guard (a guard
// costs ~80 instructions, once per call is enough). Its fast path is the
// caught-up subscriber whose window is the whole ring (ABI.md §8.5 step
// 1a): head's stamp, the copy, the stamp again, the head store, with
// nothing in between; anything else takes tryRecvSlow.
func (s *Subscriber[T]) tryRecv(dst *T) error {
	c := s.c
	if h := c.head; !raceEnabled && h >= c.tail && c.window == c.capacity && c.nb == 0 {
		slot := c.stamp(h)
		// Seqlock read-begin (an acquire; pairs with the commit stamp
		// store): slot h holds message h, whose bytes the copy then sees.
		if atomic.LoadUint64(slot) == 2*h+2 && !c.isEvicted() {
			*dst = *(*T)(unsafe.Add(unsafe.Pointer(slot), c.msgOff))
			loadFence()
			// Read-end: no overwrite overlapped the copy (a drop_oldest
			// ring may lap us; tryRecvSlow then counts what was lost).
			if atomic.LoadUint64(slot) == 2*h+2 {
				c.tail = h + 1
				c.head = h + 1
				c.received++
				c.storeHead()
				return nil
			}
		}
	}
	return s.tryRecvSlow(dst)
}

func (s *Subscriber[T]) tryRecvSlow(dst *T) error {
	if s.c.nb != 0 {
		return fmt.Errorf("receive %q: %w", s.s.name, ErrClaimed)
	}
	for {
		m, err := s.c.next()
		if err != nil {
			return err
		}
		if raceEnabled {
			copyFromSlot(unsafe.Pointer(dst), m, unsafe.Sizeof(*dst))
		} else {
			*dst = *(*T)(m)
		}
		if ok, err := s.c.consume(); ok || err != nil {
			return err
		}
	}
}

// Recv waits for the next message and copies it into dst. It honours ctx's
// deadline and cancellation, and returns ErrClosed, ErrPublisherDead or
// ErrEvicted as Borrow does.
func (s *Subscriber[T]) Recv(ctx context.Context, dst *T) (err error) {
	if s.s == nil {
		return s.c.errClosed("receive")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	for {
		err := s.tryRecv(dst)
		if err != ErrEmpty {
			return err
		}
		if err := s.c.wait(ctx); err != nil {
			return err
		}
	}
}

// Messages iterates over received messages (copies; the pointer is valid
// until the next iteration). It ends after ErrClosed without yielding it;
// any other error (ctx's, ErrPublisherDead, ErrEvicted) is yielded once as
// (nil, err) before it ends.
func (s *Subscriber[T]) Messages(ctx context.Context) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		for {
			err := s.Recv(ctx, &s.buf)
			if err == ErrClosed {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(&s.buf, nil) {
				return
			}
		}
	}
}

// Received returns how many messages this subscriber has received.
func (s *Subscriber[T]) Received() uint64 { return s.c.received }

// Dropped returns how many messages this subscriber lost (lapped, skipped
// beyond MaxLag, or overwritten while borrowed).
func (s *Subscriber[T]) Dropped() uint64 { return s.c.dropped }

// Lag returns how many published messages this subscriber has not read.
func (s *Subscriber[T]) Lag() (lag uint64) {
	if s.s == nil {
		return 0
	}
	var err error
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err) // a truncated segment: 0
	t := loadTail(s.s)
	if t < s.c.head {
		return 0
	}
	return t - s.c.head
}

// Close deregisters the subscriber (its entry becomes free) and unmaps the
// segment. Pointers from Borrow are invalid afterwards.
func (s *Subscriber[T]) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.closeEntry()
	err = errors.Join(err, s.s.host.release())
	s.s = nil
	return err
}

// closeEntry detaches from the table (a truncated segment makes it an
// error; the locks and the mapping are released regardless).
func (s *Subscriber[T]) closeEntry() (err error) {
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	s.c.close()
	return nil
}
