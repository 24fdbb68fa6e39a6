"""Linux primitives the ring needs, from the standard library and ctypes.

* The registry lock: BSD ``flock`` on the segment's fd (ABI §8.4).
* Liveness locks: OFD byte-range write locks (``F_OFD_SETLK``/``F_OFD_GETLK``),
  owned by the open file description, dropped by the kernel when its last fd
  closes, on exit or SIGKILL (ABI §9).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time

__all__ = [
    "flock_lock",
    "flock_try",
    "flock_unlock",
    "mono_ns",
    "ofd_held",
    "ofd_try_lock",
    "ofd_unlock",
    "process_start_time",
]

# fcntl grew the OFD commands in Python 3.9; the numbers are Linux's.
F_OFD_GETLK: int = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK: int = getattr(fcntl, "F_OFD_SETLK", 37)


def mono_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (system-wide, comparable across processes)."""
    return time.monotonic_ns()


_start_time: int | None = None


def process_start_time(pid: int | None = None) -> int:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks), 0 if unknown."""
    global _start_time
    own = pid is None
    if own and _start_time is not None:
        return _start_time
    try:
        with open(f"/proc/{os.getpid() if pid is None else pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command (field 2) may hold spaces and parentheses: count fields
    # after the last ')'. fields[0] is field 3, so field 22 is fields[19].
    fields = data[data.rfind(b")") + 1 :].split()
    try:
        value = int(fields[19])
    except (IndexError, ValueError):
        value = 0
    if own:
        _start_time = value
    return value


def flock_try(fd: int) -> bool:
    """Take ``flock(LOCK_EX)`` without waiting; False if another holder has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def flock_lock(fd: int, timeout_s: float) -> bool:
    """Take the registry lock, retrying ``LOCK_NB`` for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not flock_try(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0001)
    return True


def flock_unlock(fd: int) -> None:
    """Release the registry lock."""
    fcntl.flock(fd, fcntl.LOCK_UN)


def _flock_struct(kind: int, start: int, length: int) -> bytes:
    # struct flock on x86-64: short l_type, short l_whence, off_t l_start,
    # off_t l_len, pid_t l_pid (0 for OFD locks), padded to 32 bytes.
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)


def ofd_try_lock(fd: int, start: int, length: int) -> bool:
    """Take an OFD write lock on ``[start, start+length)``; False if held elsewhere."""
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK, start, length))
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def ofd_unlock(fd: int, start: int, length: int) -> None:
    """Release this open file description's OFD lock on the range."""
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK, start, length))
    except OSError:
        pass  # closing the fd drops it anyway


def ofd_held(fd: int, start: int, length: int) -> bool:
    """Whether another open file description holds a *write* lock on the range.

    The probe asks about a read lock, which only a write lock conflicts with
    (ABI §9): a read lock, which anyone who can open the segment read-only
    may take, never makes a dead peer look alive. An error counts as held:
    a peer is never declared dead on a guess.
    """
    try:
        out = fcntl.fcntl(fd, F_OFD_GETLK, _flock_struct(fcntl.F_RDLCK, start, length))
    except OSError:
        return True
    kind = struct.unpack_from("h", out)[0]
    return bool(kind != fcntl.F_UNLCK)
