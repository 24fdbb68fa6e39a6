"""Tachyon's shared-memory message ring, for Python.

A pure-Python client (``mmap`` + NumPy + ctypes, no compiled extension) of
the ring ABI v2 (``runtime/ABI.md``), interoperable with the Go reference
runtime and the C++ and Rust clients: a :class:`Publisher` creates a ring of
one generated message type in ``/dev/shm`` (or, sealed, in a memfd served on
a Unix socket); :class:`Subscriber`\\ s attach (or dial) from any language
and receive typed records or zero-copy NumPy batches.

Platform: Linux on x86-64 only. The ABI relies on x86-64 total store order
(aligned 8-byte loads and stores are single-copy atomic and not reordered
with each other), which this client uses instead of explicit acquire/release
fences (ABI §1); it also needs Linux futexes, OFD locks and, for asymmetric
fences, membarrier. Importing it elsewhere raises ImportError.

Quick start::

    from tachyon import Publisher, Subscriber
    from message_tsch import Message        # tachyon-gen generate --py-out

    pub = Publisher.create("ticks", Message, capacity=4096)
    sub = Subscriber.attach("ticks", Message)
    pub.publish(Message(seq=1, timestamp_ns=0, payload=(0,) * 48)); pub.flush()
    print(sub.recv())

Sealed rings (ABI §14)::

    pub = Publisher.create_sealed("ticks", Message, capacity=4096)
    server = pub.serve("/run/user/1000/ticks.sock")   # a daemon thread
    sub = Subscriber.dial("/run/user/1000/ticks.sock", Message)

See :mod:`tachyon.ring` for batches, their lifetime rules and DLPack.
"""

from __future__ import annotations

import platform
import sys

if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64") or sys.maxsize < 2**63 - 1:
    raise ImportError(
        "tachyon: the ring client supports 64-bit Linux on x86-64 only (the ring ABI relies on"
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
from .sealed import Server as SealedServer

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
    "SealedServer",
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
