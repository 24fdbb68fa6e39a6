"""Errors of the Tachyon ring client.

Every error is a :class:`TachyonError`; callers branch on the subclass.
Messages name the operation and the ring, and the values involved, in the
style of the Go runtime: ``attach 'ticks': fingerprint 0x1c4c25b53e8a51ed,
want 0x1b43e6c9e14a376c``.
"""

from __future__ import annotations

__all__ = [
    "CorruptSegment",
    "Evicted",
    "FingerprintMismatch",
    "HandleClosed",
    "InsecureSegment",
    "InvalidName",
    "InvalidOptions",
    "NoSpace",
    "NotReady",
    "Overwritten",
    "PublisherClosed",
    "PublisherDead",
    "RingExists",
    "RingFull",
    "RingInUse",
    "RingNotFound",
    "RingTimeout",
    "TableFull",
    "TachyonError",
    "UnsupportedVersion",
    "ViewStillReferenced",
]


class TachyonError(Exception):
    """Base class of every error raised by :mod:`tachyon`.

    ``ring`` is the name of the ring involved, when there is one.
    """

    def __init__(self, message: str, *, ring: str | None = None) -> None:
        super().__init__(message)
        self.ring = ring


class InvalidName(TachyonError, ValueError):
    """A ring name that is not a safe segment name (ABI §2)."""


class InvalidOptions(TachyonError, ValueError):
    """Options that cannot describe a ring (capacity, batch, mode, ...)."""


class RingNotFound(TachyonError):
    """No segment of that name exists in /dev/shm."""


class RingExists(TachyonError):
    """A segment of that name already exists (creation never reuses one)."""


class RingInUse(TachyonError):
    """The segment still has a live publisher, or is being created."""


class NotReady(TachyonError):
    """The segment's creator did not finish initialising it in time."""


class CorruptSegment(TachyonError):
    """A segment whose header, size or live indices are invalid."""


class UnsupportedVersion(TachyonError):
    """A segment written for another ABI version."""


class InsecureSegment(TachyonError):
    """A segment that is not a regular file, is foreign-owned or world-writable."""


class NoSpace(TachyonError):
    """The shared-memory filesystem cannot hold the segment."""


class FingerprintMismatch(TachyonError):
    """The ring carries another message type than the one asked for.

    ``field`` is ``"fingerprint"``, ``"type id"``, ``"message size"`` or
    ``"message alignment"``; ``got`` is the ring's value, ``want`` the
    message class's.
    """

    def __init__(self, message: str, *, ring: str, field: str, got: int, want: int) -> None:
        super().__init__(message, ring=ring)
        self.field = field
        self.got = got
        self.want = want


class TableFull(TachyonError):
    """Every subscriber entry of the ring has a live owner."""


class RingTimeout(TachyonError, TimeoutError):
    """A bounded wait (Block publish, registry lock, wait_subscribers) expired."""


class RingFull(TachyonError):
    """A ``drop_newest`` ring had no free slot: the message was refused and counted."""


class PublisherClosed(TachyonError):
    """The publisher closed the ring and every message has been received."""


class PublisherDead(TachyonError):
    """The publisher died without closing; every published message was received."""


class Evicted(TachyonError):
    """The producer evicted this subscriber (stalled past the liveness timeout)."""


class Overwritten(TachyonError):
    """Borrowed slots were overwritten while borrowed (a lapped lossy reader).

    Whatever was read from the batch must be discarded; its ``count``
    messages were counted as dropped.
    """

    def __init__(self, message: str, *, ring: str, count: int) -> None:
        super().__init__(message, ring=ring)
        self.count = count


class ViewStillReferenced(TachyonError, BufferError):
    """A batch cannot be released: NumPy views of its slots are still alive.

    The batch stays borrowed (the head does not move, so nothing is
    overwritten under the views). Delete the views, or keep ``.copy()``s
    instead, and release again.
    """


class HandleClosed(TachyonError, ValueError):
    """An operation on a Publisher or Subscriber that was closed."""
