package ring

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"unsafe"
)

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

func putLE64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }

// loadTail loads the published tail (sequentially consistent).
func loadTail(s *shm) uint64 { return atomic.LoadUint64(s.u64(offTail)) }

// faultError turns a memory fault (a segment truncated under us) into an
// error; it is deferred around code that reads a fresh mapping.
func faultError(op, name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s %q: %w: memory fault reading the segment (truncated?): %v", op, name, ErrCorrupt, r)
	}
}

// guardFault is deferred, with the previous debug.SetPanicOnFault setting,
// by the Subscriber methods that read the segment: a named segment that a
// same-uid process truncated under us faults on the next access (SIGBUS),
// which it turns into an ErrCorrupt error instead of a crash. Any other
// panic goes on.
func guardFault(name string, old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		if _, fault := r.(interface{ Addr() uintptr }); !fault {
			panic(r)
		}
		*err = fmt.Errorf("ring %q: %w: memory fault reading the segment (truncated by another process? the sealed mode prevents it): %v", name, ErrCorrupt, r)
	}
}
