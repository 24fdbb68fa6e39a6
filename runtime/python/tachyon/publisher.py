"""The producer: a ring's single writer and the segment's owner (ABI §8.1-§8.3, §9)."""

from __future__ import annotations

import os
import time
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from . import _abi as abi
from . import _sys, _wait
from ._abi import Policy
from ._handle import Handle, seconds
from ._message import MessageType, Record, message_align, type_name
from ._segment import Segment, create_segment, shm_path, validate_name
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

_UNBOUNDED = 1 << 64  # a limit no index reaches

P = TypeVar("P", bound=Record)


class Publisher(Handle, Generic[P]):
    """The single producer of a ring, and the segment's owner.

    Create one with :meth:`create`; ``close()`` (or leaving ``with``)
    publishes what is pending, marks the ring closed (subscribers drain it,
    then get :class:`PublisherClosed`) and unlinks the name. Not safe for
    concurrent use.
    """

    def __init__(
        self, seg: Segment, message: MessageType[P], timeout: float | None, liveness_s: float, spin: int
    ) -> None:
        super().__init__(seg)
        self._message = message
        self._policy = seg.header.policy
        self._batch = seg.header.batch
        self._timeout = timeout
        self._liveness_s = liveness_s
        self._spin = spin
        self._max_subs = seg.geo.max_subs
        self._table_off = seg.geo.table_offset
        self._i_dropped_newest = abi.OFF_DROPPED_NEWEST // 8
        self._i_sleeping = abi.OFF_PROD_SLEEPING // 4
        self._i_wait_entry = abi.OFF_WAIT_ENTRY // 4
        self._i_wait_head = abi.OFF_WAIT_HEAD // 8
        self._i_heartbeat = abi.OFF_PROD_HEARTBEAT // 8
        self._i_state = abi.OFF_PROD_STATE // 4
        self._sleepers_lo = seg.geo.sleepers_offset
        self._sleepers_hi = seg.geo.sleepers_offset + 4 * seg.geo.max_subs
        self._no_sleepers = bytes(4 * seg.geo.max_subs)
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
        self._cursor = 0  # next index to write
        self._published = 0  # last tail stored
        self._claim: memoryview | None = None
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
        An existing segment of that name is an error (:class:`RingExists`).
        """
        validate_name(name)

        def bad(why: str) -> InvalidOptions:
            return InvalidOptions(f"create {name!r}: invalid options: {why}", ring=name)

        try:
            pol = Policy.parse(policy)
        except ValueError as e:
            raise bad(str(e)) from None
        if batch is None:
            batch = max(1, min(DEFAULT_BATCH, capacity // 2))
        if not 1 <= batch <= capacity // 2:
            raise bad(f"batch {batch} outside [1, {capacity // 2}]")
        if mode & ~0o777 or mode & 0o002:
            raise bad(f"mode {mode:#o} (permission bits only, not world-writable)")
        timeout = seconds(timeout, "create", name)
        if liveness_timeout is None or not liveness_timeout > 0:
            raise bad(f"liveness timeout {liveness_timeout!r}: want seconds > 0")
        try:
            geo = abi.compute_geometry(message.SIZE, message_align(message), capacity, max_subscribers)
        except ValueError as e:
            raise bad(str(e)) from None
        header = abi.Header(
            fingerprint=message.FINGERPRINT,
            type_id=message.TYPE_ID,
            policy=pol,
            batch=batch,
            liveness_ns=int(liveness_timeout * 1e9),
            created_ns=time.time_ns(),
            geo=geo,
        )
        seg = create_segment(name, header, mode)
        return cls(seg, message, timeout, float(liveness_timeout), max(0, spin))

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
        self._w64[self._stamp_i(w)] = 2 * w + 1
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
        self._w64[self._stamp_i(w)] = 2 * w + 1
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
        self._w64[self._stamp_i(w)] = 2 * w + 1
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
            k = min(n - i, self._limit - w, batch - (w - self._published), cap - pos)
            twice = evens[:k] + np.uint64(2 * w)
            stamps[pos : pos + k] = twice + np.uint64(1)  # seqlock open, every slot
            msgs[pos : pos + k] = src[i : i + k]  # the messages
            stamps[pos : pos + k] = twice + np.uint64(2)  # committed
            before = self._commits
            self._commits += k
            self._cursor = w + k
            i += k
            done += k
            if self._cursor - self._published >= batch or self._any_sleeper():
                self._publish()
            if before >> 16 != self._commits >> 16:
                self._w64[self._i_heartbeat] = _sys.mono_ns()
        return done

    def flush(self) -> None:
        """Make every committed message visible to subscribers now."""
        self._check_open("flush")
        self._publish()

    def wait_subscribers(self, n: int = 1, timeout: float | None = None) -> int:
        """Wait until at least ``n`` subscribers are registered; return the count.

        Raises :class:`RingTimeout` after ``timeout`` seconds (None: forever).
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
        """How many subscriber entries are active."""
        w32 = self._w32
        return sum(
            1
            for i in range(self._max_subs)
            if w32.item((self._table_off + abi.ENTRY_SIZE * i + abi.ENT_STATE) // 4) == abi.ENT_ACTIVE
        )

    def close(self) -> None:
        """Flush, mark the ring closed, wake every sleeper, unlink the name.

        Subscribers drain what was published, then get PublisherClosed. A
        pending claim is abandoned (never published).
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
        # H4: closed is stored after the final tail.
        self._w32[self._i_state] = abi.PROD_CLOSED
        _wait.futex_wake(self._tail_addr, _wait.INT_MAX)
        self._closed = True
        try:
            os.unlink(shm_path(self._name))
        except FileNotFoundError:
            pass
        _sys.ofd_unlock(self._seg.fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)
        del self._stamps, self._msgs
        self._seg.close()

    def _liveness_range(self) -> tuple[int, int] | None:
        return abi.PROD_LOCK_START, abi.PROD_LOCK_LEN

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"published={self._cursor}"
        return f"<Publisher {self._name!r} {type_name(self._message)} capacity={self._cap} {self._policy.spelling} {state}>"

    # -- protocol internals (ABI §8.1-§8.3, §9) -----------------------------

    def _no_claim(self, op: str) -> None:
        if self._claim is not None:
            raise TachyonError(f"{op} {self._name!r}: a claimed slot is not committed yet", ring=self._name)

    def _seal(self, w: int) -> None:
        # Seqlock close: stamp = 2w+2 after the message bytes.
        self._w64[self._stamp_i(w)] = 2 * w + 2
        self._cursor = w + 1
        if self._cursor - self._published >= self._batch or self._any_sleeper():
            self._publish()
        self._commits += 1
        if self._commits & 0xFFFF == 0:
            self._w64[self._i_heartbeat] = _sys.mono_ns()

    def _any_sleeper(self) -> bool:
        # One bytes comparison over the sleeper flags: a flag is 0 or 1, and
        # its bytes are read after the loads of any earlier program step.
        return self._mm[self._sleepers_lo : self._sleepers_hi] != self._no_sleepers

    def _publish(self) -> None:
        c = self._cursor
        if c != self._published:
            self._w64[self._i_tail] = c
            self._published = c
            _wait.fence()  # ⟂ H1 (tail, then sleeper flags) and H5 (tail, then reg_epoch)
            if self._any_sleeper():
                _wait.futex_wake(self._tail_addr, _wait.INT_MAX)
        e = self._w64.item(self._i_epoch)
        if e != self._epoch and self._policy != Policy.DROP_OLDEST:
            self._epoch = e
            self._limit = 0  # a registration or removal: rescan

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
            self._w64[self._i_dropped_newest] = self._dropped
            return False
        self._wait(w)
        return True

    def _scan(self, w: int) -> tuple[int, int]:
        """Recompute limit from the table (§8.2); return the bounding entry and its head."""
        w32, w64 = self._w32, self._w64
        blocker, min_head, blocker_head = -1, 0, 0
        for i in range(self._max_subs):
            e = self._table_off + abi.ENTRY_SIZE * i
            # state, then max_lag, then head: the registrant stores head and
            # max_lag before state = active.
            if w32.item((e + abi.ENT_STATE) // 4) != abi.ENT_ACTIVE:
                continue
            if w64.item((e + abi.ENT_MAX_LAG) // 8) != 0:
                continue  # lossy subscribers never hold the producer back
            h = int(w64.item((e + abi.ENT_HEAD) // 8))
            if h > w:
                # Beyond every committed index: impossible for an honest
                # subscriber. Evict rather than trust it.
                self._remove(i, int(w64.item((e + abi.ENT_GENERATION) // 8)), abi.ENT_EVICTED)
                continue
            eff = h if w - h <= self._cap else w - self._cap  # a registration in flight
            if blocker < 0 or eff < min_head:
                blocker, min_head, blocker_head = i, eff, h
        self._limit = _UNBOUNDED if blocker < 0 else min_head + self._cap
        return blocker, blocker_head

    def _wait(self, w: int) -> None:
        """Block until slot ``w`` is free (§8.3 "Producer parks")."""
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
            want = w + 1 - self._cap + (max(self._cap // 4, 1) - 1)
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
                self._remove(blocker, gen, abi.ENT_FREE)  # dead: its lock is gone
                continue
            if now - since > self._liveness_s:
                self._remove(blocker, gen, abi.ENT_EVICTED)  # alive but stalled
                continue
            sleep = abi.WATCHDOG_S
            if deadline is not None:
                sleep = min(sleep, deadline - now + 0.001)
            sleep = min(sleep, self._liveness_s - (now - since) + 0.001)
            w32[self._i_wait_entry] = blocker
            w64[self._i_wait_head] = want
            w32[self._i_sleeping] = 1
            try:
                _wait.fence()  # ⟂ H2: prod_sleeping, then the blocker's head/state/generation
                h = int(w64.item((e + abi.ENT_HEAD) // 8))
                if (
                    h == head
                    and w32.item((e + abi.ENT_STATE) // 4) == abi.ENT_ACTIVE
                    and w64.item(i_gen) == gen
                    and _wait.futex_wait(self._seg.base + e + abi.ENT_HEAD, h, sleep)
                ):
                    self.watchdog_fires += 1
            finally:
                w32[self._i_sleeping] = 0
            w64[self._i_heartbeat] = _sys.mono_ns()

    def _remove(self, i: int, gen: int, new_state: int) -> None:
        """Reclaim (dead owner) or evict (live, stalled or hostile) entry ``i`` (§9)."""
        fd = self._seg.fd
        if not _sys.flock_lock(fd, 0.05):
            return  # retried at the next scan
        try:
            e = self._table_off + abi.ENTRY_SIZE * i
            i_state, i_gen = (e + abi.ENT_STATE) // 4, (e + abi.ENT_GENERATION) // 8
            if self._w32.item(i_state) != abi.ENT_ACTIVE or self._w64.item(i_gen) != gen:
                return  # changed by its owner or a registrant meanwhile
            locked = False
            if new_state == abi.ENT_FREE:
                try:
                    locked = _sys.ofd_try_lock(fd, e, abi.ENTRY_SIZE)
                except OSError:
                    locked = False
                if not locked:
                    return  # alive after all
            try:
                self._w64[i_gen] = (gen + 1) & abi.U64_MASK
                self._w32[i_state] = new_state
                self._w64[self._i_epoch] = (int(self._w64.item(self._i_epoch)) + 1) & abi.U64_MASK
                self.evictions += 1
                self._limit = 0
            finally:
                if locked:
                    _sys.ofd_unlock(fd, e, abi.ENTRY_SIZE)
        finally:
            _sys.flock_unlock(fd)

