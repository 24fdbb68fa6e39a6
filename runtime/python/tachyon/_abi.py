"""Byte-level constants and header codec of ring ABI v2 (runtime/ABI.md).

Everything here is a transcription of the ABI text: offsets (§4-§7), the
derived layout (§3) and the validation rules (§6). The golden vectors under
``golden/abi`` pin the bytes; ``tests/test_golden_abi.py`` checks them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ABI_VERSION",
    "ENTRY_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "Geometry",
    "Header",
    "HeaderError",
    "Policy",
    "compute_geometry",
    "decode_header",
    "encode_identity",
    "line_slots_by_default",
]

#: ASCII ``TACHRING`` read as a little-endian u64 (§4).
MAGIC = 0x474E495248434154
#: The segment layout version this client speaks (§13).
ABI_VERSION = 2

#: Indices and counters are u64: every sum is taken modulo 2**64 (§1).
U64_MASK = (1 << 64) - 1

#: The fixed header: identity, producer hot, producer control, registry lines.
HEADER_SIZE = 512
#: Granularity of independently written regions (two 64-byte lines).
LINE_SIZE = 128
#: Size of one subscriber table entry (§7).
ENTRY_SIZE = 128
#: A cache line: the slot granularity of the line slot layout (§3).
CACHE_LINE = 64

MAX_MESSAGE_SIZE = 1 << 20
MAX_ALIGN = 4096
MAX_CAPACITY = 1 << 30
MAX_SUBSCRIBERS = 1024
MAX_SEGMENT_SIZE = 1 << 40
MAX_NAME_LEN = 255

#: Every futex sleep is bounded by this watchdog (§8.3), in seconds.
WATCHDOG_S = 0.2
#: Bounded wait for the registry lock (§8.4 step 1), in seconds.
REGISTRY_TIMEOUT_S = 1.0
#: Bounded wait for ``ready`` at attach (§2 attach step 4; Go: 1 s).
READY_TIMEOUT_S = 1.0
#: A membarrier-less registrant proceeds once the tail has been still this
#: long (an idle producer, §8.4 step 4) ...
IDLE_PROOF_S = 0.1
#: ... and fails after the tail moved this long without an acknowledgement.
ACK_TIMEOUT_S = 1.0
#: Until the producer fences for it, a membarrier-less subscriber's sleeps
#: are bounded by this (§8.6).
STRONG_PENDING_SLEEP_S = 0.001

# Identity line (0x000-0x07F), immutable after ready (§4).
OFF_MAGIC = 0x00  # u64
OFF_VERSION = 0x08  # u32
OFF_READY = 0x0C  # u32 atomic
OFF_FINGERPRINT = 0x10  # u64
OFF_TYPE_ID = 0x18  # u32
OFF_MSG_SIZE = 0x1C  # u32
OFF_MSG_ALIGN = 0x20  # u32
OFF_SLOT_SIZE = 0x24  # u32
OFF_SLOT_MSG_OFFSET = 0x28  # u32
OFF_POLICY = 0x2C  # u32
OFF_CAPACITY = 0x30  # u64
OFF_MAX_SUBS = 0x38  # u32
OFF_HEADER_SIZE = 0x3C  # u32
OFF_SLEEPERS_OFFSET = 0x40  # u64
OFF_TABLE_OFFSET = 0x48  # u64
OFF_SLOTS_OFFSET = 0x50  # u64
OFF_SEGMENT_SIZE = 0x58  # u64
OFF_LIVENESS_NS = 0x60  # u64
OFF_CREATED_NS = 0x68  # u64, volatile
OFF_BATCH = 0x70  # u32
OFF_FLAGS = 0x74  # u32: FLAG_LINE_SLOTS | FLAG_ASYM_FENCES
OFF_EVICT_OFFSET = 0x78  # u64, derived

#: flags bit 0: every slot starts on a cache line and spans whole lines (§3).
FLAG_LINE_SLOTS = 1 << 0
#: flags bit 1: asymmetric fences, membarrier on the heavy side (§8.6).
FLAG_ASYM_FENCES = 1 << 1
KNOWN_FLAGS = FLAG_LINE_SLOTS | FLAG_ASYM_FENCES

# Producer hot line (0x080-0x0FF), writer: producer (§5.1).
OFF_TAIL = 0x80  # u64 atomic
OFF_DROPPED_NEWEST = 0x88  # u64 atomic
OFF_NOTIFY = 0x90  # u32 atomic: the subscribers' futex word, an eventcount

# Producer control line (0x100-0x17F), writer: producer (§5.2). The same
# range is the producer's liveness lock (§9).
OFF_PROD_STATE = 0x100  # u32 atomic
OFF_PROD_SLEEPING = 0x104  # u32 atomic
OFF_PROD_PID = 0x108  # u32, volatile
OFF_WAIT_ENTRY = 0x10C  # u32 atomic
OFF_PROD_START_TIME = 0x110  # u64, volatile
OFF_PROD_HEARTBEAT = 0x118  # u64 atomic, volatile
OFF_WAIT_HEAD = 0x120  # u64 atomic
OFF_SCAN_EPOCH = 0x128  # u64 atomic: reg_epoch as of the latest table scan
OFF_PROD_FENCES = 0x130  # u32 atomic: FENCES_LIGHT or FENCES_STRONG
PROD_LOCK_START = 0x100
PROD_LOCK_LEN = LINE_SIZE

# Registry line (0x180-0x1FF), writer: registry-lock holder (§5.3).
OFF_REG_EPOCH = 0x180  # u64 atomic
OFF_TABLE_HIGH = 0x188  # u32 atomic: 1 + the highest entry index ever registered (never decreases)

# Subscriber entry fields, relative to the entry (§7).
ENT_HEAD = 0x00  # u64 atomic, owner
ENT_RECEIVED = 0x08  # u64 atomic, owner
ENT_DROPPED = 0x10  # u64 atomic, owner
ENT_HEARTBEAT = 0x18  # u64 atomic, owner, volatile
ENT_STATE = 0x20  # u32 atomic, registry lock
ENT_PID = 0x24  # u32, registry lock, volatile
ENT_GENERATION = 0x28  # u64 atomic, registry lock
ENT_MAX_LAG = 0x30  # u64 atomic, registry lock
ENT_START_TIME = 0x38  # u64, registry lock, volatile
ENT_JOIN = 0x40  # u64, registry lock
ENT_KEY = 0x48  # u64, registry lock: a named subscriber's key, 0 if anonymous
ENT_WAKE = 0x50  # u32 atomic, owner: the parked producer's futex word, an eventcount
ENT_FLAGS = 0x54  # u32, registry lock: ENT_FLAG_STRONG

#: entry_flags bit 0: the owner cannot issue membarrier (§8.6).
ENT_FLAG_STRONG = 1 << 0

# Values of the ready word, the producer state and the entry state.
READY_INIT = 0
READY = 1
PROD_NONE = 0
PROD_ACTIVE = 1
PROD_CLOSED = 2
ENT_FREE = 0
ENT_JOINING = 1  # registering: holds the producer back, not yet counted
ENT_ACTIVE = 2
FENCES_LIGHT = 0
FENCES_STRONG = 1


class Policy(IntEnum):
    """A producer's behaviour on a full ring, stored in the header (§4)."""

    BLOCK = 0
    """Wait (bounded) until every unlimited subscriber has made room."""
    DROP_NEWEST = 1
    """Refuse the new message and count it in ``dropped_newest``."""
    DROP_OLDEST = 2
    """Never wait: overwrite the oldest slot; lapped readers count drops."""

    @property
    def spelling(self) -> str:
        """The ABI.md spelling: ``block``, ``drop_newest`` or ``drop_oldest``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: Policy | str | int) -> Policy:
        """Accept a Policy, its ABI spelling or its number."""
        if isinstance(value, Policy):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(
                    f"policy {value!r}: want 'block', 'drop_newest' or 'drop_oldest'"
                ) from None
        return cls(value)


class HeaderError(Exception):
    """A header that fails §6 validation; ``kind`` says which error to raise."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "corrupt", "version" or "not_ready"
        self.detail = detail


def _round_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def _is_pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


@dataclass(frozen=True, slots=True)
class Geometry:
    """Every offset and size of a segment, derived from five primary values."""

    msg_size: int
    msg_align: int
    line_slots: bool
    slot_msg_offset: int
    slot_size: int
    capacity: int
    max_subs: int
    sleepers_offset: int
    evict_offset: int
    table_offset: int
    slots_offset: int
    segment_size: int

    @property
    def mask(self) -> int:
        """``capacity - 1``: the slot of index ``i`` is ``i & mask``."""
        return self.capacity - 1

    def entry_offset(self, i: int) -> int:
        """Offset of subscriber entry ``i``."""
        return self.table_offset + ENTRY_SIZE * i

    def evict_word(self, i: int) -> int:
        """Offset of entry ``i``'s eviction word (§5.5)."""
        return self.evict_offset + 8 * i

    def slot_offset(self, index: int) -> int:
        """Offset of the slot (its stamp) that holds ring index ``index``."""
        return self.slots_offset + (index & (self.capacity - 1)) * self.slot_size


def line_slots_by_default(msg_size: int, msg_align: int) -> bool:
    """This client's choice of slot layout when the creator does not say (as Go's):
    line slots when a stamp and the message fit in two cache lines, else packed."""
    return max(8, msg_align) + msg_size <= 2 * CACHE_LINE


def compute_geometry(msg_size: int, msg_align: int, capacity: int, max_subs: int, line_slots: bool) -> Geometry:
    """Derive a segment's layout (ABI §3); raise ValueError if out of range."""
    if not 1 <= msg_size <= MAX_MESSAGE_SIZE:
        raise ValueError(f"message size {msg_size} outside [1, {MAX_MESSAGE_SIZE}]")
    if not _is_pow2(msg_align) or msg_align > MAX_ALIGN:
        raise ValueError(f"message alignment {msg_align} is not a power of two <= {MAX_ALIGN}")
    if msg_size % msg_align:
        raise ValueError(f"message size {msg_size} is not a multiple of its alignment {msg_align}")
    if not _is_pow2(capacity) or not 2 <= capacity <= MAX_CAPACITY:
        raise ValueError(f"capacity {capacity} is not a power of two in [2, {MAX_CAPACITY}]")
    if not 1 <= max_subs <= MAX_SUBSCRIBERS:
        raise ValueError(f"subscriber table size {max_subs} outside [1, {MAX_SUBSCRIBERS}]")
    slot_msg_offset = max(8, msg_align)
    slot_align = max(CACHE_LINE, msg_align) if line_slots else slot_msg_offset
    slot_size = _round_up(slot_msg_offset + msg_size, slot_align)
    sleepers_offset = HEADER_SIZE
    evict_offset = sleepers_offset + _round_up(4 * max_subs, LINE_SIZE)
    table_offset = evict_offset + _round_up(8 * max_subs, LINE_SIZE)
    slots_offset = _round_up(table_offset + ENTRY_SIZE * max_subs, max(LINE_SIZE, msg_align))
    segment_size = slots_offset + capacity * slot_size
    if segment_size > MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment of {capacity} slots of {slot_size} bytes exceeds {MAX_SEGMENT_SIZE} bytes"
        )
    return Geometry(
        msg_size=msg_size,
        msg_align=msg_align,
        line_slots=line_slots,
        slot_msg_offset=slot_msg_offset,
        slot_size=slot_size,
        capacity=capacity,
        max_subs=max_subs,
        sleepers_offset=sleepers_offset,
        evict_offset=evict_offset,
        table_offset=table_offset,
        slots_offset=slots_offset,
        segment_size=segment_size,
    )


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded identity line (a private, validated copy)."""

    fingerprint: int
    type_id: int
    policy: Policy
    batch: int
    asym_fences: bool
    liveness_ns: int
    created_ns: int
    geo: Geometry

    @property
    def flags(self) -> int:
        """The identity line's flags word."""
        return (FLAG_LINE_SLOTS if self.geo.line_slots else 0) | (FLAG_ASYM_FENCES if self.asym_fences else 0)


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def encode_identity(h: Header) -> bytearray:
    """The identity line of ``h`` as HEADER_SIZE bytes, ``ready`` left 0."""
    b = bytearray(HEADER_SIZE)
    g = h.geo
    for off, s, v in (
        (OFF_MAGIC, _U64, MAGIC),
        (OFF_VERSION, _U32, ABI_VERSION),
        (OFF_FINGERPRINT, _U64, h.fingerprint),
        (OFF_TYPE_ID, _U32, h.type_id),
        (OFF_MSG_SIZE, _U32, g.msg_size),
        (OFF_MSG_ALIGN, _U32, g.msg_align),
        (OFF_SLOT_SIZE, _U32, g.slot_size),
        (OFF_SLOT_MSG_OFFSET, _U32, g.slot_msg_offset),
        (OFF_POLICY, _U32, int(h.policy)),
        (OFF_CAPACITY, _U64, g.capacity),
        (OFF_MAX_SUBS, _U32, g.max_subs),
        (OFF_HEADER_SIZE, _U32, HEADER_SIZE),
        (OFF_SLEEPERS_OFFSET, _U64, g.sleepers_offset),
        (OFF_TABLE_OFFSET, _U64, g.table_offset),
        (OFF_SLOTS_OFFSET, _U64, g.slots_offset),
        (OFF_SEGMENT_SIZE, _U64, g.segment_size),
        (OFF_LIVENESS_NS, _U64, h.liveness_ns),
        (OFF_CREATED_NS, _U64, h.created_ns),
        (OFF_BATCH, _U32, h.batch),
        (OFF_FLAGS, _U32, h.flags),
        (OFF_EVICT_OFFSET, _U64, g.evict_offset),
    ):
        s.pack_into(b, off, v)
    return b


def decode_header(raw: bytes) -> Header:
    """Validate a private copy of the header (ABI §6) and decode it.

    Every field is read once from ``raw``; stored offsets are never trusted,
    only compared with their recomputation. Raises HeaderError.
    """
    if len(raw) < HEADER_SIZE:
        raise HeaderError("corrupt", f"header is {len(raw)} bytes, want {HEADER_SIZE}")

    def u32(off: int) -> int:
        return int(_U32.unpack_from(raw, off)[0])

    def u64(off: int) -> int:
        return int(_U64.unpack_from(raw, off)[0])

    magic = u64(OFF_MAGIC)
    if magic != MAGIC:
        raise HeaderError("corrupt", f"magic {magic:#018x}, want {MAGIC:#018x}")
    version = u32(OFF_VERSION)
    if version != ABI_VERSION:
        raise HeaderError("version", f"the segment is ABI version {version}, this client speaks version {ABI_VERSION}")
    ready = u32(OFF_READY)
    if ready != READY:
        if ready == READY_INIT:
            raise HeaderError("not_ready", "segment not ready (its creator is still initialising it)")
        raise HeaderError("corrupt", f"ready word {ready}, want {READY}")
    flags = u32(OFF_FLAGS)
    if flags & ~KNOWN_FLAGS:
        raise HeaderError("corrupt", f"flags {flags:#x}, want only bits of {KNOWN_FLAGS:#x}")
    policy = u32(OFF_POLICY)
    if policy > Policy.DROP_OLDEST:
        raise HeaderError("corrupt", f"policy {policy}, want 0, 1 or 2")
    try:
        geo = compute_geometry(
            u32(OFF_MSG_SIZE), u32(OFF_MSG_ALIGN), u64(OFF_CAPACITY), u32(OFF_MAX_SUBS), bool(flags & FLAG_LINE_SLOTS)
        )
    except ValueError as e:
        raise HeaderError("corrupt", str(e)) from None
    batch = u32(OFF_BATCH)
    if not 1 <= batch <= geo.capacity // 2:
        raise HeaderError("corrupt", f"batch {batch} outside [1, {geo.capacity // 2}]")
    liveness_ns = u64(OFF_LIVENESS_NS)
    if liveness_ns == 0:
        raise HeaderError("corrupt", "liveness timeout is 0")
    for name, got, want in (
        ("slot size", u32(OFF_SLOT_SIZE), geo.slot_size),
        ("slot message offset", u32(OFF_SLOT_MSG_OFFSET), geo.slot_msg_offset),
        ("header size", u32(OFF_HEADER_SIZE), HEADER_SIZE),
        ("sleepers offset", u64(OFF_SLEEPERS_OFFSET), geo.sleepers_offset),
        ("eviction table offset", u64(OFF_EVICT_OFFSET), geo.evict_offset),
        ("table offset", u64(OFF_TABLE_OFFSET), geo.table_offset),
        ("slots offset", u64(OFF_SLOTS_OFFSET), geo.slots_offset),
        ("segment size", u64(OFF_SEGMENT_SIZE), geo.segment_size),
    ):
        if got != want:
            raise HeaderError("corrupt", f"{name} {got}, want {want}")
    return Header(
        fingerprint=u64(OFF_FINGERPRINT),
        type_id=u32(OFF_TYPE_ID),
        policy=Policy(policy),
        batch=batch,
        asym_fences=bool(flags & FLAG_ASYM_FENCES),
        liveness_ns=liveness_ns,
        created_ns=u64(OFF_CREATED_NS),
        geo=geo,
    )


def volatile_ranges(geo: Geometry) -> list[tuple[int, int]]:
    """(offset, length) of the bytes golden vectors zero (golden/abi/README.md)."""
    ranges = [(OFF_CREATED_NS, 8), (OFF_PROD_PID, 4), (OFF_PROD_START_TIME, 8), (OFF_PROD_HEARTBEAT, 8)]
    for i in range(geo.max_subs):
        e = geo.entry_offset(i)
        ranges += [(e + ENT_HEARTBEAT, 8), (e + ENT_PID, 4), (e + ENT_START_TIME, 8)]
    return ranges
