//go:build linux

package ring

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations. The segment is shared between processes, so the
// FUTEX_PRIVATE_FLAG is never set.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexWait sleeps while *addr == val, at most d. It reports whether the
// sleep ended by timeout (the watchdog fired).
func futexWait(addr *uint32, val uint32, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	ts := unix.NsecToTimespec(int64(d))
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp,
		uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	return errno == unix.ETIMEDOUT
}

// futexWake wakes at most n waiters on addr.
func futexWake(addr *uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(n), 0, 0, 0)
}

// osYield gives the CPU to another runnable thread (sched_yield).
func osYield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

var (
	monoOnce     sync.Once
	monoBaseNs   uint64
	monoBaseTime time.Time
)

// monoNow returns CLOCK_MONOTONIC in nanoseconds, the clock of every
// heartbeat in the segment (system-wide, so comparable across processes).
// It reads the vDSO-backed Go clock rather than making a syscall.
func monoNow() uint64 {
	monoOnce.Do(func() {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		monoBaseTime = time.Now()
		monoBaseNs = uint64(ts.Nano())
	})
	return monoBaseNs + uint64(time.Since(monoBaseTime))
}

var (
	startOnce sync.Once
	startTime uint64
)

func processID() int { return os.Getpid() }

// processStartTime is field 22 of /proc/self/stat: the process start time in
// clock ticks since boot. With the pid it identifies a process even after
// the pid is reused; it is recorded for diagnostics (liveness itself is the
// kernel-dropped lock, see ABI.md "Liveness").
func processStartTime() uint64 {
	startOnce.Do(func() { startTime = pidStartTime(os.Getpid()) })
	return startTime
}

// pidStartTime returns a process's start time, 0 if unknown.
func pidStartTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces and parentheses: fields
	// are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// membarrier(2) commands (linux/membarrier.h).
const (
	membarrierQuery                           = 0
	membarrierGlobalExpedited                 = 1 << 1
	membarrierRegisterGlobalExpedited         = 1 << 2
	sysMembarrier                     uintptr = unix.SYS_MEMBARRIER
)

var (
	membarrierOnce sync.Once
	membarrierOK   bool
)

// fencesEnv lets an operator force strong fences without a code change:
// TACHYON_FENCES=strong makes this process create strong rings and join
// asymmetric ones as a membarrier-less participant (ABI.md §8.6).
const fencesEnv = "TACHYON_FENCES"

// membarrierRegistered registers this process (once) for
// MEMBARRIER_CMD_GLOBAL_EXPEDITED, so that peers' global expedited barriers
// reach its threads, and reports whether it can take part in asymmetric
// fences: registered, and able to issue the barrier itself.
func membarrierRegistered() bool {
	membarrierOnce.Do(func() {
		if os.Getenv(fencesEnv) == "strong" {
			return
		}
		q, _, errno := unix.Syscall(sysMembarrier, membarrierQuery, 0, 0)
		if errno != 0 || q&(membarrierGlobalExpedited|membarrierRegisterGlobalExpedited) !=
			membarrierGlobalExpedited|membarrierRegisterGlobalExpedited {
			return
		}
		_, _, errno = unix.Syscall(sysMembarrier, membarrierRegisterGlobalExpedited, 0, 0)
		membarrierOK = errno == 0
	})
	return membarrierOK
}

// heavyBarrier is the parking side of an asymmetric fence: a full barrier
// on every running thread of every registered process, so that the light
// (fence-free) side's earlier stores are visible and its later loads see
// ours (ABI.md §8.6). It is only called after membarrierRegistered
// returned true.
func heavyBarrier() {
	unix.Syscall(sysMembarrier, membarrierGlobalExpedited, 0, 0)
}
