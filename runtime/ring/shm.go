package ring

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// host supplies what differs between a mapped segment and a heap buffer:
// the registry lock (flock on the segment) and the liveness locks (OFD
// byte-range locks). Each Publisher or Subscriber has its own host value,
// the equivalent of its own open file description.
type host interface {
	// lockRegistry takes the registry lock, waiting at most timeout.
	lockRegistry(timeout time.Duration) error
	unlockRegistry()
	// tryLockEntry takes subscriber entry i's liveness lock for this handle
	// without waiting; false means another live handle holds it.
	tryLockEntry(i int) (bool, error)
	unlockEntry(i int)
	// entryAlive reports whether another handle holds entry i's lock.
	entryAlive(i int) bool
	// tryLockProducer takes the producer's liveness lock.
	tryLockProducer() (bool, error)
	unlockProducer()
	// producerAlive reports whether another handle holds the producer lock.
	producerAlive() bool
	// release drops every lock and resource of this handle.
	release() error
}

// shm is one handle's view of a segment: the memory, the validated geometry
// (local copies, never re-read from shared memory) and the host.
type shm struct {
	name string
	mem  []byte
	base unsafe.Pointer
	hdr  header
	host host
}

func newShm(name string, mem []byte, hdr header, h host) *shm {
	return &shm{name: name, mem: mem, base: unsafe.Pointer(unsafe.SliceData(mem)), hdr: hdr, host: h}
}

// All offsets passed below come from the validated local geometry, so they
// are in bounds and 8-byte (u64) or 4-byte (u32) aligned by construction.
func (s *shm) u64(off uint64) *uint64 { return (*uint64)(unsafe.Add(s.base, off)) }
func (s *shm) u32(off uint64) *uint32 { return (*uint32)(unsafe.Add(s.base, off)) }

func (s *shm) entryOff(i int) uint64 { return s.hdr.geo.tableOff + uint64(i)*EntrySize }

// evictedWord is the producer's eviction word of entry i: the generation of
// the entry it evicted (ABI.md §5.5).
func (s *shm) evictedWord(i int) *uint64 { return s.u64(s.hdr.geo.evictOff + 8*uint64(i)) }

// initSegment writes a fresh, zeroed segment's header and publishes it as
// ready. The caller holds the registry lock and the producer lock.
func (s *shm) initSegment(pid uint32, startTime uint64) {
	encodeIdentity(s.mem[:HeaderSize], &s.hdr)
	// Producer control line: written before ready, so attachers that see
	// ready also see an active producer.
	atomic.StoreUint32(s.u32(offProdPID), pid)
	atomic.StoreUint64(s.u64(offProdStartTime), startTime)
	atomic.StoreUint64(s.u64(offProdHeartbeat), monoNow())
	if !s.hdr.asymFences {
		atomic.StoreUint32(s.u32(offProdFences), fencesStrong)
	}
	atomic.StoreUint32(s.u32(offProdState), prodActive)
	// Ready is stored last (sequentially consistent, so a release): an
	// attacher that loads ready == 1 (an acquire) sees every byte above.
	atomic.StoreUint32(s.u32(offReady), readyReady)
}

// heapShared is the state a heap-backed ring's handles share: the buffer and
// in-process stand-ins for the file locks. It lets the ring logic run under
// the race detector, which does not see mmap'd memory.
type heapShared struct {
	mem      []byte
	mu       sync.Mutex // guards the fields below
	regOwner int
	regCond  *sync.Cond
	entOwner []int
	prodOwn  int
	nextID   int
}

// heapHost is one handle on a heapShared, like one open file description.
type heapHost struct {
	sh *heapShared
	id int
}

func newHeapShared(size uint64, maxSubs uint64) *heapShared {
	// Over-allocate so that the base is page aligned like an mmap.
	buf := make([]byte, size+4096)
	off := (4096 - uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%4096) % 4096
	sh := &heapShared{mem: buf[off : off+uintptr(size) : off+uintptr(size)], entOwner: make([]int, maxSubs)}
	sh.regCond = sync.NewCond(&sh.mu)
	return sh
}

func (sh *heapShared) handle() *heapHost {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.nextID++
	return &heapHost{sh: sh, id: sh.nextID}
}

// kill drops every lock a handle holds, as the kernel does when a process
// dies.
func (h *heapHost) kill() {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	for i, o := range h.sh.entOwner {
		if o == h.id {
			h.sh.entOwner[i] = 0
		}
	}
	if h.sh.prodOwn == h.id {
		h.sh.prodOwn = 0
	}
	if h.sh.regOwner == h.id {
		h.sh.regOwner = 0
		h.sh.regCond.Broadcast()
	}
}

func (h *heapHost) lockRegistry(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	for h.sh.regOwner != 0 {
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		h.sh.mu.Unlock()
		time.Sleep(50 * time.Microsecond)
		h.sh.mu.Lock()
	}
	h.sh.regOwner = h.id
	return nil
}

func (h *heapHost) unlockRegistry() {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.sh.regOwner == h.id {
		h.sh.regOwner = 0
	}
}

func (h *heapHost) tryLockEntry(i int) (bool, error) {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if o := h.sh.entOwner[i]; o != 0 && o != h.id {
		return false, nil
	}
	h.sh.entOwner[i] = h.id
	return true, nil
}

func (h *heapHost) unlockEntry(i int) {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.sh.entOwner[i] == h.id {
		h.sh.entOwner[i] = 0
	}
}

func (h *heapHost) entryAlive(i int) bool {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	o := h.sh.entOwner[i]
	return o != 0 && o != h.id
}

func (h *heapHost) tryLockProducer() (bool, error) {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.sh.prodOwn != 0 && h.sh.prodOwn != h.id {
		return false, nil
	}
	h.sh.prodOwn = h.id
	return true, nil
}

func (h *heapHost) unlockProducer() {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.sh.prodOwn == h.id {
		h.sh.prodOwn = 0
	}
}

func (h *heapHost) producerAlive() bool {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	return h.sh.prodOwn != 0 && h.sh.prodOwn != h.id
}

func (h *heapHost) release() error {
	h.kill()
	return nil
}
