//go:build !amd64 || race

package ring

import "sync/atomic"

// storeRelease stores v at addr with (at least) release semantics. Off
// x86-64, and under the race detector (which must see the store to check
// the protocol), it is sync/atomic's sequentially consistent store.
func storeRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }
