"""The segment file: names, creation, attach-time validation, removal, stats.

This module implements ABI §2 (opening a name, creation, attach), §6
(validation), §10 (stale segments) and the read-only inspection
``tachyon-gen stat`` does in Go. Protocol logic (publishing, receiving)
lives in :mod:`tachyon.publisher` and :mod:`tachyon.subscriber`; the sealed
(memfd) mode in :mod:`tachyon.sealed` reuses :func:`init_segment` and
:func:`map_segment`.
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
    "init_segment",
    "inspect",
    "map_segment",
    "open_segment",
    "remove",
    "remove_stale",
    "unlink_if_own",
    "validate_name",
]

#: Directory of the POSIX shared-memory namespace on Linux.
SHM_DIR = "/dev/shm"
#: A segment that never became ready must be this old before it counts as stale.
STALE_INIT_AGE_S = 5.0

_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# Every open of a ring name: never follow a link, never wait on what is there
# (a FIFO blocks a plain open), never acquire a controlling terminal.
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


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
    ``name`` labels it in errors: the ring name, or a sealed ring's socket.
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


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a Unix socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


def _not_regular(op: str, name: str, mode: int, path: str) -> InsecureSegment | None:
    """The error for anything but a regular file, naming what it is."""
    if stat.S_ISREG(mode):
        return None
    kind = _KINDS.get(stat.S_IFMT(mode), f"a file of type {stat.S_IFMT(mode):#o}")
    return InsecureSegment(f"{op} {name!r}: insecure segment: {path} is {kind}, not a ring segment", ring=name)


def open_regular(op: str, name: str, flags: int) -> int:
    """Open ``/dev/shm/NAME`` without ever waiting on what is there (ABI §2).

    ``lstat`` first (anything but a regular file is refused, named), then an
    open that never follows a link and never blocks, then ``fstat`` again:
    the name may have changed in between. Anyone may create files in
    /dev/shm, so the name may hold anything.
    """
    path = shm_path(name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RingNotFound(f"{op} {name!r}: segment not found: {path}", ring=name) from None
    except OSError as e:
        raise _os_error(op, name, "lstat", e) from None
    if (err := _not_regular(op, name, st.st_mode, path)) is not None:
        raise err
    try:
        fd = os.open(path, flags | _OPEN_FLAGS)
    except FileNotFoundError:
        raise RingNotFound(f"{op} {name!r}: segment not found: {path}", ring=name) from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise InsecureSegment(f"{op} {name!r}: insecure segment: {path} is a symbolic link", ring=name) from None
        raise _os_error(op, name, "open", e) from None
    try:
        st = os.fstat(fd)
        if (err := _not_regular(op, name, st.st_mode, path)) is not None:
            raise err
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_segment(name: str, header: abi.Header, mode: int) -> Segment:
    """Create, size, map and initialise ``/dev/shm/NAME`` (ABI §2 "Creation").

    Returns it with the producer's liveness lock held and ``ready == 1``.
    """
    path = shm_path(name)
    # Always 0600 at first, whatever mode was asked for: nobody else can open
    # the file (and lock a range of it) before our liveness lock is taken.
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise RingExists(f"create {name!r}: segment exists: {path} {_describe_existing(name)}", ring=name) from None
    except OSError as e:
        raise _os_error("create", name, "open", e) from None
    try:
        return init_segment("create", name, fd, header, mode)
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def init_segment(op: str, name: str, fd: int, header: abi.Header, mode: int) -> Segment:
    """Steps 2-7 of creation on a new, empty file (named or memfd); owns ``fd``."""
    mm: mmap.mmap | None = None
    try:
        # The producer's liveness lock first: from now on every peer (and
        # remove) sees a live creator, whatever state the file is in.
        if not _sys.ofd_try_lock(fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN):
            raise TachyonError(f"{op} {name!r}: producer lock is held elsewhere", ring=name)
        os.fchmod(fd, mode)  # exactly: the umask filtered the mode given to open
        size = header.geo.segment_size
        sfs = os.fstatvfs(fd)
        free = sfs.f_bavail * sfs.f_frsize
        if sfs.f_blocks and size > free:
            raise NoSpace(f"{op} {name!r}: no space: needs {size} bytes, {SHM_DIR} has {free} free", ring=name)
        try:
            # Reserve the tmpfs pages now: ENOSPC here, not SIGBUS later.
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise NoSpace(f"{op} {name!r}: no space: fallocate {size} bytes: {e.strerror}", ring=name) from None
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise _os_error(op, name, "fallocate", e) from None
            os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        seg = Segment(name, fd, mm, header, writable=True)
    except BaseException:
        if mm is not None:
            mm.close()
        os.close(fd)
        raise
    _write_header(seg)
    return seg


def _write_header(seg: Segment) -> None:
    # Identity line (ready left 0), then the producer control line, then
    # ready = 1 last (H6: the attacher loads ready, then the identity).
    seg.mm[0 : abi.LINE_SIZE] = bytes(abi.encode_identity(seg.header)[: abi.LINE_SIZE])
    w32, w64 = seg.w32, seg.w64
    w32[abi.OFF_PROD_PID // 4] = os.getpid()
    w64[abi.OFF_PROD_START_TIME // 8] = _sys.process_start_time()
    w64[abi.OFF_PROD_HEARTBEAT // 8] = _sys.mono_ns()
    if not seg.header.asym_fences:
        w32[abi.OFF_PROD_FENCES // 4] = abi.FENCES_STRONG
    w32[abi.OFF_PROD_STATE // 4] = abi.PROD_ACTIVE
    w32[abi.OFF_READY // 4] = abi.READY  # release: a plain store on x86-64 TSO


def open_segment(
    op: str, name: str, *, write: bool, ready_timeout: float, allow_foreign: bool = False
) -> Segment:
    """Open and validate the named segment (ABI §2 "Attach", §6)."""
    fd = open_regular(op, name, os.O_RDWR if write else os.O_RDONLY)
    return map_segment(op, name, fd, write=write, ready_timeout=ready_timeout, allow_foreign=allow_foreign)


def map_segment(
    op: str, name: str, fd: int, *, write: bool, ready_timeout: float, allow_foreign: bool, where: str | None = None
) -> Segment:
    """Validate the segment open on ``fd`` and map exactly ``segment_size`` bytes.

    Owns ``fd`` (closed on error). The file must be a regular file of the
    caller's uid (unless ``allow_foreign``), not world-writable, at least as
    large as its validated header says. ``where`` names the file in errors
    (default ``/dev/shm/NAME``).
    """
    try:
        header = _check_file(op, name, fd, ready_timeout, allow_foreign, where or shm_path(name))
        size = header.geo.segment_size
        # Size from fstat, taken again after validation: the mapping must
        # lie inside the file.
        st = os.fstat(fd)
        if st.st_size < size:
            raise CorruptSegment(
                f"{op} {name!r}: corrupt segment: file is {st.st_size} bytes, header says {size}", ring=name
            )
        try:
            mm = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if write else mmap.ACCESS_READ)
        except OSError as e:
            raise TachyonError(f"{op} {name!r}: mmap {size} bytes: {e.strerror or e}", ring=name) from None
    except BaseException:
        os.close(fd)
        raise
    return Segment(name, fd, mm, header, writable=write)


def _check_file(op: str, name: str, fd: int, ready_timeout: float, allow_foreign: bool, where: str) -> abi.Header:
    st = os.fstat(fd)
    if (err := _not_regular(op, name, st.st_mode, where)) is not None:
        raise err
    if not allow_foreign and st.st_uid != os.geteuid():
        raise InsecureSegment(f"{op} {name!r}: insecure segment: owner uid {st.st_uid}, want {os.geteuid()}", ring=name)
    if st.st_mode & 0o002:
        raise InsecureSegment(
            f"{op} {name!r}: insecure segment: mode {st.st_mode & 0o777:#o} is world-writable", ring=name
        )
    return _read_header(op, name, fd, ready_timeout)


def _read_header(op: str, name: str, fd: int, ready_timeout: float) -> abi.Header:
    """Wait (bounded) for ``ready`` and decode a private copy of the header.

    Read with ``pread`` (a truncated file yields a short read, never
    SIGBUS): ``ready`` alone until it is 1, then the whole header, so the
    copy's identity is loaded after ``ready`` (H6, §2 attach step 3).
    """
    deadline = time.monotonic() + ready_timeout
    st = os.fstat(fd)
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
        return abi.decode_header(raw)
    except abi.HeaderError as e:
        if e.kind == "version":
            raise UnsupportedVersion(f"{op} {name!r}: unsupported ABI version: {e.detail}", ring=name) from None
        if e.kind == "not_ready":
            raise NotReady(f"{op} {name!r}: {e.detail}", ring=name) from None
        raise CorruptSegment(f"{op} {name!r}: corrupt segment: {e.detail}", ring=name) from None


def unlink_if_own(name: str, fd: int) -> None:
    """Unlink ``/dev/shm/NAME`` only if it still names the file open on ``fd``.

    Someone may have removed it and another ring may have the name now: that
    one is not ours to delete (ABI §2 "Close").
    """
    path = shm_path(name)
    try:
        own, cur = os.fstat(fd), os.lstat(path)
    except OSError:
        return
    if (own.st_dev, own.st_ino) != (cur.st_dev, cur.st_ino):
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove(name: str) -> None:
    """Delete a ring segment that no live publisher holds (ABI §10).

    The documented clean-up after a crashed owner. Takes no lock, so nothing
    another process holds can keep a dead ring from being removed. Raises
    RingInUse for a live or initialising ring, CorruptSegment (and leaves
    it) for a file that is not a ring, InsecureSegment for anything but a
    regular file, RingNotFound if there is none. A dead ring is removed even
    if its mode is unsafe.
    """
    validate_name(name)
    fd = open_regular("remove", name, os.O_RDONLY)
    try:
        # The producer's liveness lock alone says whether the ring is in use:
        # its creator takes it before anything else.
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
                f"remove {name!r}: corrupt segment: magic {magic:#018x}, not a ring segment; not removed", ring=name
            )
        try:
            os.unlink(shm_path(name))
        except FileNotFoundError:
            pass
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
            remove(entry)
        except (RingInUse, RingNotFound, CorruptSegment, InsecureSegment, InvalidName):
            continue
        removed.append(entry)
    return removed


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    """One non-free subscriber entry, as :func:`inspect` read it."""

    index: int
    state: str  # "joining", "active", "evicted" (by the producer), "dead" (its owner is gone) or "invalid"
    pid: int
    alive: bool  # its liveness lock is held (a write lock)
    strong_fences: bool  # a membarrier-less subscriber on an asymmetric ring
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
    slot_size: int
    slot_layout: str  # "packed" or "line"
    fences: str  # "strong" or "asymmetric": the ring's mode
    capacity: int
    policy: abi.Policy
    batch: int
    max_subscribers: int
    segment_size: int
    producer_state: str  # "none", "active" or "closed"
    producer_pid: int
    producer_alive: bool  # its liveness lock is held (a reader's lock does not count)
    producer_strong_fences: bool  # its hot side fences (a strong ring, or a membarrier-less subscriber joined)
    published: int  # the tail
    dropped_newest: int
    subscribers: tuple[SubscriberStats, ...]

    @property
    def active_subscribers(self) -> int:
        """How many entries are active (registered, alive, not evicted)."""
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


_PROD_STATES = {abi.PROD_NONE: "none", abi.PROD_ACTIVE: "active", abi.PROD_CLOSED: "closed"}


def inspect(name: str) -> RingStats:
    """Read the named ring's header and tables without registering.

    Works for any message type; validates the header like attach; returns
    an error, never a crash, for a missing, empty, truncated or corrupt
    segment, or a name that holds anything but a regular file. Nothing is
    mapped: the tables are read with ``pread``, so a segment truncated
    meanwhile gives short reads, not SIGBUS.
    """
    validate_name(name)
    fd = open_regular("inspect", name, os.O_RDONLY)
    try:
        header = _check_file("inspect", name, fd, 0.0, True, shm_path(name))
        raw = os.pread(fd, header.geo.slots_offset, 0)
        if len(raw) < header.geo.slots_offset:
            raise CorruptSegment(
                f"inspect {name!r}: corrupt segment: file is {len(raw)} bytes, header says {header.geo.segment_size}",
                ring=name,
            )
        return stats_of(name, fd, header, raw)
    finally:
        os.close(fd)


def stats_of(name: str, fd: int, header: abi.Header, raw: bytes | bytearray | memoryview) -> RingStats:
    """Decode a copy of a segment's header and tables (``raw``, at least up to
    the slots); ``fd`` answers the liveness probes. Every live field is an
    untrusted number, never used as a bound."""
    g, h = header.geo, header
    w32 = np.frombuffer(raw, dtype="<u4", count=g.slots_offset // 4)
    w64 = np.frombuffer(raw, dtype="<u8", count=g.slots_offset // 8)
    subs = []
    for i in range(g.max_subs):
        e = g.entry_offset(i)
        state = int(w32.item((e + abi.ENT_STATE) // 4))
        if state == abi.ENT_FREE:
            continue
        alive = _sys.ofd_held(fd, e, abi.ENTRY_SIZE)
        generation = int(w64.item((e + abi.ENT_GENERATION) // 8))
        evicted = int(w64.item(g.evict_word(i) // 8)) == generation
        if state not in (abi.ENT_JOINING, abi.ENT_ACTIVE):
            shown = "invalid"
        elif evicted and alive:
            shown = "evicted"
        elif not alive:
            shown = "dead"
        else:
            shown = "joining" if state == abi.ENT_JOINING else "active"
        subs.append(
            SubscriberStats(
                index=i,
                state=shown,
                pid=int(w32.item((e + abi.ENT_PID) // 4)),
                alive=alive,
                strong_fences=bool(int(w32.item((e + abi.ENT_FLAGS) // 4)) & abi.ENT_FLAG_STRONG),
                generation=generation,
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
        name=name,
        fingerprint=h.fingerprint,
        type_id=h.type_id,
        message_size=g.msg_size,
        message_align=g.msg_align,
        slot_size=g.slot_size,
        slot_layout="line" if g.line_slots else "packed",
        fences="asymmetric" if h.asym_fences else "strong",
        capacity=g.capacity,
        policy=h.policy,
        batch=h.batch,
        max_subscribers=g.max_subs,
        segment_size=g.segment_size,
        producer_state=_PROD_STATES.get(prod_state, f"state({prod_state})"),
        producer_pid=int(w32.item(abi.OFF_PROD_PID // 4)),
        producer_alive=_sys.ofd_held(fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN),
        producer_strong_fences=int(w32.item(abi.OFF_PROD_FENCES // 4)) == abi.FENCES_STRONG,
        published=int(w64.item(abi.OFF_TAIL // 8)),
        dropped_newest=int(w64.item(abi.OFF_DROPPED_NEWEST // 8)),
        subscribers=tuple(subs),
    )
