//go:build !amd64

package ring

import "sync/atomic"

var fenceWord uint64

// loadFence orders the plain loads of a message copy before the atomic
// stamp re-check on weakly ordered CPUs: an atomic read-modify-write is a
// full barrier in Go's implementation (arm64 and every other weakly
// ordered CPU Go supports; ABI.md "Platform").
func loadFence() { atomic.AddUint64(&fenceWord, 0) }
