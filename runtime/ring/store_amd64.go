//go:build !race

package ring

// storeRelease stores v at addr with release semantics and no fence: a
// plain MOV, which x86-64 (TSO) never reorders with older loads or stores,
// and which the Go compiler cannot move or drop because it is an assembly
// call. sync/atomic's StoreUint64 is an XCHG, a full fence that waits for
// every pending store to drain — the slot stamps need only release order
// (ABI.md §8: only the handshakes H1–H6 need StoreLoad).
//
//go:noescape
func storeRelease(addr *uint64, v uint64)

// storeOpenStamp stores a slot's odd stamp. On x86-64 (TSO) stores are
// never reordered with later stores, so the release store suffices: the
// message bytes written after it become visible after it.
func storeOpenStamp(addr *uint64, v uint64) { storeRelease(addr, v) }
