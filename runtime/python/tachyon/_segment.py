"""The segment file: names, creation, attach-time validation, removal, stats.

This module implements ABI §2 (creation and attach), §6 (validation), §10
(stale segments) and the read-only inspection ``tachyon-gen stat`` does in
Go. Protocol logic (publishing, receiving) lives in :mod:`tachyon.ring`.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _abi as abi
from . import _sys
from .errors import (
    CorruptSegment,
    InsecureSegment,
    InvalidName,
    NoSpace,
    NotReady,
    RingExists,
    RingInUse,
    RingNotFound,
    TachyonError,
    UnsupportedVersion,
)

__all__ = [
    "RingStats",
    "Segment",
    "SubscriberStats",
    "create_segment",
    "inspect",
    "open_segment",
    "remove",
    "remove_stale",
    "validate_name",
]

#: Directory of the POSIX shared-memory namespace on Linux.
SHM_DIR = "/dev/shm"
#: A segment that never became ready must be this old before it counts as stale.
STALE_INIT_AGE_S = 5.0

_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_name(name: str) -> None:
    """Raise InvalidName unless ``name`` is 1-255 bytes of ``[A-Za-z0-9._-]``,
    not ``.`` and without ``..`` (ABI §2; Go ``ring.ValidateName``)."""

    def bad(why: str) -> InvalidName:
        return InvalidName(f"ring name {name!r}: invalid name: {why}", ring=name)

    if not isinstance(name, str):
        raise InvalidName(f"ring name {name!r}: invalid name: not a str")
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        raise bad("empty")
    if len(raw) > abi.MAX_NAME_LEN:
        raise bad(f"{len(raw)} bytes, longer than {abi.MAX_NAME_LEN}")
    if b"/" in raw:
        raise bad("contains '/'")
    if raw == b"." or b".." in raw:
        raise bad("contains '..' or is '.'")
    for i, c in enumerate(raw):
        if c not in _NAME_BYTES:
            raise bad(f"byte {c:#04x} at {i}; allowed are letters, digits, '.', '_', '-'")


def shm_path(name: str) -> str:
    """The segment's path: ``/dev/shm/NAME``."""
    return f"{SHM_DIR}/{name}"


class Segment:
    """One handle's mapping of a ring segment: fd, mmap and validated header.

    ``w64``/``w32`` are NumPy views of the whole mapping as little-endian
    u64/u32 words: every *atomic* field is accessed through them with one
    aligned scalar load (``.item(i)``) or store (``[i] = v``), as ABI §1
    prescribes for Python. ``base`` is the mapping's address (futex words).
    """

    def __init__(self, name: str, fd: int, mm: mmap.mmap, header: abi.Header, writable: bool) -> None:
        self.name = name
        self.fd = fd
        self.mm = mm
        self.header = header
        self.geo = header.geo
        self.writable = writable
        self.view: memoryview = memoryview(mm)
        self.w64: npt.NDArray[np.uint64] = np.frombuffer(mm, dtype="<u8")
        self.w32: npt.NDArray[np.uint32] = np.frombuffer(mm, dtype="<u4")
        self.base: int = int(self.w64.ctypes.data)

    def close(self) -> bool:
        """Close the fd and unmap. Returns False if the mapping had to stay
        (NumPy views of it are still alive: it is unmapped when they die)."""
        if self.fd < 0:
            return True
        del self.w64, self.w32
        self.view.release()
        unmapped = True
        try:
            self.mm.close()
        except BufferError:
            unmapped = False  # live views keep it mapped; never unmap under them
        os.close(self.fd)
        self.fd = -1
        return unmapped


def _os_error(op: str, name: str, what: str, e: OSError) -> TachyonError:
    return TachyonError(f"{op} {name!r}: {what} {shm_path(name)}: {e.strerror or e}", ring=name)


def create_segment(name: str, header: abi.Header, mode: int) -> Segment:
    """Create, size, map and initialise a segment (ABI §2 "Creation").

    Returns it with the producer's liveness lock held and ``ready == 1``.
    """
    path = shm_path(name)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise RingExists(f"create {name!r}: segment exists: {path} {_describe_existing(name)}", ring=name) from None
    except OSError as e:
        raise _os_error("create", name, "open", e) from None
    mm: mmap.mmap | None = None
    seg: Segment | None = None
    try:
        os.fchmod(fd, mode)  # the umask filtered the mode given to open
        # Hold the registry lock while initialising: a stale-segment sweep
        # (§10) leaves a segment whose lock is held alone.
        if not _sys.flock_lock(fd, abi.REGISTRY_TIMEOUT_S):
            raise TachyonError(f"create {name!r}: registry lock: timeout", ring=name)
        try:
            size = header.geo.segment_size
            sfs = os.fstatvfs(fd)
            free = sfs.f_bavail * sfs.f_frsize
            if sfs.f_blocks and size > free:
                raise NoSpace(f"create {name!r}: no space: needs {size} bytes, {SHM_DIR} has {free} free", ring=name)
            try:
                # Reserve the tmpfs pages now: ENOSPC here, not SIGBUS later.
                os.posix_fallocate(fd, 0, size)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise NoSpace(f"create {name!r}: no space: fallocate {size} bytes: {e.strerror}", ring=name) from None
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise _os_error("create", name, "fallocate", e) from None
                os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            if not _sys.ofd_try_lock(fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN):
                raise TachyonError(f"create {name!r}: producer lock is held elsewhere", ring=name)
            seg = Segment(name, fd, mm, header, writable=True)
            _init_segment(seg)
        finally:
            _sys.flock_unlock(fd)
    except BaseException:
        if seg is not None:
            seg.close()
        else:
            if mm is not None:
                mm.close()
            os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return seg


def _init_segment(seg: Segment) -> None:
    # Identity line (ready left 0), then the producer control line, then
    # ready = 1 last (H6: the attacher loads ready, then the identity).
    seg.mm[0 : abi.LINE_SIZE] = bytes(abi.encode_identity(seg.header)[: abi.LINE_SIZE])
    w32, w64 = seg.w32, seg.w64
    w32[abi.OFF_PROD_PID // 4] = os.getpid()
    w64[abi.OFF_PROD_START_TIME // 8] = _sys.process_start_time()
    w64[abi.OFF_PROD_HEARTBEAT // 8] = _sys.mono_ns()
    w32[abi.OFF_PROD_STATE // 4] = abi.PROD_ACTIVE
    w32[abi.OFF_READY // 4] = abi.READY  # release: a plain store on x86-64 TSO


def open_segment(
    op: str, name: str, *, write: bool, ready_timeout: float, allow_foreign: bool = False
) -> Segment:
    """Open and validate an existing segment (ABI §2 "Attach", §6).

    The header is read with ``pread`` (a truncated file yields a short read,
    never SIGBUS): first until ``ready == 1``, then once more, so the copy's
    identity is loaded after ``ready`` (H6). Only ``segment_size`` bytes are
    mapped, after ``fstat`` confirms the file holds them.
    """
    path = shm_path(name)
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDWR if write else os.O_RDONLY)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise RingNotFound(f"{op} {name!r}: segment not found: {path}", ring=name) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InsecureSegment(f"{op} {name!r}: insecure segment: {path} is a symbolic link", ring=name) from None
        raise _os_error(op, name, "open", e) from None
    try:
        return _validate_and_map(op, name, fd, write, ready_timeout, allow_foreign)
    except BaseException:
        os.close(fd)
        raise


def _validate_and_map(op: str, name: str, fd: int, write: bool, ready_timeout: float, allow_foreign: bool) -> Segment:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise InsecureSegment(f"{op} {name!r}: insecure segment: not a regular file", ring=name)
    if not allow_foreign and st.st_uid != os.geteuid():
        raise InsecureSegment(f"{op} {name!r}: insecure segment: owner uid {st.st_uid}, want {os.geteuid()}", ring=name)
    if st.st_mode & 0o002:
        raise InsecureSegment(
            f"{op} {name!r}: insecure segment: mode {st.st_mode & 0o777:#o} is world-writable", ring=name
        )
    deadline = time.monotonic() + ready_timeout
    while st.st_size < abi.HEADER_SIZE:
        # A creator sizes the file right after creating it: an empty file is
        # a segment being built (or whose creator died first), not corrupt.
        if st.st_size != 0:
            raise CorruptSegment(
                f"{op} {name!r}: corrupt segment: file is {st.st_size} bytes,"
                f" smaller than the {abi.HEADER_SIZE}-byte header",
                ring=name,
            )
        if time.monotonic() >= deadline:
            raise NotReady(
                f"{op} {name!r}: segment not ready: the file is still empty"
                " (being created, or its creator died first)",
                ring=name,
            )
        time.sleep(0.001)
        st = os.fstat(fd)
    while True:
        word = os.pread(fd, 4, abi.OFF_READY)
        ready = int.from_bytes(word, "little") if len(word) == 4 else -1
        if ready == abi.READY or ready != abi.READY_INIT or time.monotonic() >= deadline:
            raw = os.pread(fd, abi.HEADER_SIZE, 0)
            break
        time.sleep(0.001)
    try:
        header = abi.decode_header(raw)
    except abi.HeaderError as e:
        text = f"{op} {name!r}: {e.detail}"
        if e.kind == "version":
            raise UnsupportedVersion(f"{op} {name!r}: unsupported ABI version: {e.detail}", ring=name) from None
        if e.kind == "not_ready":
            raise NotReady(text, ring=name) from None
        raise CorruptSegment(f"{op} {name!r}: corrupt segment: {e.detail}", ring=name) from None
    # Size from fstat, taken again after validation: the mapping must lie
    # inside the file.
    st = os.fstat(fd)
    size = header.geo.segment_size
    if st.st_size < size:
        raise CorruptSegment(
            f"{op} {name!r}: corrupt segment: file is {st.st_size} bytes, header says {size}", ring=name
        )
    try:
        # ACCESS_READ for inspectors: its buffer is then read-only too.
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if write else mmap.ACCESS_READ)
    except OSError as e:
        raise _os_error(op, name, f"mmap {size} bytes of", e) from None
    return Segment(name, fd, mm, header, writable=write)


def remove(name: str) -> None:
    """Delete a ring segment that no live publisher holds (ABI §10).

    The documented clean-up after a crashed owner. Raises RingInUse for a
    live or initialising ring, CorruptSegment (and leaves it) for a file
    that is not a ring, RingNotFound if there is none.
    """
    validate_name(name)
    path = shm_path(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RingNotFound(f"remove {name!r}: segment not found: {path}", ring=name) from None
    except OSError as e:
        raise _os_error("remove", name, "open", e) from None
    try:
        if not _sys.flock_try(fd):
            raise RingInUse(f"remove {name!r}: segment in use: its registry lock is held", ring=name)
        try:
            if _sys.ofd_held(fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN):
                raise RingInUse(f"remove {name!r}: segment in use: its publisher is alive", ring=name)
            st = os.fstat(fd)
            head = os.pread(fd, 8, 0)
            magic = int.from_bytes(head, "little") if head else 0
            if len(head) == 8 and magic == abi.MAGIC:
                pass
            elif magic == 0:
                age = time.time() - st.st_mtime
                if age < STALE_INIT_AGE_S:
                    raise RingInUse(f"remove {name!r}: segment in use: not initialised yet ({age:.3f}s old)", ring=name)
            else:
                raise CorruptSegment(
                    f"remove {name!r}: corrupt segment: magic {magic:#018x}, not a ring segment; not removed",
                    ring=name,
                )
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            _sys.flock_unlock(fd)
    finally:
        os.close(fd)


def remove_stale(prefix: str) -> list[str]:
    """Remove every stale ring whose name starts with ``prefix``; return their names."""
    removed = []
    for entry in sorted(os.listdir(SHM_DIR)):
        if not entry.startswith(prefix):
            continue
        try:
            validate_name(entry)
            if not stat.S_ISREG(os.lstat(shm_path(entry)).st_mode):
                continue
            remove(entry)
        except (RingInUse, RingNotFound, CorruptSegment, InvalidName, FileNotFoundError):
            continue
        removed.append(entry)
    return removed


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    """One non-free subscriber entry, as :func:`inspect` read it."""

    index: int
    state: str  # "active" or "evicted"
    pid: int
    alive: bool  # its liveness lock is held
    generation: int
    max_lag: int  # 0 = unlimited
    head: int
    received: int
    dropped: int
    join: int
    key: int  # a named subscriber's key (tachyon.subscriber_key), 0 if anonymous


@dataclass(frozen=True, slots=True)
class RingStats:
    """A snapshot of a ring read without registering (Go ``ring.Inspect``)."""

    name: str
    fingerprint: int
    type_id: int
    message_size: int
    message_align: int
    capacity: int
    policy: abi.Policy
    batch: int
    max_subscribers: int
    segment_size: int
    producer_state: str  # "none", "active" or "closed"
    producer_pid: int
    producer_alive: bool
    published: int  # the tail
    dropped_newest: int
    subscribers: tuple[SubscriberStats, ...]

    @property
    def active_subscribers(self) -> int:
        """How many entries are active."""
        return sum(1 for s in self.subscribers if s.state == "active")


def _describe_existing(name: str) -> str:
    try:
        st = inspect(name)
    except TachyonError as e:
        return f"(not a readable ring: {e})"
    who = f"was created by pid {st.producer_pid}"
    if st.producer_alive:
        return who + ", whose publisher is alive: pick another name or stop that publisher"
    return who + ", whose publisher is dead: it is stale; remove it with tachyon.remove() or `tachyon-gen stat --reap`"


_STATES = {abi.ENT_ACTIVE: "active", abi.ENT_EVICTED: "evicted"}
_PROD_STATES = {abi.PROD_NONE: "none", abi.PROD_ACTIVE: "active", abi.PROD_CLOSED: "closed"}


def inspect(name: str) -> RingStats:
    """Read the named ring's header and tables without registering.

    Works for any message type; validates the header like attach; returns
    an error, never a crash, for a missing, empty or corrupt segment.
    """
    validate_name(name)
    seg = open_segment("inspect", name, write=False, ready_timeout=0.0, allow_foreign=True)
    try:
        return stats_of(seg)
    finally:
        seg.close()


def stats_of(seg: Segment) -> RingStats:
    """Every live field loaded once, treated as an untrusted number."""
    g, h, w32, w64 = seg.geo, seg.header, seg.w32, seg.w64
    subs = []
    for i in range(g.max_subs):
        e = g.entry_offset(i)
        state = int(w32.item((e + abi.ENT_STATE) // 4))
        if state == abi.ENT_FREE:
            continue
        subs.append(
            SubscriberStats(
                index=i,
                state=_STATES.get(state, f"state({state})"),
                pid=int(w32.item((e + abi.ENT_PID) // 4)),
                alive=_sys.ofd_held(seg.fd, e, abi.ENTRY_SIZE),
                generation=int(w64.item((e + abi.ENT_GENERATION) // 8)),
                max_lag=int(w64.item((e + abi.ENT_MAX_LAG) // 8)),
                head=int(w64.item((e + abi.ENT_HEAD) // 8)),
                received=int(w64.item((e + abi.ENT_RECEIVED) // 8)),
                dropped=int(w64.item((e + abi.ENT_DROPPED) // 8)),
                join=int(w64.item((e + abi.ENT_JOIN) // 8)),
                key=int(w64.item((e + abi.ENT_KEY) // 8)),
            )
        )
    prod_state = int(w32.item(abi.OFF_PROD_STATE // 4))
    return RingStats(
        name=seg.name,
        fingerprint=h.fingerprint,
        type_id=h.type_id,
        message_size=g.msg_size,
        message_align=g.msg_align,
        capacity=g.capacity,
        policy=h.policy,
        batch=h.batch,
        max_subscribers=g.max_subs,
        segment_size=g.segment_size,
        producer_state=_PROD_STATES.get(prod_state, f"state({prod_state})"),
        producer_pid=int(w32.item(abi.OFF_PROD_PID // 4)),
        producer_alive=_sys.ofd_held(seg.fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN),
        published=int(w64.item(abi.OFF_TAIL // 8)),
        dropped_newest=int(w64.item(abi.OFF_DROPPED_NEWEST // 8)),
        subscribers=tuple(subs),
    )
