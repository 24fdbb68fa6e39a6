package ring

import "sync/atomic"

// fullFence is a StoreLoad barrier for the strong side of a handshake: an
// atomic exchange on a private word (a LOCK-prefixed instruction on
// x86-64, cheaper than MFENCE; a full barrier in Go's memory model
// elsewhere).
func fullFence(word *uint32) { atomic.SwapUint32(word, 0) }
