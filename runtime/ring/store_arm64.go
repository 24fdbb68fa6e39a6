//go:build !race

package ring

import "sync/atomic"

// storeRelease stores v at addr with release semantics (STLR).
func storeRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

// storeOpenStamp stores a slot's odd stamp: a release store followed by a
// store-store barrier, so the message bytes written after it are ordered
// after it.
//
//go:noescape
func storeOpenStamp(addr *uint64, v uint64)
