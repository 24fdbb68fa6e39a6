"""What a Publisher and a Subscriber share: one handle on a mapped segment."""

from __future__ import annotations

import math
from types import TracebackType
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from . import _abi as abi
from . import _sys
from ._abi import Policy
from ._segment import RingStats, Segment, stats_of
from .errors import HandleClosed, InvalidOptions

__all__ = ["Handle", "seconds"]

_H = TypeVar("_H", bound="Handle")


def seconds(value: float | None, op: str, name: str) -> float | None:
    """A timeout in seconds: None, or a number >= 0."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise InvalidOptions(f"{op} {name!r}: invalid options: timeout {value!r}, want seconds >= 0 or None", ring=name)
    return float(value)


class Handle:
    """State shared by Publisher and Subscriber: the segment and its words."""

    _seg: Segment
    _closed: bool

    def __init__(self, seg: Segment) -> None:
        self._seg = seg
        self._closed = False
        g = seg.geo
        self._name = seg.name
        self._mm = seg.mm
        self._w64 = seg.w64
        self._w32 = seg.w32
        self._cap = g.capacity
        self._mask = g.capacity - 1
        self._slot_size = g.slot_size
        self._msg_off = g.slot_msg_offset
        self._msg_size = g.msg_size
        self._slots_off = g.slots_offset
        self._slot_words = g.slot_size // 8
        self._stamp0 = g.slots_offset // 8
        self._i_tail = abi.OFF_TAIL // 8
        self._i_epoch = abi.OFF_REG_EPOCH // 8
        self._i_notify = abi.OFF_NOTIFY // 4
        self._notify_addr = seg.base + abi.OFF_NOTIFY
        # The ring's fence mode (§8.6), from the validated header.
        self._asym = seg.header.asym_fences
        # Every slot's stamp, as a strided u64 view (vectorised loads/stores).
        self._stamps: npt.NDArray[np.uint64] = np.ndarray(
            (g.capacity,), dtype="<u8", buffer=seg.mm, offset=g.slots_offset, strides=(g.slot_size,)
        )

    @property
    def name(self) -> str:
        """The ring's name."""
        return self._name

    @property
    def capacity(self) -> int:
        """The ring's slot count."""
        return self._cap

    @property
    def policy(self) -> Policy:
        """The producer's policy, from the header."""
        return self._seg.header.policy

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def stats(self) -> RingStats:
        """A snapshot of the ring's header and tables (like :func:`tachyon.inspect`)."""
        self._check_open("stats")
        seg = self._seg
        return stats_of(seg.name, seg.fd, seg.header, seg.mm[: seg.geo.slots_offset])

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _liveness_range(self) -> tuple[int, int] | None:
        """The byte range of the liveness lock this handle holds (ABI §9), if any."""
        raise NotImplementedError

    def __del__(self) -> None:
        # Abandoned without close(): drop the liveness lock and the fd, as a
        # crash would — subscribers then see a dead publisher, the producer
        # reclaims a dead subscriber's entry. A publisher's name stays.
        if getattr(self, "_closed", True) is False:
            self._closed = True
            try:
                if (held := self._liveness_range()) is not None:
                    _sys.ofd_unlock(self._seg.fd, *held)
                self._seg.close()
            except Exception:  # noqa: BLE001 - nothing sensible to do in a finaliser
                pass

    def _check_open(self, op: str) -> None:
        if self._closed:
            raise HandleClosed(f"{op} {self._name!r}: handle is closed", ring=self._name)

    def _stamp_i(self, index: int) -> int:
        return self._stamp0 + (index & self._mask) * self._slot_words

