"""Tachyon's shared-memory message ring, for Python.

A pure-Python client (``mmap`` + NumPy, no compiled extension) of the ring
ABI v1 (``runtime/ABI.md``), interoperable with the Go reference runtime and
the C++ client: a :class:`Publisher` creates a ring of one generated message
type in ``/dev/shm``; :class:`Subscriber`\\ s attach from any language and
receive typed records or zero-copy NumPy batches.

Platform: Linux on x86-64 only. ABI v1 relies on x86-64 total store order
(aligned 8-byte loads and stores are single-copy atomic and not reordered
with each other), which this client uses instead of explicit acquire/release
fences (ABI §1); it also needs Linux futexes and OFD locks. Importing it
elsewhere raises ImportError.

Quick start::

    from tachyon import Publisher, Subscriber
    from message_tsch import Message        # tachyon-gen generate --py-out

    pub = Publisher.create("ticks", Message, capacity=4096)
    sub = Subscriber.attach("ticks", Message)
    pub.publish(Message(seq=1, timestamp_ns=0, payload=(0,) * 48)); pub.flush()
    print(sub.recv())

See :mod:`tachyon.ring` for batches, their lifetime rules and DLPack.
"""

from __future__ import annotations

import platform
import sys

if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64") or sys.maxsize < 2**63 - 1:
    raise ImportError(
        "tachyon: the ring client supports 64-bit Linux on x86-64 only (ring ABI v1 relies on"
        f" x86-64 total store order, Linux futexes and OFD locks); this is {sys.platform}/{platform.machine()}"
    )

from ._abi import ABI_VERSION, Policy
from ._segment import RingStats, SubscriberStats, inspect, remove, remove_stale, validate_name
from .errors import (
    CorruptSegment,
    Evicted,
    FingerprintMismatch,
    HandleClosed,
    InsecureSegment,
    InvalidName,
    InvalidOptions,
    NoSpace,
    NotReady,
    Overwritten,
    PublisherClosed,
    PublisherDead,
    RingExists,
    RingFull,
    RingInUse,
    RingNotFound,
    RingTimeout,
    TableFull,
    TachyonError,
    UnsupportedVersion,
    ViewStillReferenced,
)
from .ring import Batch, MessageType, Publisher, Record, Subscriber, message_align, subscriber_key

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION",
    "Batch",
    "CorruptSegment",
    "Evicted",
    "FingerprintMismatch",
    "HandleClosed",
    "InsecureSegment",
    "InvalidName",
    "InvalidOptions",
    "MessageType",
    "NoSpace",
    "NotReady",
    "Overwritten",
    "Policy",
    "Publisher",
    "PublisherClosed",
    "PublisherDead",
    "Record",
    "RingExists",
    "RingFull",
    "RingInUse",
    "RingNotFound",
    "RingStats",
    "RingTimeout",
    "Subscriber",
    "SubscriberStats",
    "TableFull",
    "TachyonError",
    "UnsupportedVersion",
    "ViewStillReferenced",
    "inspect",
    "message_align",
    "remove",
    "remove_stale",
    "subscriber_key",
    "validate_name",
]
