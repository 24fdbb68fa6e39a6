//go:build !linux

package ring

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

// ShmDir is the directory of the POSIX shared-memory namespace on Linux;
// other platforms have no segments.
const ShmDir = ""

func futexWait(addr *uint32, val uint32, d time.Duration) bool {
	time.Sleep(min(d, 50*time.Microsecond))
	return false
}

func futexWake(addr *uint32, n int) {}

func osYield() { runtime.Gosched() }

var monoBase = time.Now()

func monoNow() uint64 { return uint64(time.Since(monoBase)) }

func processID() int { return os.Getpid() }

func processStartTime() uint64 { return 0 }

func createSegment(name string, hdr *header, mode os.FileMode) (*shm, error) {
	return nil, fmt.Errorf("create %q: %w: shared-memory rings need Linux", name, ErrUnsupported)
}

func openSegment(op, name string, write bool, readyTimeout time.Duration, allowForeign bool) (*shm, error) {
	return nil, fmt.Errorf("%s %q: %w: shared-memory rings need Linux", op, name, ErrUnsupported)
}

func unlinkSegment(name string) error { return nil }

func unlinkOwned(name string, h host) error { return nil }

// Remove deletes a stale ring segment (Linux only).
func Remove(name string) error {
	return fmt.Errorf("remove %q: %w", name, ErrUnsupported)
}

// RemoveStale removes stale ring segments by prefix (Linux only).
func RemoveStale(prefix string) ([]string, error) { return nil, ErrUnsupported }

func membarrierRegistered() bool { return false }

func heavyBarrier() {}
