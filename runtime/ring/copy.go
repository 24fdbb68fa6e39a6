package ring

import (
	"sync/atomic"
	"unsafe"
)

// copyToSlot copies n bytes from src into a slot's message bytes with 8-byte
// atomic stores (race builds only; slot message regions are 8-aligned and
// padded to a multiple of 8).
func copyToSlot(dst, src unsafe.Pointer, n uintptr) {
	s := unsafe.Slice((*byte)(src), n)
	for off := uintptr(0); off < n; off += 8 {
		var w [8]byte
		copy(w[:], s[off:])
		atomic.StoreUint64((*uint64)(unsafe.Add(dst, off)), *(*uint64)(unsafe.Pointer(&w)))
	}
}

// copyFromSlot copies n bytes of a slot's message into dst with 8-byte atomic
// loads (race builds only).
func copyFromSlot(dst, src unsafe.Pointer, n uintptr) {
	d := unsafe.Slice((*byte)(dst), n)
	for off := uintptr(0); off < n; off += 8 {
		w := atomic.LoadUint64((*uint64)(unsafe.Add(src, off)))
		copy(d[off:], (*[8]byte)(unsafe.Pointer(&w))[:])
	}
}
