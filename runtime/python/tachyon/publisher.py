"""The producer: a ring's single writer and the segment's owner (ABI §8.1-§8.3, §9)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from . import _abi as abi
from . import _sys, _wait, sealed
from ._abi import Policy
from ._handle import Handle, seconds
from ._message import MessageType, Record, message_align, type_name
from ._segment import Segment, create_segment, unlink_if_own, validate_name
from .errors import InvalidOptions, RingFull, RingTimeout, TachyonError, ViewStillReferenced

__all__ = ["DEFAULT_BATCH", "DEFAULT_CAPACITY", "DEFAULT_LIVENESS_S", "DEFAULT_MAX_SUBSCRIBERS", "Publisher"]

#: Default slot count of :meth:`Publisher.create`.
DEFAULT_CAPACITY = 4096
#: Default subscriber table size.
DEFAULT_MAX_SUBSCRIBERS = 8
#: Default publication batch K (clamped to capacity/2).
DEFAULT_BATCH = 64
#: Default time a Block producer waits on a live, stalled subscriber.
DEFAULT_LIVENESS_S = 2.0

_M = abi.U64_MASK
_UNBOUNDED = 1 << 64  # a limit no index reaches

P = TypeVar("P", bound=Record)

SlotLayout = Literal["auto", "packed", "line"]
Fences = Literal["auto", "strong", "asymmetric"]


class Publisher(Handle, Generic[P]):
    """The single producer of a ring, and the segment's owner.

    Create one with :meth:`create` (a named ring in /dev/shm) or
    :meth:`create_sealed` (an anonymous, size-sealed memfd handed to
    subscribers by :meth:`serve`). ``close()`` (or leaving ``with``)
    publishes what is pending, marks the ring closed (subscribers drain it,
    then get :class:`PublisherClosed`) and unlinks the name. Not safe for
    concurrent use (:meth:`serve`'s thread only hands out the descriptor).
    """

    def __init__(
        self,
        seg: Segment,
        message: MessageType[P],
        timeout: float | None,
        liveness_s: float,
        spin: int,
        offer: sealed.Offer | None = None,
    ) -> None:
        super().__init__(seg)
        self._message = message
        self._policy = seg.header.policy
        self._batch = seg.header.batch
        self._timeout = timeout
        self._liveness_s = liveness_s
        self._spin = spin
        self._offer = offer
        self._servers: list[sealed.Server] = []
        g = seg.geo
        self._max_subs = g.max_subs
        self._table_off = g.table_offset
        self._evict0 = g.evict_offset // 8
        self._i_dropped_newest = abi.OFF_DROPPED_NEWEST // 8
        self._i_sleeping = abi.OFF_PROD_SLEEPING // 4
        self._i_wait_entry = abi.OFF_WAIT_ENTRY // 4
        self._i_wait_head = abi.OFF_WAIT_HEAD // 8
        self._i_heartbeat = abi.OFF_PROD_HEARTBEAT // 8
        self._i_state = abi.OFF_PROD_STATE // 4
        self._i_scan_epoch = abi.OFF_SCAN_EPOCH // 8
        self._i_fences = abi.OFF_PROD_FENCES // 4
        self._i_table_high = abi.OFF_TABLE_HIGH // 4
        # The sleeper flags below table_high, as one bytes comparison; the
        # bound follows table_high as registrants raise it.
        self._high = 0
        self._sleepers_lo = self._sleepers_hi = g.sleepers_offset
        self._no_sleepers = b""
        self._dtype = message.DTYPE
        # Every slot's message bytes, as (capacity, words) — u64 words when
        # the size allows, for fast vectorised copies.
        word = 8 if self._msg_size % 8 == 0 else 1
        self._word = word
        self._msgs: npt.NDArray[Any] = np.ndarray(
            (self._cap, self._msg_size // word),
            dtype=f"<u{word}",
            buffer=seg.mm,
            offset=self._slots_off + self._msg_off,
            strides=(self._slot_size, word),
        )
        self._evens: npt.NDArray[np.uint64] = np.arange(0, 2 * min(self._cap, self._batch), 2, dtype=np.uint64)
        # strong: this producer's hot side fences — on a strong ring, and on
        # an asymmetric one for good once a membarrier-less subscriber joined
        # (ABI §8.6).
        self._strong = not self._asym
        self._cursor = 0  # next index to write
        self._published = 0  # last tail stored
        self._claim: memoryview | None = None
        # DropOldest never waits: it rescans only when the table changes.
        self._limit = _UNBOUNDED if self._policy == Policy.DROP_OLDEST else 0
        self._epoch = 0
        self._dropped = 0
        self._commits = 0
        self.watchdog_fires = 0
        """Producer futex sleeps that ended by the watchdog (diagnostics)."""
        self.evictions = 0
        """Subscribers this producer reclaimed or evicted (diagnostics)."""

    @classmethod
    def create(
        cls,
        name: str,
        message: MessageType[P],
        *,
        capacity: int = DEFAULT_CAPACITY,
        policy: Policy | str = Policy.BLOCK,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        batch: int | None = None,
        mode: int = 0o600,
        timeout: float | None = None,
        liveness_timeout: float = DEFAULT_LIVENESS_S,
        slot_layout: SlotLayout = "auto",
        fences: Fences = "auto",
        spin: int = _wait.DEFAULT_SPIN,
    ) -> Publisher[P]:
        """Create the named ring for ``message`` and return its publisher.

        ``capacity`` is the slot count (a power of two); ``policy`` is
        ``"block"``, ``"drop_newest"`` or ``"drop_oldest"``; ``batch`` is K,
        the tail is published every K commits, on flush and whenever a
        subscriber sleeps (default 64, at most capacity/2); ``timeout``
        bounds one Block wait (None: as long as the blocking subscriber is
        alive and progressing); ``liveness_timeout`` is how long a live
        subscriber may make no progress before a Block producer evicts it;
        ``mode`` is applied with fchmod (world-writable modes are refused).
        ``slot_layout`` is ``"line"`` (every slot on its own cache lines),
        ``"packed"`` or ``"auto"`` (line when a stamp and the message fit in
        two 64-byte lines); ``fences`` is ``"asymmetric"`` (no locked
        instruction on the publish and receive paths; membarrier on the rare
        parking and registering side), ``"strong"`` or ``"auto"``
        (asymmetric where this process can register for membarrier and
        ``TACHYON_FENCES`` is not ``strong``). An existing segment of that
        name is an error (:class:`RingExists`).
        """
        validate_name(name)
        header, timeout, liveness = _new_header(
            "create", name, message, capacity, policy, max_subscribers, batch, mode, timeout, liveness_timeout,
            slot_layout, fences,
        )  # fmt: skip
        seg = create_segment(name, header, mode)
        return cls(seg, message, timeout, liveness, max(0, spin))

    @classmethod
    def create_sealed(
        cls,
        name: str,
        message: MessageType[P],
        *,
        capacity: int = DEFAULT_CAPACITY,
        policy: Policy | str = Policy.BLOCK,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        batch: int | None = None,
        mode: int = 0o600,
        timeout: float | None = None,
        liveness_timeout: float = DEFAULT_LIVENESS_S,
        slot_layout: SlotLayout = "auto",
        fences: Fences = "auto",
        spin: int = _wait.DEFAULT_SPIN,
    ) -> Publisher[P]:
        """Create a ring in an anonymous, size-sealed memfd (ABI §14).

        Nothing appears in /dev/shm; ``name`` labels the ring in errors and
        in ``/proc/PID/fd`` (``memfd:tachyon:NAME``). Nobody can shrink or
        grow the segment (``ftruncate`` fails with EPERM), so no reader can
        be killed by SIGBUS. Subscribers get it through :meth:`serve` and
        :meth:`Subscriber.dial <tachyon.Subscriber.dial>`. Options as for
        :meth:`create`.
        """
        validate_name(name)
        header, timeout, liveness = _new_header(
            "create sealed", name, message, capacity, policy, max_subscribers, batch, mode, timeout,
            liveness_timeout, slot_layout, fences,
        )  # fmt: skip
        seg, offer = sealed.create_segment(name, header, mode)
        return cls(seg, message, timeout, liveness, max(0, spin), offer)

    def serve(self, where: str | socket.socket, *, backlog: int = 16) -> sealed.Server:
        """Hand this sealed ring to subscribers on a Unix stream socket (ABI §14).

        ``where`` is a filesystem path to bind (it must not exist) or a bound
        ``AF_UNIX`` stream socket. A daemon thread accepts connections and
        answers each subscriber's handshake: a matching message identity gets
        the segment's descriptor (``SCM_RIGHTS``), any other is refused with
        both values. The returned server is a context manager; closing it,
        or closing the publisher, stops it and unlinks the path it bound.
        """
        self._check_open("serve")
        if self._offer is None:
            raise InvalidOptions(
                f"serve {self._name!r}: invalid options: not a sealed ring (use Publisher.create_sealed)",
                ring=self._name,
            )
        server = sealed.Server(self._offer, where, backlog)
        self._servers.append(server)
        return server

    # -- properties ---------------------------------------------------------

    @property
    def published(self) -> int:
        """How many messages have been committed."""
        return self._cursor

    @property
    def dropped(self) -> int:
        """How many messages ``drop_newest`` refused."""
        return self._dropped

    @property
    def batch(self) -> int:
        """The publication batch K."""
        return self._batch

    @property
    def message(self) -> MessageType[P]:
        """The message class of the ring."""
        return self._message

    @property
    def sealed(self) -> bool:
        """Whether the ring lives in a sealed memfd (:meth:`create_sealed`)."""
        return self._offer is not None

    @property
    def strong_fences(self) -> bool:
        """Whether the publish path fences: a strong ring, or an asymmetric one
        that a membarrier-less subscriber joined (ABI §8.6)."""
        return self._strong

    # -- publishing ---------------------------------------------------------

    def claim(self) -> memoryview:
        """Reserve the next slot and return its message bytes for filling in place.

        The writable memoryview (exactly ``SIZE`` bytes) is valid until
        :meth:`commit`, which releases it: using it afterwards raises
        ValueError. Fill it with ``record.pack_into(view)`` or a NumPy view
        (``np.frombuffer(view, Message.DTYPE)``) that you drop before
        committing. A second claim before commit returns the same slot. On a
        full ring it waits (``block``; :class:`RingTimeout` after the
        timeout) or raises :class:`RingFull` (``drop_newest``).
        """
        self._check_open("claim")
        if self._claim is not None:
            return self._claim
        w = self._cursor
        if w >= self._limit and not self._make_room(w):
            raise RingFull(f"claim {self._name!r}: ring full: message refused (drop_newest)", ring=self._name)
        # Seqlock open: stamp = 2w+1, then the message bytes (x86-64 TSO
        # keeps the stores in order).
        self._w64[self._stamp_i(w)] = (2 * w + 1) & _M
        off = self._slots_off + (w & self._mask) * self._slot_size + self._msg_off
        self._claim = self._seg.view[off : off + self._msg_size]
        return self._claim

    def commit(self) -> None:
        """Publish the claimed slot (visible to subscribers per the batch K)."""
        self._check_open("commit")
        claim = self._claim
        if claim is None:
            raise TachyonError(f"commit {self._name!r}: no claimed slot", ring=self._name)
        try:
            claim.release()
        except BufferError:
            raise ViewStillReferenced(
                f"commit {self._name!r}: the claimed slot's memoryview is still exported;"
                " release what was made from it, then commit again",
                ring=self._name,
            ) from None
        self._claim = None
        self._seal(self._cursor)

    def publish(self, record: P) -> bool:
        """Copy ``record`` into the next slot and commit it.

        Returns False when a ``drop_newest`` ring refused it (counted in
        :attr:`dropped`); True otherwise.
        """
        self._check_open("publish")
        self._no_claim("publish")
        w = self._cursor
        if w >= self._limit and not self._make_room(w):
            return False
        self._w64[self._stamp_i(w)] = (2 * w + 1) & _M
        record.pack_into(self._mm, self._slots_off + (w & self._mask) * self._slot_size + self._msg_off)
        self._seal(w)
        return True

    def publish_bytes(self, data: bytes | bytearray | memoryview) -> bool:
        """Publish a message given as its ``SIZE`` wire bytes (see :meth:`publish`)."""
        self._check_open("publish")
        self._no_claim("publish")
        if len(data) != self._msg_size:
            raise ValueError(f"publish {self._name!r}: {len(data)} bytes, want {self._msg_size}")
        w = self._cursor
        if w >= self._limit and not self._make_room(w):
            return False
        self._w64[self._stamp_i(w)] = (2 * w + 1) & _M
        off = self._slots_off + (w & self._mask) * self._slot_size + self._msg_off
        self._mm[off : off + self._msg_size] = data
        self._seal(w)
        return True

    def publish_array(self, records: npt.NDArray[Any]) -> int:
        """Publish every record of a NumPy array of the message's ``DTYPE``.

        Many slots are written per step (stamps odd, message bytes, stamps
        even, each a vectorised store) with one tail store per batch K, so
        this is the fast path for bulk publishing. Returns how many were
        published: all of them, except those a ``drop_newest`` ring refused
        (each counted in :attr:`dropped`).
        """
        self._check_open("publish_array")
        self._no_claim("publish_array")
        arr = np.asarray(records)
        if arr.dtype != self._dtype:
            raise TypeError(
                f"publish_array {self._name!r}: dtype {arr.dtype}, want"
                f" {type_name(self._message)}.DTYPE {self._dtype}"
            )
        arr = np.ascontiguousarray(arr.reshape(-1))
        n = arr.shape[0]
        if n == 0:
            return 0
        src = arr.view(f"<u{self._word}").reshape(n, self._msg_size // self._word)
        stamps, msgs, mask, cap, batch = self._stamps, self._msgs, self._mask, self._cap, self._batch
        evens = self._evens
        done = 0
        i = 0
        while i < n:
            w = self._cursor
            if w >= self._limit and not self._make_room(w):
                i += 1  # refused by drop_newest, and counted
                continue
            pos = w & mask
            # Never more than K messages between two registry epoch checks.
            k = min(n - i, self._limit - w, batch - ((w - self._published) & _M), cap - pos)
            twice = evens[:k] + np.uint64((2 * w) & _M)  # u64: wraps like the ABI's arithmetic
            stamps[pos : pos + k] = twice + np.uint64(1)  # seqlock open, every slot
            msgs[pos : pos + k] = src[i : i + k]  # the messages
            stamps[pos : pos + k] = twice + np.uint64(2)  # committed
            before = self._commits
            self._commits += k
            self._cursor = (w + k) & _M
            i += k
            done += k
            self._after_commit()
            if before >> 16 != self._commits >> 16:
                self._w64[self._i_heartbeat] = _sys.mono_ns()
        return done

    def flush(self) -> None:
        """Make every committed message visible to subscribers now."""
        self._check_open("flush")
        self._publish()

    def wait_subscribers(self, n: int = 1, timeout: float | None = None) -> int:
        """Wait until at least ``n`` subscribers are registered; return the count.

        Every message published after it returns reaches each subscriber it
        counted (ABI §8.4 "Registered"). Raises :class:`RingTimeout` after
        ``timeout`` seconds (None: forever).
        """
        self._check_open("wait_subscribers")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            active = self.subscriber_count()
            if active >= n:
                return active
            if deadline is not None and time.monotonic() >= deadline:
                raise RingTimeout(
                    f"wait_subscribers {self._name!r}: {active} of {n} subscribers registered after {timeout}s",
                    ring=self._name,
                )
            time.sleep(0.001)

    def subscriber_count(self) -> int:
        """How many subscribers are registered: active, alive and not evicted.

        It scans the table first, which acknowledges a membarrier-less
        registrant waiting for the producer (ABI §8.4 step 4).
        """
        self._check_open("subscriber_count")
        self._scan(self._cursor)
        w32, w64, fd = self._w32, self._w64, self._seg.fd
        n = 0
        for i in range(self._table_high()):
            e = self._table_off + abi.ENTRY_SIZE * i
            if w32.item((e + abi.ENT_STATE) // 4) != abi.ENT_ACTIVE:
                continue
            if w64.item(self._evict0 + i) == w64.item((e + abi.ENT_GENERATION) // 8):
                continue
            if _sys.ofd_held(fd, e, abi.ENTRY_SIZE):
                n += 1
        return n

    def close(self) -> None:
        """Flush, mark the ring closed, wake every sleeper, unlink the name.

        Subscribers drain what was published, then get PublisherClosed. A
        pending claim is abandoned (never published). A sealed ring's
        servers stop handing it out.
        """
        if self._closed:
            return
        if self._claim is not None:
            try:
                self._claim.release()
            except BufferError:
                pass
            self._claim = None
        self._publish()
        # H4: closed is stored after the final tail, then the eventcount
        # advances: a subscriber that sees closed reloads the tail.
        self._w32[self._i_state] = abi.PROD_CLOSED
        self._wake_subscribers()
        self._closed = True
        for server in self._servers:
            server.close()
        if self._offer is not None:
            self._offer.close()
        else:
            unlink_if_own(self._name, self._seg.fd)
        _sys.ofd_unlock(self._seg.fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)
        del self._stamps, self._msgs
        self._seg.close()

    def _liveness_range(self) -> tuple[int, int] | None:
        return abi.PROD_LOCK_START, abi.PROD_LOCK_LEN

    def __del__(self) -> None:
        # Abandoned without close(): stop handing the segment out, too.
        if getattr(self, "_closed", True) is False:
            for server in getattr(self, "_servers", ()):
                server.close()
            if (offer := getattr(self, "_offer", None)) is not None:
                offer.close()
        super().__del__()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"published={self._cursor}"
        kind = " sealed" if self._offer is not None else ""
        return (
            f"<Publisher {self._name!r}{kind} {type_name(self._message)} capacity={self._cap}"
            f" {self._policy.spelling} {state}>"
        )

    # -- protocol internals (ABI §8.1-§8.3, §9) -----------------------------

    def _no_claim(self, op: str) -> None:
        if self._claim is not None:
            raise TachyonError(f"{op} {self._name!r}: a claimed slot is not committed yet", ring=self._name)

    def _seal(self, w: int) -> None:
        # Seqlock close: stamp = 2w+2 after the message bytes.
        self._w64[self._stamp_i(w)] = (2 * w + 2) & _M
        self._cursor = (w + 1) & _M
        self._after_commit()
        self._commits += 1
        if self._commits & 0xFFFF == 0:
            self._w64[self._i_heartbeat] = _sys.mono_ns()

    def _after_commit(self) -> None:
        """§8.1 step 4: publish a full batch; otherwise hold back unless someone sleeps."""
        if (self._cursor - self._published) & _M >= self._batch:
            self._publish()
            return
        # Held back. H1 with a parking subscriber, which stores its sleeper
        # flag and then looks at the stamp just committed: on a strong ring
        # a full fence between that stamp and the flag loads; on an
        # asymmetric one the subscriber's membarrier provides it.
        if self._strong:
            _wait.FENCE_ACQUIRE()
            _wait.FENCE_RELEASE()
        if self._any_sleeper():
            self._publish()

    def _table_high(self) -> int:
        """How many entries were ever registered (the scans' bound, §5.3), at most max_subs."""
        return min(int(self._w32.item(self._i_table_high)), self._max_subs)

    def _any_sleeper(self) -> bool:
        # table_high first (a subscriber raises it before it registers, so
        # before it can park), then one bytes comparison over the flags below
        # it: a flag is 0 or 1, its bytes read after the earlier loads.
        high = self._w32.item(self._i_table_high)
        if high != self._high:
            self._high = int(high)
            n = self._table_high()
            self._sleepers_hi = self._sleepers_lo + 4 * n
            self._no_sleepers = bytes(4 * n)
        return self._mm[self._sleepers_lo : self._sleepers_hi] != self._no_sleepers

    def _wake_subscribers(self) -> None:
        # Advance the notify eventcount (its only writer: a load and a store
        # suffice), then wake every subscriber parked on it.
        i = self._i_notify
        self._w32[i] = (int(self._w32.item(i)) + 1) & 0xFFFFFFFF
        _wait.futex_wake(self._notify_addr, _wait.INT_MAX)

    def _publish(self) -> None:
        c = self._cursor
        if c != self._published:
            # The tail store releases every slot below it, and is the store
            # side of H1 (then the sleeper flags) and H5 (then reg_epoch):
            # fenced on a strong ring, plain on an asymmetric one (whose
            # parking subscribers and registrants issue a membarrier).
            self._w64[self._i_tail] = c
            self._published = c
            if self._strong:
                _wait.FENCE_ACQUIRE()
                _wait.FENCE_RELEASE()
            if self._any_sleeper():
                self._wake_subscribers()
        e = self._w64.item(self._i_epoch)
        if e != self._epoch:
            self._epoch = int(e)
            self._limit = 0  # a registration or detach: rescan before the next claim

    def _make_room(self, w: int) -> bool:
        """Slow path of a claim at ``w >= limit``; False if drop_newest refused."""
        self._scan(w)
        if w < self._limit:
            return True
        # Never wait or reject while holding unpublished messages.
        self._publish()
        self._scan(w)
        if w < self._limit:
            return True
        if self._policy == Policy.DROP_NEWEST:
            self._dropped += 1
            self._w64[self._i_dropped_newest] = self._dropped & _M
            return False
        self._wait(w)
        return True

    def _scan(self, w: int) -> tuple[int, int]:
        """Recompute limit from the table (§8.2); return the bounding entry and its head.

        It also switches to strong fences when a membarrier-less subscriber
        joined, and records the registry epoch it reflects in scan_epoch.
        """
        w32, w64 = self._w32, self._w64
        # The epoch first: the entries loaded below are at least as new as
        # the registrations it counts, which is what scan_epoch promises.
        epoch = int(w64.item(self._i_epoch))
        self._epoch = epoch
        holds_back = self._policy != Policy.DROP_OLDEST
        blocker, min_head, blocker_head = -1, 0, 0
        for i in range(self._table_high()):
            e = self._table_off + abi.ENTRY_SIZE * i
            # state, generation, eviction word, then max_lag and head: the
            # registrant stores head and max_lag before state.
            state = w32.item((e + abi.ENT_STATE) // 4)
            if state != abi.ENT_JOINING and state != abi.ENT_ACTIVE:
                continue
            gen = int(w64.item((e + abi.ENT_GENERATION) // 8))
            if w64.item(self._evict0 + i) == gen:
                continue  # evicted or reclaimed: no longer holds the producer back
            if not self._strong and w32.item((e + abi.ENT_FLAGS) // 4) & abi.ENT_FLAG_STRONG:
                self._strong = True  # for the rest of its life (§8.6)
                w32[self._i_fences] = abi.FENCES_STRONG
            if not holds_back or w64.item((e + abi.ENT_MAX_LAG) // 8) != 0:
                continue  # lossy subscribers never hold the producer back
            h = int(w64.item((e + abi.ENT_HEAD) // 8))
            if h > w:
                # Beyond every committed index: impossible for an honest
                # subscriber. Evict rather than trust it.
                self._evict(i, gen)
                continue
            eff = h if w - h <= self._cap else w - self._cap  # a registration in flight
            if blocker < 0 or eff < min_head:
                blocker, min_head, blocker_head = i, eff, h
        self._limit = _UNBOUNDED if blocker < 0 else min_head + self._cap
        # Acknowledge the registrations this scan saw (after the table
        # loads; a membarrier-less registrant waits for it).
        w64[self._i_scan_epoch] = epoch
        return blocker, blocker_head

    def _evict(self, i: int, gen: int) -> None:
        """Take entry ``i`` of generation ``gen`` out of the backpressure (§9).

        The producer alone writes the eviction table: one store, no lock, no
        cooperation. A parked evictee learns it at once.
        """
        self._w64[self._evict0 + i] = gen
        self.evictions += 1
        self._limit = 0
        self._wake_subscribers()

    def _wait(self, w: int) -> None:
        """Block until slot ``w`` is free (§8.3 "Producer parks").

        It never needs a lock, so nothing another process does with the
        segment's locks can hold it past the liveness timeout (§9).
        """
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        last_blocker, last_head, since = -1, 0, 0.0
        spins = 0
        w32, w64 = self._w32, self._w64
        while True:
            blocker, head = self._scan(w)
            if w < self._limit:
                return
            now = time.monotonic()
            if blocker != last_blocker or head != last_head:
                last_blocker, last_head, since = blocker, head, now
            if deadline is not None and now > deadline:
                raise RingTimeout(
                    f"publish {self._name!r}: timeout after {self._timeout}s waiting for subscriber"
                    f" {blocker} (head {head}, {w - head} messages behind)",
                    ring=self._name,
                )
            # Wake once a quarter of the ring is free, not once per message.
            want = (w + 1 - self._cap + (max(self._cap // 4, 1) - 1)) & _M
            e = self._table_off + abi.ENTRY_SIZE * blocker
            if spins < self._spin:
                # Spin on the blocker's head alone (one load per poll; a
                # rescan costs a table walk), then rescan.
                i_head = (e + abi.ENT_HEAD) // 8
                while spins < self._spin and w64.item(i_head) < want:
                    spins += 1
                    if spins > self._spin - _wait.YIELD_POLLS:
                        os.sched_yield()
                continue
            i_gen = (e + abi.ENT_GENERATION) // 8
            gen = int(w64.item(i_gen))
            if not _sys.ofd_held(self._seg.fd, e, abi.ENTRY_SIZE):
                self._evict(blocker, gen)  # dead: the kernel dropped its lock (reclaim)
                continue
            if now - since > self._liveness_s:
                self._evict(blocker, gen)  # alive but stalled
                continue
            sleep = abi.WATCHDOG_S
            if deadline is not None:
                sleep = min(sleep, deadline - now + 0.001)
            sleep = min(sleep, self._liveness_s - (now - since) + 0.001)
            i_wake = (e + abi.ENT_WAKE) // 4
            w32[self._i_wait_entry] = blocker
            w64[self._i_wait_head] = want
            w32[self._i_sleeping] = 1
            try:
                # H2: prod_sleeping, then (a fence, or on an asymmetric ring a
                # membarrier for the subscribers' fence-free head stores) the
                # entry's wake eventcount, its head, state and generation.
                if self._asym:
                    _wait.heavy_barrier()
                else:
                    _wait.fence()
                ev = w32.item(i_wake)
                if (
                    w64.item((e + abi.ENT_HEAD) // 8) == head
                    and w32.item((e + abi.ENT_STATE) // 4) != abi.ENT_FREE
                    and w64.item(i_gen) == gen
                    and _wait.futex_wait(self._seg.base + e + abi.ENT_WAKE, int(ev), sleep)
                ):
                    self.watchdog_fires += 1
            finally:
                w32[self._i_sleeping] = 0
            w64[self._i_heartbeat] = _sys.mono_ns()


def _new_header(
    op: str,
    name: str,
    message: MessageType[Any],
    capacity: int,
    policy: Policy | str,
    max_subscribers: int,
    batch: int | None,
    mode: int,
    timeout: float | None,
    liveness_timeout: float,
    slot_layout: SlotLayout,
    fences: Fences,
) -> tuple[abi.Header, float | None, float]:
    """Validate a creator's options (each error names its field and value) into a header."""

    def bad(why: str) -> InvalidOptions:
        return InvalidOptions(f"{op} {name!r}: invalid options: {why}", ring=name)

    try:
        pol = Policy.parse(policy)
    except ValueError as e:
        raise bad(str(e)) from None
    for field, value in (("capacity", capacity), ("max subscribers", max_subscribers)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(f"{field} {value!r}: want an int")
    if slot_layout not in ("auto", "packed", "line"):
        raise bad(f"slot layout {slot_layout!r}: want 'auto', 'packed' or 'line'")
    align = message_align(message)
    line = abi.line_slots_by_default(message.SIZE, align) if slot_layout == "auto" else slot_layout == "line"
    try:
        # The geometry first: a bad capacity is reported as itself, not
        # through the batch bound it implies.
        geo = abi.compute_geometry(message.SIZE, align, capacity, max_subscribers, line)
    except ValueError as e:
        raise bad(str(e)) from None
    if batch is None:
        batch = min(DEFAULT_BATCH, capacity // 2)
    if not isinstance(batch, int) or not 1 <= batch <= capacity // 2:
        raise bad(f"batch {batch!r} outside [1, {capacity // 2}]")
    if not isinstance(mode, int) or mode & ~0o777 or mode & 0o002:
        shown = f"{mode:#o}" if isinstance(mode, int) else repr(mode)
        raise bad(f"mode {shown} (permission bits only, not world-writable)")
    timeout = seconds(timeout, op, name)
    if not isinstance(liveness_timeout, (int, float)) or not liveness_timeout > 0:
        raise bad(f"liveness timeout {liveness_timeout!r}: want seconds > 0")
    if fences == "auto":
        asym = _wait.membarrier_registered()
    elif fences == "asymmetric":
        if not _wait.membarrier_registered():
            raise bad(
                "fences 'asymmetric' need membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which this process"
                f" cannot register (kernel, seccomp or {_wait.FENCES_ENV}=strong)"
            )
        asym = True
    elif fences == "strong":
        asym = False
    else:
        raise bad(f"fences {fences!r}: want 'auto', 'strong' or 'asymmetric'")
    header = abi.Header(
        fingerprint=message.FINGERPRINT,
        type_id=message.TYPE_ID,
        policy=pol,
        batch=batch,
        asym_fences=asym,
        liveness_ns=int(liveness_timeout * 1e9),
        created_ns=time.time_ns(),
        geo=geo,
    )
    return header, timeout, float(liveness_timeout)
