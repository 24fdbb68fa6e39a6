package ring

import (
	"encoding/binary"
	"fmt"
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
