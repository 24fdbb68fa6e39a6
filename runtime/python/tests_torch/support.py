"""What tachyon.torch's tests share: probes of what torch does, and messages to try.

``Tape`` (golden/python/book_tsch.py) nests structs, arrays of structs, a 2-D
f32 array and [8]char; ``np_field`` is NumPy's own view of a dotted field, the
oracle the tensors are checked against; ``fill_random`` fills every field.

``Mappings(ring).hold(t)`` says whether a tensor lies in this process's
mappings of a ring, read from /proc/self/maps: then it views the ring's
shared memory.

``with count_ops() as ops: ...`` records each aten operator called inside
(``ops.calls``) and the ones that write a copy of their input into new or
other memory (``ops.copies``). Creating a tensor over existing memory
(``from_dlpack``, ``from_numpy``) is not an operator; views (``as_strided``,
``view``, slicing) are operators that copy nothing. Used by the tests and
by runtime/python/bench_torch.py.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tachyon.torch import field_names
from tests.support import GOLDEN_PY

sys.path.insert(0, str(GOLDEN_PY))  # book_tsch imports common_tsch absolutely from there
Tape = importlib.import_module("book_tsch").Tape
sys.path.remove(str(GOLDEN_PY))

# NumPy's dtype -> the torch dtype of the same kind and size (the oracle's own table).
NP_TO_TORCH = {
    np.dtype(np.bool_): torch.bool, np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8,
    np.dtype(np.uint16): torch.uint16, np.dtype(np.int16): torch.int16, np.dtype(np.uint32): torch.uint32,
    np.dtype(np.int32): torch.int32, np.dtype(np.uint64): torch.uint64, np.dtype(np.int64): torch.int64,
    np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
}


def np_field(arr: np.ndarray, dotted: str) -> np.ndarray:  # type: ignore[type-arg]
    """NumPy's view of a dotted field: arr["book"]["bids"]["price"] -> shape (n, 5)."""
    return functools.reduce(lambda a, f: a[f], dotted.split("."), arr)


def fill_random(arr: np.ndarray, rng: np.random.Generator) -> None:  # type: ignore[type-arg]
    """Random values in every leaf of a writable structured array."""
    for name in field_names(arr.dtype):
        view = np_field(arr, name)
        if view.dtype.kind == "S":
            view[...] = rng.integers(0, 256, size=view.shape + (view.dtype.itemsize,), dtype=np.uint8).view(view.dtype)[..., 0]
        elif view.dtype.kind == "b":
            view[...] = rng.integers(0, 2, size=view.shape).astype(bool)
        elif view.dtype.kind == "f":
            view[...] = rng.standard_normal(view.shape)
        else:
            info = np.iinfo(view.dtype)
            view[...] = rng.integers(info.min, info.max, size=view.shape, dtype=view.dtype, endpoint=True)


class Mappings:
    """This process's mappings of a ring (a publisher and a subscriber in one process map it twice)."""

    def __init__(self, ring: str) -> None:
        self.spans = []
        for line in Path("/proc/self/maps").read_text().splitlines():
            if line.endswith(f"/dev/shm/{ring}"):
                lo, hi = line.split()[0].split("-")
                self.spans.append((int(lo, 16), int(hi, 16)))
        assert self.spans, f"ring {ring} is not mapped"

    def hold(self, t: torch.Tensor) -> bool:
        """Whether all of a (non-empty) tensor's elements lie in one mapping of the ring."""
        first = t.data_ptr()
        last = first + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) * t.element_size()
        return any(lo <= first and last < hi for lo, hi in self.spans)


# Operators that may copy tensor data (.to(dtype), .clone(), .contiguous(), copy_):
# one counts as a copy unless it returned its own input's memory (a no-op .to()).
# Under inference_mode .to(dtype) reaches the mode as aten.to, else as aten._to_copy.
COPY_OPS = frozenset(
    {"to", "_to_copy", "copy_", "clone", "contiguous", "_copy_from", "_copy_from_and_resize", "lift_fresh_copy"}
)


def _storage(t: Any) -> int | None:
    return int(t.untyped_storage().data_ptr()) if isinstance(t, torch.Tensor) else None


@dataclass
class Ops:
    calls: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)


class _Counter(TorchDispatchMode):
    def __init__(self, ops: Ops) -> None:
        super().__init__()
        self.ops = ops

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        name = str(func)  # e.g. "aten._to_copy.default"
        self.ops.calls.append(name)
        run: Callable[..., Any] = func
        out = run(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in COPY_OPS:
            inputs = {_storage(a) for a in args} - {None}
            if func.overloadpacket.__name__ == "copy_" or _storage(out) not in inputs:
                self.ops.copies.append(name)
        return out


@contextmanager
def count_ops() -> Iterator[Ops]:
    ops = Ops()
    with _Counter(ops):
        yield ops
