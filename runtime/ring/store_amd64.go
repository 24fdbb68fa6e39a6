//go:build !race

package ring

import "sync/atomic"

// storeRelease stores v at addr with release semantics and no fence: a
// plain MOV, which x86-64 (TSO) never reorders with older loads or stores.
// sync/atomic's StoreUint64 is an XCHG, a full fence that waits for every
// pending store to drain — the slot stamps and the tail need only release
// order (ABI.md §8: only the handshakes need StoreLoad). The Go compiler
// keeps stores in program order, and the atomic load that follows keeps it
// from dropping the store as dead when a later store to the same word (a
// slot's commit stamp after its open stamp) would otherwise shadow it; the
// load is an L1 hit that nothing waits for. Small enough to inline, unlike
// the assembly function it replaces (whose ABI0 call spilled registers on
// every claim and commit).
func storeRelease(addr *uint64, v uint64) {
	*addr = v
	atomic.LoadUint64(addr)
}

// storeOpenStamp stores a slot's odd stamp. On x86-64 (TSO) stores are
// never reordered with later stores, so the release store suffices: the
// message bytes written after it become visible after it.
func storeOpenStamp(addr *uint64, v uint64) { storeRelease(addr, v) }
