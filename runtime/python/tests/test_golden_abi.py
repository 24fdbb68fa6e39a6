"""The golden ABI vectors (golden/abi/*.hex): build the same rings, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from .support import MASK64, ROOT, Book, Tick

from tachyon import Publisher, Subscriber
from tachyon import _abi as abi

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
    want = parse_hex(GOLDEN / "tick_block_v1.hex")
    with Publisher.create(ring_name, Tick, capacity=8, max_subscribers=2, batch=2, liveness_timeout=2.0) as pub:
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
    want = parse_hex(GOLDEN / "book_drop_oldest_v1.hex")
    with Publisher.create(
        ring_name, Book, capacity=4, max_subscribers=1, policy="drop_oldest", batch=1, liveness_timeout=1.0
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


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.hex")), ids=lambda p: p.name)
def test_vector_headers_validate(path: Path) -> None:
    """Each vector's header passes this client's §6 validation, geometry included."""
    raw = parse_hex(path)
    h = abi.decode_header(raw[: abi.HEADER_SIZE])
    assert h.geo.segment_size == len(raw)
