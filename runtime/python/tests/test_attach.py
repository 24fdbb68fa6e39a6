"""Attach-time validation (ABI §2, §6): identity, hostile headers, files, names."""

from __future__ import annotations

import os
import random
import struct

import pytest
from .support import Book, Message, Tick, variant

import tachyon
from tachyon import (
    CorruptSegment,
    FingerprintMismatch,
    InsecureSegment,
    InvalidName,
    InvalidOptions,
    NotReady,
    Publisher,
    RingExists,
    RingNotFound,
    Subscriber,
    TachyonError,
    UnsupportedVersion,
)
from tachyon import _abi as abi


def write_segment(name: str, data: bytes, mode: int = 0o600) -> None:
    path = f"/dev/shm/{name}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("field", "cls", "got", "want"),
    [
        ("fingerprint", variant(Message, FINGERPRINT=0x1C4C25B53E8A51ED), 0x1C4C25B53E8A51ED, Message.FINGERPRINT),
        ("type id", variant(Message, TYPE_ID=7), 7, 1),
    ],
)
def test_identity_mismatch_names_ring_and_both_values(ring_name: str, field: str, cls: type, got: int, want: int) -> None:
    with Publisher.create(ring_name, cls, capacity=16):
        with pytest.raises(FingerprintMismatch) as ei:
            Subscriber.attach(ring_name, Message)
    e = ei.value
    assert (e.field, e.got, e.want, e.ring) == (field, got, want, ring_name)
    text = str(e)
    assert ring_name in text and field in text
    assert f"{got:#x}" in text and f"{want:#x}" in text


def test_size_and_alignment_mismatch(ring_name: str) -> None:
    with Publisher.create(ring_name, Book, capacity=16):
        # Same fingerprint and id as Book but align 8: refused on alignment.
        loose = variant(Book, ALIGN=8)
        with pytest.raises(FingerprintMismatch) as ei:
            Subscriber.attach(ring_name, loose)
        assert ei.value.field == "message alignment" and "0x40" in str(ei.value) and "0x8" in str(ei.value)
        wrong_size = variant(Book, SIZE=128)
        with pytest.raises(FingerprintMismatch, match="message size 0x40, want 0x80"):
            Subscriber.attach(ring_name, wrong_size)


def test_alignment_from_generated_align() -> None:
    """Generated classes carry ALIGN (the layout model's, @align included);
    a hand-written class without it falls back to its DTYPE's alignment."""
    assert (Message.ALIGN, tachyon.message_align(Message)) == (8, 8)
    assert (Book.ALIGN, tachyon.message_align(Book)) == (64, 64)

    class Bare:
        SIZE = Message.SIZE
        TYPE_ID = Message.TYPE_ID
        FINGERPRINT = Message.FINGERPRINT
        STRUCT = Message.STRUCT
        DTYPE = Message.DTYPE

    assert tachyon.message_align(Bare) == 8  # type: ignore[arg-type]


def test_refused_subscriber_holds_no_entry(ring_name: str) -> None:
    with Publisher.create(ring_name, Tick, capacity=16) as pub:
        for _ in range(3):
            with pytest.raises(FingerprintMismatch):
                Subscriber.attach(ring_name, Message)
        assert pub.subscriber_count() == 0
        assert tachyon.inspect(ring_name).subscribers == ()


def test_not_found_and_exists(ring_name: str) -> None:
    with pytest.raises(RingNotFound, match=ring_name):
        Subscriber.attach(ring_name, Message)
    with Publisher.create(ring_name, Message, capacity=16):
        with pytest.raises(RingExists, match="publisher is alive"):
            Publisher.create(ring_name, Message, capacity=16)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "a..b", "x" * 256, "sp ace", "é", "nul\0", "semi;colon", "/abs"]
)
def test_invalid_names_refused_before_any_syscall(name: str) -> None:
    with pytest.raises(InvalidName):
        Subscriber.attach(name, Message)
    with pytest.raises(InvalidName):
        Publisher.create(name, Message)


def test_valid_names() -> None:
    for name in ["a", "A.b_c-9", "x" * 255, "t-py-.hidden"]:
        tachyon.validate_name(name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 3},
        {"capacity": 1},
        {"capacity": 1 << 31},
        {"max_subscribers": 0},
        {"max_subscribers": 1025},
        {"batch": 9, "capacity": 16},
        {"batch": 0},
        {"mode": 0o666},
        {"mode": 0o4600},
        {"policy": "sometimes"},
        {"liveness_timeout": 0},
    ],
)
def test_invalid_options(ring_name: str, kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidOptions):
        Publisher.create(ring_name, Message, **kwargs)
    assert not os.path.exists(f"/dev/shm/{ring_name}")


def test_mode_exact_under_umask(ring_name: str) -> None:
    old = os.umask(0o077)
    try:
        with Publisher.create(ring_name, Message, capacity=16, mode=0o640):
            assert os.stat(f"/dev/shm/{ring_name}").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def valid_header(ring_name: str) -> bytes:
    with Publisher.create(ring_name, Message, capacity=16, max_subscribers=2, slot_layout="packed") as pub:
        data = bytes(pub._seg.mm[:])
    return data


def test_world_writable_and_symlink_refused(ring_name: str) -> None:
    data = valid_header(ring_name)
    write_segment(ring_name, data, mode=0o666)
    with pytest.raises(InsecureSegment, match="world-writable"):
        Subscriber.attach(ring_name, Message)
    os.unlink(f"/dev/shm/{ring_name}")
    os.symlink("/etc/passwd", f"/dev/shm/{ring_name}")
    with pytest.raises(InsecureSegment, match="symbolic link"):
        Subscriber.attach(ring_name, Message)


def test_truncated_and_empty_segments(ring_name: str) -> None:
    data = valid_header(ring_name)
    path = f"/dev/shm/{ring_name}"
    write_segment(ring_name, b"")
    with pytest.raises(NotReady, match="still empty"):
        Subscriber.attach(ring_name, Message, timeout=0.05)
    for size in (1, 100, 511):
        os.truncate(path, size)
        with pytest.raises(CorruptSegment, match="smaller than the 512-byte header"):
            Subscriber.attach(ring_name, Message)
    with open(path, "r+b") as f:
        f.write(data)
    for size in (512, 1024, len(data) - 1):
        os.truncate(path, size)
        with pytest.raises(CorruptSegment, match="header says"):
            Subscriber.attach(ring_name, Message)
    os.truncate(path, len(data))
    with pytest.raises(TachyonError):  # a complete copy of a closed ring attaches fine, then reports closed
        with Subscriber.attach(ring_name, Message) as sub:
            sub.recv(timeout=0)
    tachyon.remove(ring_name)


def test_not_ready_version_and_garbage(ring_name: str) -> None:
    data = bytearray(valid_header(ring_name))
    path = f"/dev/shm/{ring_name}"
    struct.pack_into("<I", data, abi.OFF_READY, 0)
    write_segment(ring_name, bytes(data))
    with pytest.raises(NotReady, match="not ready"):
        Subscriber.attach(ring_name, Message, timeout=0.05)
    os.unlink(path)
    struct.pack_into("<I", data, abi.OFF_READY, 1)
    struct.pack_into("<I", data, abi.OFF_VERSION, 1)
    write_segment(ring_name, bytes(data))
    with pytest.raises(UnsupportedVersion, match="the segment is ABI version 1, this client speaks version 2"):
        Subscriber.attach(ring_name, Message)
    os.unlink(path)
    write_segment(ring_name, random.Random(1).randbytes(8192))
    with pytest.raises(CorruptSegment, match="magic"):
        Subscriber.attach(ring_name, Message)
    with pytest.raises(CorruptSegment, match="not a ring segment"):
        tachyon.remove(ring_name)


@pytest.mark.parametrize(
    ("off", "fmt", "value", "match"),
    [
        (abi.OFF_READY, "<I", 2, "ready word 2"),
        (abi.OFF_POLICY, "<I", 3, "policy 3"),
        (abi.OFF_MSG_SIZE, "<I", 0, "message size 0"),
        (abi.OFF_MSG_ALIGN, "<I", 3, "alignment 3"),
        (abi.OFF_MSG_ALIGN, "<I", 128, "not a multiple"),
        (abi.OFF_CAPACITY, "<Q", 12, "capacity 12"),
        (abi.OFF_CAPACITY, "<Q", 1 << 40, "capacity"),
        (abi.OFF_MAX_SUBS, "<I", 0, "table size 0"),
        (abi.OFF_BATCH, "<I", 0, "batch 0"),
        (abi.OFF_BATCH, "<I", 9, "batch 9"),
        (abi.OFF_LIVENESS_NS, "<Q", 0, "liveness"),
        (abi.OFF_SLOT_SIZE, "<I", 64, "slot size 64"),
        (abi.OFF_SLOT_MSG_OFFSET, "<I", 0, "slot message offset"),
        (abi.OFF_HEADER_SIZE, "<I", 256, "header size"),
        (abi.OFF_SLEEPERS_OFFSET, "<Q", 0, "sleepers offset"),
        (abi.OFF_TABLE_OFFSET, "<Q", 1 << 50, "table offset"),
        (abi.OFF_SLOTS_OFFSET, "<Q", 4096, "slots offset"),
        (abi.OFF_SEGMENT_SIZE, "<Q", 1 << 62, "segment size"),
        (abi.OFF_FLAGS, "<I", 4, "flags 0x4"),
        (abi.OFF_FLAGS, "<I", 1, "slot size"),  # line slots: the stored geometry no longer matches
        (abi.OFF_EVICT_OFFSET, "<Q", 5, "eviction table offset 5"),
    ],
)
def test_each_header_rule(ring_name: str, off: int, fmt: str, value: int, match: str) -> None:
    data = bytearray(valid_header(ring_name))
    struct.pack_into(fmt, data, off, value)
    write_segment(ring_name, bytes(data))
    with pytest.raises(CorruptSegment, match=match) as ei:
        Subscriber.attach(ring_name, Message)
    assert ring_name in str(ei.value)


def test_fuzz_header_bytes(ring_name: str) -> None:
    """Random corruption of the header: always an error or a clean attach, never a crash."""
    clean = valid_header(ring_name)
    path = f"/dev/shm/{ring_name}"
    rng = random.Random(6)
    outcomes: dict[str, int] = {}
    for _ in range(300):
        data = bytearray(clean)
        for _ in range(rng.choice([1, 1, 2, 4, 16])):
            i = rng.randrange(abi.HEADER_SIZE)
            data[i] = rng.randrange(256) if rng.random() < 0.8 else data[i] ^ (1 << rng.randrange(8))
        cut = len(data) if rng.random() < 0.8 else rng.randrange(len(data) + 1)
        write_segment(ring_name, bytes(data[:cut]))
        try:
            with Subscriber.attach(ring_name, Message, timeout=0.01) as sub:
                try:
                    sub.recv(timeout=0)
                except TachyonError:
                    pass
            kind = "attached"
        except TachyonError as e:
            kind = type(e).__name__
            assert ring_name in str(e)
        outcomes[kind] = outcomes.get(kind, 0) + 1
        os.unlink(path)
    assert outcomes.get("CorruptSegment", 0) > 50, outcomes
