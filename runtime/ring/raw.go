package ring

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
	"unsafe"
)

// Identity is a message type's wire identity, as a ring header records it
// and as Layout reports it for a generated Go type. The untyped (raw) API
// uses it where the typed API uses a type parameter: a program that moves
// the bytes of any message type — a bridge, a recorder — names the identity
// at run time and is checked against the ring exactly as Attach[T] is.
type Identity struct {
	Fingerprint uint64
	TypeID      uint32
	Size        int // message size in bytes, a multiple of Align
	Align       int // message alignment, a power of two
}

// String renders the identity as WriteStats does.
func (id Identity) String() string {
	return fmt.Sprintf("type id %d, fingerprint %#016x, %d B (align %d)", id.TypeID, id.Fingerprint, id.Size, id.Align)
}

// IdentityOf returns the identity of a generated message type T, checked as
// Create[T] checks it.
func IdentityOf[T Layout]() (Identity, error) {
	id, err := identityOf[T]()
	return id.public(), err
}

// Compare returns nil if got (a ring's identity) equals want, or an error
// wrapping ErrMismatch that names the first differing field with both
// values, as Attach does; op and name say who compared what.
func (want Identity) Compare(op, name string, got Identity) error {
	return compareIdentity(op, name, got.internal(), want.internal())
}

func (id Identity) internal() identity {
	return identity{fingerprint: id.Fingerprint, typeID: id.TypeID, size: uint64(id.Size), align: uint64(id.Align)}
}

func (id identity) public() Identity {
	return Identity{Fingerprint: id.fingerprint, TypeID: id.typeID, Size: int(id.size), Align: int(id.align)}
}

// newRawHeader is newHeader for an identity known at run time.
func newRawHeader(op, name string, pub Identity, opts *Options) (header, error) {
	if pub.Size <= 0 || pub.Align <= 0 {
		return header{}, fmt.Errorf("%s %q: %w: message size %d, alignment %d", op, name, ErrInvalidOptions, pub.Size, pub.Align)
	}
	return headerFor(op, name, pub.internal(), opts)
}

// RawPublisher is the single producer of a ring whose message type is known
// only by its Identity: Publisher[T] with byte slices for messages. It is not
// safe for concurrent use.
type RawPublisher struct {
	p *producer
	s *shm
}

// CreateRaw creates the named ring for messages of identity id and returns
// its publisher, the segment's owner, as Create[T] does.
func CreateRaw(name string, id Identity, opts Options) (*RawPublisher, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	hdr, err := newRawHeader("create", name, id, &opts)
	if err != nil {
		return nil, err
	}
	s, err := createSegment(name, &hdr, opts.Mode)
	if err != nil {
		return nil, err
	}
	return &RawPublisher{p: newProducer(s, opts.Timeout, opts.spin), s: s}, nil
}

// Name returns the ring's name.
func (p *RawPublisher) Name() string { return p.p.s.name }

// Identity returns the ring's message identity.
func (p *RawPublisher) Identity() Identity { return p.s.hdr.identity().public() }

// Created returns the ring's creation time, which tells one incarnation of
// a name from the next (Stats.Created).
func (p *RawPublisher) Created() time.Time { return time.Unix(0, int64(p.s.hdr.createdNs)) }

// Claim reserves the next slot and returns its message bytes (Identity().Size
// of them) for in-place filling, as Publisher.Claim does. The slice is valid
// until Commit.
func (p *RawPublisher) Claim() ([]byte, error) {
	m, err := p.p.claim()
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(m), p.s.hdr.geo.msgSize), nil
}

// Commit publishes the claimed slot.
func (p *RawPublisher) Commit() error { return p.p.commit() }

// Publish copies msg, which must be exactly one message long, into the next
// slot and commits it.
func (p *RawPublisher) Publish(msg []byte) error {
	if uint64(len(msg)) != p.s.hdr.geo.msgSize {
		return fmt.Errorf("publish %q: %w: message of %d bytes, ring messages are %d", p.s.name, ErrMismatch, len(msg), p.s.hdr.geo.msgSize)
	}
	m, err := p.Claim()
	if err != nil {
		return err
	}
	copy(m, msg)
	return p.p.commit()
}

// Flush makes every committed message visible to subscribers now.
func (p *RawPublisher) Flush() { p.p.flush() }

// Published returns how many messages have been committed.
func (p *RawPublisher) Published() uint64 { return p.p.cursor }

// Dropped returns how many messages DropNewest rejected.
func (p *RawPublisher) Dropped() uint64 { return p.p.dropped }

// Close flushes, marks the ring closed, releases the segment and unlinks its
// name, as Publisher.Close does.
func (p *RawPublisher) Close() error {
	if p.s == nil {
		return nil
	}
	err := p.closeProducer()
	err = errors.Join(err, unlinkOwned(p.s.name, p.s.host), p.s.host.release())
	p.s = nil
	return err
}

// closeProducer marks the ring closed (a truncated segment makes it an
// error, not a crash).
func (p *RawPublisher) closeProducer() (err error) {
	defer guardFault(p.s.name, debug.SetPanicOnFault(true), &err)
	p.p.close()
	return nil
}

// RawSubscriber is one registered reader of a ring whose message type is
// known only by its Identity: Subscriber[T] with byte slices for messages.
// It is not safe for concurrent use.
type RawSubscriber struct {
	c *consumer
	s *shm
}

// AttachRaw opens the named ring, checks it against id (ErrMismatch names
// the differing field and both values) and registers a subscriber, as
// Attach[T] does.
func AttachRaw(name string, id Identity, opts SubscribeOptions) (*RawSubscriber, error) {
	return attachRaw(name, &id, opts)
}

// AttachAny opens the named ring and registers a subscriber for whatever
// message identity its header records (Identity reports it). It is for
// programs that move bytes without interpreting them.
func AttachAny(name string, opts SubscribeOptions) (*RawSubscriber, error) {
	return attachRaw(name, nil, opts)
}

func attachRaw(name string, want *Identity, opts SubscribeOptions) (*RawSubscriber, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
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
	id := s.hdr.identity()
	if want != nil {
		id = want.internal()
	}
	c, err := subscribeAs(s, id, opts)
	if err != nil {
		return nil, err
	}
	return &RawSubscriber{c: c, s: s}, nil
}

// Name returns the ring's name.
func (s *RawSubscriber) Name() string { return s.c.s.name }

// Identity returns the ring's message identity.
func (s *RawSubscriber) Identity() Identity { return s.s.hdr.identity().public() }

// Created returns the ring's creation time (Stats.Created): with the name,
// it identifies the ring's sequence space, which restarts at 0 when a ring
// of that name is created again.
func (s *RawSubscriber) Created() time.Time { return time.Unix(0, int64(s.s.hdr.createdNs)) }

// Capacity returns the ring's slot count.
func (s *RawSubscriber) Capacity() int { return int(s.c.capacity) }

// Seq returns the ring sequence (the index since the ring's creation, from
// 0) of the next message this subscriber will read: the first message of the
// next batch.
func (s *RawSubscriber) Seq() uint64 { return s.c.head }

// RawBatch is a run of contiguous borrowed slots, valid until Release.
type RawBatch struct {
	base   unsafe.Pointer
	n      int
	stride uintptr
	size   int
	seq    uint64
}

// Len returns the number of messages in the batch.
func (b RawBatch) Len() int { return b.n }

// Seq returns the ring sequence of the batch's first message; message i has
// sequence Seq()+i.
func (b RawBatch) Seq() uint64 { return b.seq }

// At returns the i-th message's bytes in place (Identity().Size of them).
func (b RawBatch) At(i int) []byte {
	if uint(i) >= uint(b.n) {
		panic(fmt.Sprintf("ring: batch index %d out of range [0, %d)", i, b.n))
	}
	return unsafe.Slice((*byte)(unsafe.Add(b.base, uintptr(i)*b.stride)), b.size)
}

func (s *RawSubscriber) batch(m unsafe.Pointer, n uint64) RawBatch {
	return RawBatch{base: m, n: int(n), stride: uintptr(s.c.slotSize), size: int(s.s.hdr.geo.msgSize), seq: s.c.head}
}

// BorrowBatch waits for at least one message and borrows up to maxN
// contiguous ones (fewer at the ring's wrap point), as Subscriber.BorrowBatch
// does. Release releases them.
func (s *RawSubscriber) BorrowBatch(ctx context.Context, maxN int) (_ RawBatch, err error) {
	if s.s == nil {
		return RawBatch{}, s.c.errClosed("borrow")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	for {
		b, err := s.tryBorrowBatch(maxN)
		if err != ErrEmpty {
			return b, err
		}
		if err := s.c.wait(ctx); err != nil {
			return RawBatch{}, err
		}
	}
}

// TryBorrowBatch is BorrowBatch without waiting: ErrEmpty if no message is
// ready.
func (s *RawSubscriber) TryBorrowBatch(maxN int) (_ RawBatch, err error) {
	if s.s == nil {
		return RawBatch{}, s.c.errClosed("borrow")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	return s.tryBorrowBatch(maxN)
}

func (s *RawSubscriber) tryBorrowBatch(maxN int) (RawBatch, error) {
	m, n, err := s.c.borrowBatch(uint64(max(maxN, 1)))
	if err != nil {
		return RawBatch{}, err
	}
	return s.batch(m, n), nil
}

// Release ends the current borrow. It returns ErrOverwritten if any borrowed
// slot was overwritten meanwhile: the whole borrow must then be discarded,
// and it was counted as dropped.
func (s *RawSubscriber) Release() (err error) {
	if s.s == nil {
		return s.c.errClosed("release")
	}
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	return s.c.release()
}

// Received returns how many messages this subscriber has received (for a
// named subscriber, since its first registration).
func (s *RawSubscriber) Received() uint64 { return s.c.received }

// Dropped returns how many messages this subscriber lost.
func (s *RawSubscriber) Dropped() uint64 { return s.c.dropped }

// Lag returns how many published messages this subscriber has not read.
func (s *RawSubscriber) Lag() (lag uint64) {
	if s.s == nil {
		return 0
	}
	var err error
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err) // a truncated segment: 0
	return sat(loadTail(s.s), s.c.head)
}

// Close deregisters the subscriber and unmaps the segment. Slices from
// BorrowBatch are invalid afterwards.
func (s *RawSubscriber) Close() error {
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
func (s *RawSubscriber) closeEntry() (err error) {
	defer guardFault(s.c.s.name, debug.SetPanicOnFault(true), &err)
	s.c.close()
	return nil
}
