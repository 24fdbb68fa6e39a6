"""Zero-copy batches: borrowed slots of a subscriber, viewed in place (ABI §8.5 step 4).

See :mod:`tachyon.ring` for the lifetime rules a batch enforces.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from .errors import HandleClosed, Overwritten, ViewStillReferenced

if TYPE_CHECKING:
    from .subscriber import Subscriber

__all__ = ["Batch"]

R = TypeVar("R")


class Batch(Generic[R]):
    """Contiguous borrowed slots of a subscriber, viewed in place.

    ``.array`` is a read-only NumPy structured view of the slots in shared
    memory (see the module docstring for dtype, lifetime and lossy rules);
    ``batch[field]`` is one field. Release it with :meth:`release` or
    ``with``; an empty batch (a receive that timed out) is falsy.
    """

    __slots__ = ("_sub", "_start", "_n", "_pos", "_root", "_baseline", "_released", "_reported")

    def __init__(self, sub: Subscriber[R], start: int, n: int, pos: int) -> None:
        self._sub = sub
        self._start = start
        self._n = n
        self._pos = pos
        self._released = n == 0
        self._reported = False
        self._root: npt.NDArray[np.void] | None = None
        if n:
            root = np.frombuffer(
                sub._seg.view, dtype=sub._slot_dtype, count=n, offset=sub._slots_off + pos * sub._slot_size
            )
            root.flags.writeable = False
            self._root = root
            del root
        self._baseline = self._refs()

    def _refs(self) -> int:
        # Every NumPy view (and DLPack export) of the batch holds a reference
        # to _root; measured the same way here and at creation.
        return sys.getrefcount(self._root)

    def _has_views(self) -> bool:
        return self._root is not None and self._refs() > self._baseline

    @property
    def start(self) -> int:
        """Ring index of the first message."""
        return self._start

    @property
    def released(self) -> bool:
        """Whether the batch was released."""
        return self._released

    @property
    def array(self) -> npt.NDArray[np.void]:
        """The zero-copy structured view (read-only; itemsize = slot stride)."""
        if self._root is None:
            if self._n == 0:
                return np.empty(0, dtype=self._sub._slot_dtype)
            raise HandleClosed(f"batch of ring {self._sub.name!r} was released", ring=self._sub.name)
        return self._root

    def __getitem__(self, field: str) -> npt.NDArray[Any]:
        """One field of every message, a strided zero-copy view."""
        return self.array[field]

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[R]:
        """Typed records (copies), validated like :meth:`records`."""
        return iter(self.records())

    def copy(self) -> npt.NDArray[np.void]:
        """An owned, compact copy (the message's ``DTYPE``), validated.

        Raises :class:`Overwritten` if any slot was overwritten during the
        copy (a lapped lossy reader): a torn copy is never returned.
        """
        sub = self._sub
        out = np.empty(self._n, dtype=sub._message.DTYPE)
        if self._n == 0:
            return out
        if self._root is None:
            raise HandleClosed(f"batch of ring {sub.name!r} was released", ring=sub.name)
        src: npt.NDArray[np.uint8] = np.ndarray(
            (self._n, sub._msg_size),
            dtype=np.uint8,
            buffer=sub._seg.view,
            offset=sub._slots_off + self._pos * sub._slot_size + sub._msg_off,
            strides=(sub._slot_size, 1),
        )
        out.view(np.uint8).reshape(self._n, sub._msg_size)[...] = src
        del src
        if not sub._intact(self._start, self._pos, self._n):
            self._reported = True
            raise Overwritten(
                f"receive {sub.name!r}: batch of {self._n} messages from index {self._start}"
                " was overwritten while it was copied; discarded and counted as dropped",
                ring=sub.name,
                count=self._n,
            )
        return out

    def records(self) -> list[R]:
        """Typed records (copies), validated like :meth:`copy`."""
        raw = self.copy()
        data = raw.tobytes()
        size = self._sub._msg_size
        unpack = self._sub._message.unpack_from
        return [unpack(data, i * size) for i in range(self._n)]

    def release(self) -> None:
        """End the borrow: the subscriber's head moves past the batch.

        Raises :class:`ViewStillReferenced` (and keeps the batch borrowed)
        while NumPy views of it are alive, and :class:`Overwritten` if a
        lapped reader's slots were overwritten while borrowed (the batch
        was counted as dropped: discard what was read from it).
        """
        if self._released:
            return
        if self._has_views():
            extra = self._refs() - self._baseline
            raise ViewStillReferenced(
                f"release {self._sub.name!r}: the batch of {self._n} messages from index {self._start}"
                f" still has {extra} live NumPy view(s) of its slots (fields, slices, DLPack"
                " tensors, or a variable holding batch.array); delete them or keep .copy()s"
                " and release again. The ring does not advance past this batch until then.",
                ring=self._sub.name,
            )
        self._sub._settle(self)

    def __enter__(self) -> Batch[R]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.release()
            return
        # An exception is propagating: release if possible, never mask it.
        try:
            self.release()
        except (ViewStillReferenced, Overwritten):
            pass

    def __repr__(self) -> str:
        state = "released" if self._released else "borrowed"
        return f"<Batch {self._sub.name!r} start={self._start} n={self._n} {state}>"

