"""Waiting and fencing: futexes, the two kinds of fence, spin budgets (ABI §8.3, §8.6).

* futex(2) through ``syscall(SYS_futex=202, ...)``, on shared (never
  ``FUTEX_PRIVATE_FLAG``) words: the segment is mapped by other processes.
  Both futex words are eventcounts (§8.3): the waiter loads the count, checks
  its condition, then waits on the loaded value; the waker changes the
  condition, advances the count, then wakes.
* The full fence of the ABI's handshakes (§8, marked ⟂) on a *strong* ring:
  a LOCK-prefixed instruction, which CPython executes when it acquires and
  releases a private ``threading.Lock`` (a compare-exchange / atomic add on
  the lock word, whether glibc semaphores or, on 3.13+, PyMutex).
* The heavy side of an *asymmetric* ring (§8.6):
  ``membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`` through
  ``syscall(SYS_membarrier=324, ...)``, after this process registered once
  with ``MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`` so that peers' barriers
  reach its threads too. ``TACHYON_FENCES=strong`` in the environment makes
  the process act as one that cannot (strong rings, ``STRONG`` entries).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

__all__ = [
    "DEFAULT_SPIN",
    "FENCE_ACQUIRE",
    "FENCE_RELEASE",
    "INT_MAX",
    "YIELD_POLLS",
    "fence",
    "fence_lock",
    "futex_wait",
    "futex_wake",
    "heavy_barrier",
    "membarrier_registered",
]

#: Polls before a waiter parks on a futex; the last YIELD_POLLS yield first.
#: (Go spins 1024 polls of ~30 ns; a Python poll costs ~10x more, so fewer.)
DEFAULT_SPIN = 256
YIELD_POLLS = 64

SYS_FUTEX = 202  # x86-64
FUTEX_WAIT = 0
FUTEX_WAKE = 1
INT_MAX = 0x7FFFFFFF

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [
    ctypes.c_long,  # number
    ctypes.c_void_p,  # uaddr
    ctypes.c_long,  # futex_op
    ctypes.c_long,  # val
    ctypes.c_void_p,  # timeout (relative) or NULL
    ctypes.c_void_p,  # uaddr2
    ctypes.c_long,  # val3
]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def futex_wait(addr: int, expected: int, timeout_s: float) -> bool:
    """Sleep while the u32 at ``addr`` equals ``expected``, at most ``timeout_s``.

    Returns True if the sleep ended by timeout. The GIL is released for the
    duration of the call (ctypes CDLL). A signal interrupts the sleep
    (EINTR), so KeyboardInterrupt is delivered promptly.
    """
    if timeout_s <= 0:
        return False
    ns = int(timeout_s * 1e9)
    ts = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
    r = _syscall(SYS_FUTEX, addr, FUTEX_WAIT, expected & 0xFFFFFFFF, ctypes.addressof(ts), None, 0)
    if r == -1:
        return ctypes.get_errno() == errno.ETIMEDOUT
    return False


def futex_wake(addr: int, n: int) -> None:
    """Wake at most ``n`` waiters sleeping on the u32 at ``addr``."""
    _syscall(SYS_FUTEX, addr, FUTEX_WAKE, n, None, None, 0)


fence_lock = threading.Lock()
"""A private lock whose acquire + release is the fence (never held otherwise)."""


def fence() -> None:
    """A full memory fence (StoreLoad) on x86-64: two LOCK-prefixed instructions."""
    fence_lock.acquire()
    fence_lock.release()


# fence() inlined on the per-message paths: two LOCK-prefixed instructions.
FENCE_ACQUIRE = fence_lock.acquire
FENCE_RELEASE = fence_lock.release

SYS_MEMBARRIER = 324  # x86-64
MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2
#: The environment variable that forces strong fences (ABI §8.6; Go reads it too).
FENCES_ENV = "TACHYON_FENCES"

# A function object of its own, so that its argtypes are not the futex's.
_membarrier = _libc["syscall"]
_membarrier.restype = ctypes.c_long
_membarrier.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_uint, ctypes.c_int]  # number, cmd, flags, cpu_id

_registered: bool | None = None


def membarrier_registered() -> bool:
    """Register this process (once) for global expedited membarriers.

    True when it can take part in asymmetric fences: the kernel offers both
    commands, the registration succeeded, and ``TACHYON_FENCES`` is not
    ``strong``. The answer is cached for the life of the process.
    """
    global _registered
    if _registered is None:
        _registered = os.environ.get(FENCES_ENV) != "strong" and _register()
    return _registered


def _register() -> bool:
    both = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    q = _membarrier(SYS_MEMBARRIER, MEMBARRIER_CMD_QUERY, 0, 0)
    if q < 0 or q & both != both:
        return False
    return bool(_membarrier(SYS_MEMBARRIER, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0)


def heavy_barrier() -> None:
    """The heavy side of an asymmetric fence: a full barrier on every CPU running
    a thread of a registered process (only after membarrier_registered())."""
    _membarrier(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0)
