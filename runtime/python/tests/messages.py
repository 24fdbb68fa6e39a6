"""Hand-written message classes of the golden ABI vectors (golden/abi/README.md).

They mirror the Go test types ``Tick`` and ``Book`` (runtime/ring/types_test.go)
in the shape tachyon-gen gives Python records: SIZE, TYPE_ID, FINGERPRINT,
ALIGN, STRUCT, DTYPE, unpack_from and pack_into. The fingerprints are fixed
test constants, not schema hashes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

MASK64 = (1 << 64) - 1


def mix(x: int) -> int:
    """splitmix64's finaliser (the Go test helper ``mix``)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True)
class Tick:
    """The seed message's layout with the golden test's fingerprint."""

    SIZE: ClassVar[int] = 64
    ALIGN: ClassVar[int] = 8
    TYPE_ID: ClassVar[int] = 1
    FINGERPRINT: ClassVar[int] = 0x7AC49E0F1D2B3C4D
    STRUCT: ClassVar[struct.Struct] = struct.Struct("<QQ48s")
    DTYPE: ClassVar[np.dtype[Any]] = np.dtype(
        {"names": ["seq", "timestamp_ns", "payload"], "formats": ["<u8", "<u8", ("u1", (48,))],
         "offsets": [0, 8, 16], "itemsize": 64}
    )

    seq: int
    timestamp_ns: int
    payload: bytes

    @classmethod
    def fill(cls, seq: int) -> Tick:
        """Tick.fill(seq): payload word k = mix(seq*8+k), timestamp = XOR of the words."""
        words = [mix(seq * 8 + k) for k in range(6)]
        ts = 0
        for w in words:
            ts ^= w
        return cls(seq, ts, struct.pack("<6Q", *words))

    def intact(self) -> bool:
        return self == Tick.fill(self.seq)

    @classmethod
    def unpack_from(cls, buffer: Any, offset: int = 0) -> Tick:
        return cls(*cls.STRUCT.unpack_from(buffer, offset))

    def pack_into(self, buffer: Any, offset: int = 0) -> None:
        self.STRUCT.pack_into(buffer, offset, self.seq, self.timestamp_ns, self.payload)


@dataclass(frozen=True)
class Book:
    """An @align(64) message: 64-byte slots aligned to 64."""

    SIZE: ClassVar[int] = 64
    ALIGN: ClassVar[int] = 64
    TYPE_ID: ClassVar[int] = 2
    FINGERPRINT: ClassVar[int] = 0xB00C000000000002
    STRUCT: ClassVar[struct.Struct] = struct.Struct("<Q6QQ")
    DTYPE: ClassVar[np.dtype[Any]] = np.dtype(
        {"names": ["seq", "levels", "check"], "formats": ["<u8", ("<u8", (6,)), "<u8"],
         "offsets": [0, 8, 56], "itemsize": 64}
    )

    seq: int
    levels: tuple[int, ...]
    check: int

    @classmethod
    def unpack_from(cls, buffer: Any, offset: int = 0) -> Book:
        v = cls.STRUCT.unpack_from(buffer, offset)
        return cls(v[0], tuple(v[1:7]), v[7])

    def pack_into(self, buffer: Any, offset: int = 0) -> None:
        self.STRUCT.pack_into(buffer, offset, self.seq, *self.levels, self.check)


def variant(base: type, **overrides: Any) -> type:
    """A subclass of a message class with other identity constants."""
    return type(f"{base.__name__}Variant", (base,), dict(overrides))
