//go:build (!amd64 && !arm64) || race

package ring

import "sync/atomic"

// storeRelease stores v at addr with (at least) release semantics. Off
// x86-64 and arm64, and under the race detector (which must see the store to check
// the protocol), it is sync/atomic's sequentially consistent store.
func storeRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

var openStampFence uint32

// storeOpenStamp stores a slot's odd stamp and then orders the message
// stores after it: an atomic read-modify-write is a full barrier in Go's
// implementation on every weakly ordered CPU it supports.
func storeOpenStamp(addr *uint64, v uint64) {
	atomic.StoreUint64(addr, v)
	atomic.AddUint32(&openStampFence, 0)
}
