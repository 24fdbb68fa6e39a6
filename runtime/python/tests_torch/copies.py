"""Counting the copies torch makes: every aten op dispatched, and which of them copy.

``with count_ops() as ops: ...`` records each aten operator called inside
(``ops.calls``) and the ones that write a copy of their input into new or
other memory (``ops.copies``). Creating a tensor over existing memory
(``from_dlpack``, ``from_numpy``) is not an operator; views (``as_strided``,
``view``, slicing) are operators that copy nothing. Used by the tests and
by runtime/python/bench_torch.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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
