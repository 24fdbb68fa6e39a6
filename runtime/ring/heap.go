package ring

import "sync/atomic"

// heapRing is a ring over a Go heap buffer instead of a shared mapping: the
// same protocol code, with in-process stand-ins for the file locks. It exists
// so that the race detector (blind to mmap'd memory) can check the index
// protocol; it is also a correct in-process ring.
type heapRing[T Layout] struct {
	name string
	sh   *heapShared
}

// newHeapRing creates a heap-backed ring and returns its publisher.
func newHeapRing[T Layout](name string, opts Options) (*Publisher[T], *heapRing[T], error) {
	hdr, err := newHeader[T]("create", name, &opts)
	if err != nil {
		return nil, nil, err
	}
	sh := newHeapShared(hdr.geo.segSize, hdr.geo.maxSubs)
	h := sh.handle()
	if _, err := h.tryLockProducer(); err != nil {
		return nil, nil, err
	}
	s := newShm(name, sh.mem, hdr, h)
	s.initSegment(uint32(processID()), processStartTime())
	return &Publisher[T]{p: newProducer(s, opts.Timeout, opts.spin), s: s}, &heapRing[T]{name: name, sh: sh}, nil
}

// attach validates the heap ring's header like Attach and registers a
// subscriber on a fresh handle.
func (r *heapRing[T]) attach(opts SubscribeOptions) (*Subscriber[T], error) {
	s, err := r.open()
	if err != nil {
		return nil, err
	}
	id, err := identityOf[T]()
	if err != nil {
		return nil, err
	}
	return subscribe[T](s, id, opts)
}

// open returns a new handle on the heap ring's validated header.
func (r *heapRing[T]) open() (*shm, error) {
	var raw [HeaderSize]byte
	// The identity line is immutable after ready; the ready word is read
	// atomically as in readHeader.
	for i := 0; i < LineSize; i += 8 {
		w := atomic.LoadUint64((*uint64)(unsafePointer(&r.sh.mem[i])))
		putLE64(raw[i:], w)
	}
	hdr, err := decodeHeader(raw[:])
	if err != nil {
		return nil, err
	}
	return newShm(r.name, r.sh.mem, hdr, r.sh.handle()), nil
}
