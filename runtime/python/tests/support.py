"""Helpers shared by the ring client's tests.

* ``tachyon`` is imported from the environment, else from runtime/python.
* ``Message`` is the seed message class tachyon-gen generates, loaded from
  golden/python (the generator's checked output).
* ``Tick`` and ``Book`` mirror the Go test types of the golden ABI vectors
  (runtime/ring/types_test.go) in the shape tachyon-gen gives Python records:
  SIZE, TYPE_ID, FINGERPRINT, ALIGN, STRUCT, DTYPE, unpack_from, pack_into.
  ``Small`` is the 16-byte message of the line-slot vector. Their
  fingerprints are fixed test constants, not schema hashes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

HERE = Path(__file__).resolve().parent
PYROOT = HERE.parent
ROOT = PYROOT.parents[1]
GOLDEN_PY = ROOT / "golden" / "python"
PYPEER = ROOT / "examples" / "pipeline" / "pypeer.py"
PREFIX = f"t-py-{os.getpid()}-"
MASK64 = (1 << 64) - 1

try:
    import tachyon  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PYROOT))


def _load_message() -> Any:
    spec = importlib.util.spec_from_file_location("message_tsch", GOLDEN_PY / "message_tsch.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["message_tsch"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.Message


Message = _load_message()


def records(seqs: range) -> np.ndarray:  # type: ignore[type-arg]
    """Seed messages ``seqs`` as a NumPy array, payload per PEERS.md."""
    arr = np.zeros(len(seqs), dtype=Message.DTYPE)
    arr["seq"] = np.arange(seqs.start, seqs.stop, dtype=np.uint64)
    arr["timestamp_ns"] = arr["seq"] * np.uint64(3)
    arr["payload"] = (arr["seq"][:, None] * np.uint64(131) + np.arange(48, dtype=np.uint64) * np.uint64(7)) & np.uint64(
        0xFF
    )
    return arr


def pypeer_argv(gen: Path, *args: str) -> list[str]:
    """The command line of the Python peer."""
    return [sys.executable, str(PYPEER), "--gen-dir", str(gen), *args]


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a peer (or any child) with its stdout and stderr captured."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(p: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    """Wait for a peer; return its one JSON summary line (and check there is one)."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{err}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"{p.args}: want one JSON line, got {out!r}"
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


HELPER_PRELUDE = f"""
import sys, time
sys.path.insert(0, {str(PYROOT)!r}); sys.path.insert(0, {str(GOLDEN_PY)!r})
import numpy as np
import tachyon
from message_tsch import Message
"""


def helper(code: str) -> subprocess.Popen[str]:
    """A Python child running ``code`` (after HELPER_PRELUDE: tachyon, Message, np)."""
    return start([sys.executable, "-c", HELPER_PRELUDE + textwrap.dedent(code)])

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


@dataclass(frozen=True)
class Small:
    """A 16-byte message: one stamp and the message fit one cache line (line slots)."""

    SIZE: ClassVar[int] = 16
    ALIGN: ClassVar[int] = 8
    TYPE_ID: ClassVar[int] = 3
    FINGERPRINT: ClassVar[int] = 0x5A11000000000003
    STRUCT: ClassVar[struct.Struct] = struct.Struct("<QQ")
    DTYPE: ClassVar[np.dtype[Any]] = np.dtype({"names": ["seq", "value"], "formats": ["<u8", "<u8"]})

    seq: int
    value: int

    @classmethod
    def unpack_from(cls, buffer: Any, offset: int = 0) -> Small:
        return cls(*cls.STRUCT.unpack_from(buffer, offset))

    def pack_into(self, buffer: Any, offset: int = 0) -> None:
        self.STRUCT.pack_into(buffer, offset, self.seq, self.value)


def variant(base: type, **overrides: Any) -> type:
    """A subclass of a message class with other identity constants."""
    return type(f"{base.__name__}Variant", (base,), dict(overrides))
