"""The golden ABI vectors (golden/abi/*.hex): build the same rings, byte for byte.

Each test drives this client through the steps golden/abi/README.md gives
for the vector (the Go test TestGoldenABI drives the Go runtime through the
same steps) and compares the whole segment, volatile bytes zeroed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from .support import MASK64, ROOT, Book, Small, Tick

from tachyon import Publisher, Subscriber
from tachyon import _abi as abi
from tachyon import _wait

GOLDEN = ROOT / "golden" / "abi"


def parse_hex(path: Path) -> bytes:
    """Parse ``OFFSET: 16 hex bytes`` lines, checking the offsets run contiguously."""
    out = bytearray()
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        off, _, rest = line.partition(":")
        assert int(off, 16) == len(out), f"{path.name}: offset {off} out of sequence"
        out += bytes.fromhex(rest)
    return bytes(out)


def snapshot(pub: Publisher) -> bytes:  # type: ignore[type-arg]
    """The publisher's whole segment with the volatile bytes zeroed."""
    seg = bytearray(pub._seg.mm[:])
    for off, n in abi.volatile_ranges(pub._seg.geo):
        seg[off : off + n] = bytes(n)
    return bytes(seg)


def first_diff(want: bytes, got: bytes) -> str:
    if len(want) != len(got):
        return f"length {len(got)}, want {len(want)}"
    for i, (a, b) in enumerate(zip(want, got)):
        if a != b:
            return f"first difference at {i:#06x}: got {b:#04x}, want {a:#04x}"
    return ""


def test_tick_block(ring_name: str) -> None:
    want = parse_hex(GOLDEN / "tick_block_v2.hex")
    with Publisher.create(
        ring_name, Tick, capacity=8, max_subscribers=2, batch=2, liveness_timeout=2.0, slot_layout="packed", fences="strong"
    ) as pub:
        with Subscriber.attach(ring_name, Tick) as sub:
            for seq in range(3):
                view = pub.claim()
                Tick.fill(seq).pack_into(view)
                pub.commit()
            pub.flush()
            m = sub.recv(timeout=0)
            assert m == Tick.fill(0) and m.intact()
            sub._flush_stats()
            got = snapshot(pub)
    assert got == want, first_diff(want, got)


def test_book_drop_oldest(ring_name: str) -> None:
    want = parse_hex(GOLDEN / "book_drop_oldest_v2.hex")
    with Publisher.create(
        ring_name, Book, capacity=4, max_subscribers=1, policy="drop_oldest", batch=1, liveness_timeout=1.0,
        slot_layout="line", fences="strong",
    ) as pub:
        with Subscriber.attach(ring_name, Book, max_lag=2) as sub:
            for i in range(6):
                view = pub.claim()
                Book(i, (0,) * 6, ~i & MASK64).pack_into(view)
                pub.commit()
            b = sub.recv(timeout=0)
            assert b is not None and b.seq == 4
            assert (sub.received, sub.dropped) == (1, 4)
            sub._flush_stats()
            got = snapshot(pub)
    assert got == want, first_diff(want, got)


def test_small_line_asym(ring_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asymmetric ring (its mode forced: the vector must not depend on the
    machine) joined by a membarrier-less subscriber; the producer's first
    scan acknowledges it and switches to strong fences."""
    want = parse_hex(GOLDEN / "small_line_asym_v2.hex")
    monkeypatch.setattr(_wait, "membarrier_registered", lambda: True)
    with Publisher.create(ring_name, Small, capacity=4, max_subscribers=1, batch=1, liveness_timeout=1.0) as pub:
        assert pub.stats().slot_layout == "line"  # chosen automatically: 8 + 16 <= 64
        monkeypatch.setattr(_wait, "membarrier_registered", lambda: False)
        with Subscriber.attach(ring_name, Small) as sub:
            assert sub.strong_fences and not pub.strong_fences
            for i in range(3):
                pub.publish(Small(i, i * i))
            assert pub.strong_fences  # its first scan saw the STRONG entry
            for i in range(2):
                m = sub.recv(timeout=0)
                assert m is not None and m.value == i * i
            sub._flush_stats()
            got = snapshot(pub)
    assert got == want, first_diff(want, got)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.hex")), ids=lambda p: p.name)
def test_vector_headers_validate(path: Path) -> None:
    """Each vector's header passes this client's §6 validation, geometry included."""
    raw = parse_hex(path)
    h = abi.decode_header(raw[: abi.HEADER_SIZE])
    assert h.geo.segment_size == len(raw)


@pytest.mark.parametrize(
    ("size", "align", "line"),
    [
        (8, 1, True), (16, 8, True), (56, 8, True), (64, 8, True), (120, 8, True), (128, 8, False),
        (120, 4, True), (124, 4, False), (64, 64, True), (128, 64, False), (1024, 8, False),
    ],
)
def test_automatic_slot_layout_rule(size: int, align: int, line: bool) -> None:
    """Every client's rule (the Go, C++ and Rust tests hold the same table):
    line slots when a stamp and the message fit in two cache lines."""
    assert abi.line_slots_by_default(size, align) is line
