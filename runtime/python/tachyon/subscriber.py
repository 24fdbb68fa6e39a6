"""A subscriber: one registered reader of a ring (ABI §8.3-§8.7).

Registration (§8.4) takes the registry lock, joins at a provisional head
that is never above the final one, performs the epoch handshake with the
producer (a fence, a membarrier, or — for a process that cannot issue one
on an asymmetric ring — the producer's acknowledgement), then becomes
active. Receiving (§8.5) is a seqlock read per slot; waiting (§8.3) parks
on the ring's ``notify`` eventcount after announcing itself in its sleeper
flag.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from . import _abi as abi
from . import _sys, _wait, sealed
from ._handle import Handle, seconds
from ._message import MessageType, check_identity, slot_dtype, subscriber_key, type_name
from ._segment import Segment, open_segment, validate_name
from .batch import Batch
from .errors import (
    CorruptSegment,
    Evicted,
    InvalidOptions,
    NotReady,
    Overwritten,
    PublisherClosed,
    PublisherDead,
    RingNotFound,
    RingTimeout,
    TableFull,
    ViewStillReferenced,
)

__all__ = ["MAX_DEFERRED", "STATS_EVERY", "Subscriber"]

#: Head stores between flushes of received/dropped/heartbeat (ABI §7).
STATS_EVERY = 256
#: Deferred batches (still referenced at the next receive) tolerated.
MAX_DEFERRED = 1

_M = abi.U64_MASK

R = TypeVar("R")

test_hook: Callable[[str], None] | None = None
"""Called, when a test sets it, at the named steps of the protocol
("register:joining", "register:epoch", "wait:park", "wait:futex") so that the test can
interleave another party's steps deterministically. Never set otherwise."""


def _hook(point: str) -> None:
    if test_hook is not None:
        test_hook(point)


def _sat(a: int, b: int) -> int:
    """``a - b``, or 0 when ``b > a`` (ABI §8.4's ``sat``), on u64 values."""
    return a - b if a >= b else 0


class Subscriber(Handle, Generic[R]):
    """One registered reader of a ring.

    Create one with :meth:`attach` (a named ring) or :meth:`dial` (a sealed
    ring served on a Unix socket); ``close()`` (or leaving ``with``)
    deregisters it. Receives block by spinning a bounded number of polls,
    then sleeping on the ring's futex (every sleep bounded by the 200 ms
    watchdog), and raise :class:`PublisherClosed` once a closed ring is
    drained, :class:`PublisherDead` once a dead publisher's messages are
    drained, :class:`Evicted` if the producer evicted this subscriber. Not
    safe for concurrent use.
    """

    def __init__(
        self,
        seg: Segment,
        message: MessageType[R],
        max_lag: int,
        spin: int,
        subscriber_name: str | None = None,
        start: Literal["live", "last"] = "live",
    ) -> None:
        super().__init__(seg)
        self._message = message
        self._max_lag = max_lag
        self._subscriber_name = subscriber_name or None
        self._key = subscriber_key(subscriber_name or "")
        self._spin = spin
        self._slot_dtype = slot_dtype(message.DTYPE, self._msg_off, self._slot_size)
        self._evens: npt.NDArray[np.uint64] = np.arange(0, 2 * self._cap, 2, dtype=np.uint64)
        self._window = max_lag if max_lag > 0 else self._cap
        # A window of the whole ring (unlimited, or max_lag == capacity)
        # never skips before a lap: such a reader may take a committed slot
        # before the tail covers it (§8.5 step 1a).
        self._whole = self._window == self._cap
        # protected: an unlimited subscriber of a block or drop_newest ring.
        # The producer never overwrites a slot it has not released without
        # evicting it first (and stores the eviction word before the slot),
        # so its batches check that one word instead of every stamp (§8.5 4).
        self._protected = max_lag == 0 and seg.header.policy != abi.Policy.DROP_OLDEST
        # strong: this subscriber fences its head stores and parks with a
        # fence — on a strong ring, or as a membarrier-less process on an
        # asymmetric one (§8.6).
        self._strong = not self._asym or not _wait.membarrier_registered()
        self._i_prod_sleeping = abi.OFF_PROD_SLEEPING // 4
        self._i_prod_state = abi.OFF_PROD_STATE // 4
        self._i_wait_entry = abi.OFF_WAIT_ENTRY // 4
        self._i_wait_head = abi.OFF_WAIT_HEAD // 8
        self._i_scan_epoch = abi.OFF_SCAN_EPOCH // 8
        self._i_fences = abi.OFF_PROD_FENCES // 4
        self._borrows: list[Batch[R]] = []
        self._received = 0
        self._dropped = 0
        self._since_stats = 0
        self._last_live = 0.0
        self.watchdog_fires = 0
        """Futex sleeps that ended by timeout (the watchdog, or a membarrier-less
        subscriber's 1 ms sleeps before the producer fences for it)."""
        self.lost_wakeups = 0
        """Of those, sleeps after which a message was readable: a wake-up the
        handshakes should have delivered (diagnostics; 0 on an honest ring)."""
        self._idx = -1
        self._register(start == "last")

    @classmethod
    def attach(
        cls,
        name: str,
        message: MessageType[R],
        *,
        max_lag: int = 0,
        timeout: float | None = None,
        allow_foreign_owner: bool = False,
        subscriber_name: str | None = None,
        start: Literal["live", "last"] = "live",
        spin: int = _wait.DEFAULT_SPIN,
    ) -> Subscriber[R]:
        """Open the named ring, check it carries ``message``, and register.

        Every header value is read once and validated (ABI §6); a
        fingerprint, type id, size or alignment mismatch raises
        :class:`FingerprintMismatch` naming the ring and both values.
        ``max_lag`` 0 makes an unlimited subscriber (the producer never
        overwrites what it has not read); 1..capacity makes a lossy one.
        ``timeout`` (seconds) retries while the ring does not exist or is not
        ready yet; None fails at once on a missing ring and waits 1 s for a
        ring being initialised. The subscriber reads messages published
        after it registered.

        ``subscriber_name`` makes a durable (named) subscriber (ABI §7
        ``key``, §8.4): when a subscriber of that name closed or died
        earlier, this one takes over its entry with its received and dropped
        counters, and resumes at its last position (``start="last"``: every
        message still in the ring is delivered, those overwritten meanwhile
        count as dropped) or at the live tail (``start="live"``, the
        default: what it missed counts as dropped).
        """
        validate_name(name)
        _check_options("attach", name, max_lag, start)
        timeout = seconds(timeout, "attach", name)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready_wait = abi.READY_TIMEOUT_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                seg = open_segment(
                    "attach", name, write=True, ready_timeout=ready_wait, allow_foreign=allow_foreign_owner
                )
                break
            except (RingNotFound, NotReady):
                if deadline is None or time.monotonic() >= deadline:
                    raise
                time.sleep(0.002)
        return cls._subscribe("attach", seg, message, max_lag, spin, subscriber_name, start)

    @classmethod
    def dial(
        cls,
        path: str,
        message: MessageType[R],
        *,
        max_lag: int = 0,
        timeout: float | None = None,
        allow_foreign_owner: bool = False,
        subscriber_name: str | None = None,
        start: Literal["live", "last"] = "live",
        spin: int = _wait.DEFAULT_SPIN,
    ) -> Subscriber[R]:
        """Subscribe to a sealed ring served on the Unix socket at ``path`` (ABI §14).

        Sends this message type's identity, receives the segment's
        descriptor from any publisher's server (Go ``Publisher.Serve``,
        :meth:`Publisher.serve <tachyon.Publisher.serve>`, C++, Rust),
        refuses it unless it is sealed against shrinking, growing and
        further sealing (:class:`InsecureSegment`), reopens it as its own
        open file description, validates the header and registers. A
        publisher of another message type refuses the handshake:
        :class:`FingerprintMismatch` names both values. ``timeout`` retries
        while nobody listens at ``path`` yet (None: fail at once); the other
        options are those of :meth:`attach`. Errors name ``path``.
        """
        _check_options("dial", path, max_lag, start)
        timeout = seconds(timeout, "dial", path)
        seg = sealed.dial(
            path, message, ready_timeout=abi.READY_TIMEOUT_S, allow_foreign=allow_foreign_owner, timeout=timeout
        )
        return cls._subscribe("dial", seg, message, max_lag, spin, subscriber_name, start)

    @classmethod
    def _subscribe(
        cls,
        op: str,
        seg: Segment,
        message: MessageType[R],
        max_lag: int,
        spin: int,
        subscriber_name: str | None,
        start: Literal["live", "last"],
    ) -> Subscriber[R]:
        try:
            check_identity(op, seg, message)
            if max_lag > seg.geo.capacity:
                raise InvalidOptions(
                    f"{op} {seg.name!r}: invalid options: max lag {max_lag} exceeds capacity {seg.geo.capacity}",
                    ring=seg.name,
                )
            return cls(seg, message, max_lag, max(0, spin), subscriber_name, start)
        except BaseException:
            seg.close()
            raise

    # -- properties ---------------------------------------------------------

    @property
    def received(self) -> int:
        """Messages delivered since registration."""
        return self._received

    @property
    def dropped(self) -> int:
        """Messages lost since registration (skipped, lapped or overwritten)."""
        return self._dropped

    @property
    def max_lag(self) -> int:
        """0 for an unlimited subscriber, else its lag window."""
        return self._max_lag

    @property
    def index(self) -> int:
        """This subscriber's entry in the table."""
        return self._idx

    @property
    def subscriber_name(self) -> str | None:
        """The durable subscriber's name, None for an anonymous one."""
        return self._subscriber_name

    @property
    def message(self) -> MessageType[R]:
        """The message class of the ring."""
        return self._message

    @property
    def lag(self) -> int:
        """Published messages not read yet."""
        self._check_open("lag")
        t = int(self._w64.item(self._i_tail))
        return max(0, t - self._cursor)

    # -- receiving ----------------------------------------------------------

    def recv(self, timeout: float | None = None) -> R | None:
        """Wait for the next message and return it as a typed record (a copy).

        Returns None if ``timeout`` seconds pass first (``timeout=0``
        polls). Raises PublisherClosed / PublisherDead after draining, or
        Evicted. A lossy reader never returns a torn message.
        """
        raw = self.recv_bytes(timeout)
        return None if raw is None else self._message.unpack_from(raw)

    def recv_bytes(self, timeout: float | None = None) -> bytes | None:
        """Like :meth:`recv`, returning the message's ``SIZE`` wire bytes."""
        self._check_open("receive")
        self._settle_implicit()
        deadline = self._deadline(timeout)
        while True:
            raw = self._try_recv()
            if raw is not None:
                return raw
            if not self._wait(deadline):
                return None

    def recv_batch(self, max_n: int | None = None, timeout: float | None = None) -> Batch[R]:
        """Wait for at least one message and borrow up to ``max_n`` contiguous ones.

        Returns a :class:`Batch` viewing the slots in place (zero copy),
        ending at the ring's last slot at the latest; an empty batch if
        ``timeout`` passed first. ``max_n`` defaults to the capacity. Raises
        like :meth:`recv`.
        """
        self._check_open("receive")
        limit = self._cap if max_n is None else int(max_n)
        if limit < 1:
            raise ValueError(f"receive {self._name!r}: max_n {max_n}, want >= 1")
        self._settle_implicit()
        deadline = self._deadline(timeout)
        while True:
            batch = self._try_borrow(limit)
            if batch is not None:
                return batch
            if not self._wait(deadline):
                return Batch(self, self._cursor, 0, 0)

    def __iter__(self) -> Iterator[R]:
        """Typed records until the publisher closes (PublisherDead/Evicted raise)."""
        while True:
            try:
                rec = self.recv()
            except PublisherClosed:
                return
            if rec is not None:
                yield rec

    def batches(self, max_n: int | None = None) -> Iterator[Batch[R]]:
        """Zero-copy batches until the publisher closes.

        Each batch is released by the next receive (see the module
        docstring: a batch still referenced then is deferred once). Lossy
        readers should release each batch themselves (``with batch:``) to
        catch :class:`Overwritten` per batch; otherwise it is raised here.
        """
        while True:
            try:
                batch = self.recv_batch(max_n)
            except PublisherClosed:
                return
            yield batch

    @property
    def strong_fences(self) -> bool:
        """Whether this subscriber fences: a strong ring, or a membarrier-less
        process on an asymmetric one (ABI §8.6)."""
        return self._strong

    def close(self) -> None:
        """Deregister (the entry becomes free) and unmap (ABI §8.7).

        Batches still borrowed are released first; one whose views are still
        alive is abandoned with a ResourceWarning (the mapping stays until
        the views die, but the producer may then overwrite it). If another
        process holds the registry lock, the entry is left for the producer
        to reclaim: only its liveness lock is dropped.
        """
        if self._closed:
            return
        self._closed = True
        for batch in list(self._borrows):
            if batch._has_views():
                warnings.warn(
                    f"close {self._name!r}: a batch of {len(batch)} messages still has live views;"
                    " they may be overwritten from now on",
                    ResourceWarning,
                    stacklevel=2,
                )
                continue
            try:
                self._settle(batch)
            except Overwritten:
                pass
        seg, w32, w64 = self._seg, self._w32, self._w64
        if self._idx >= 0:
            self._flush_stats()
            w32[self._i_sleep] = 0
            if _sys.flock_lock(seg.fd, abi.REGISTRY_TIMEOUT_S):
                try:
                    # Ours while our generation is there: nobody else could
                    # take the entry while we held its liveness lock.
                    if w64.item(self._i_gen) == self._gen and w32.item(self._i_state) != abi.ENT_FREE:
                        w64[self._i_gen] = (self._gen + 1) & _M
                        w32[self._i_state] = abi.ENT_FREE
                        _wait.fence()  # ⟂ H3: state, then prod_sleeping
                        w64[self._i_epoch] = (int(w64.item(self._i_epoch)) + 1) & _M
                        # A producer parked on our entry must not wait for a
                        # subscriber that left.
                        if w32.item(self._i_prod_sleeping) and w32.item(self._i_wait_entry) == self._idx:
                            self._wake_producer_now()
                finally:
                    _sys.flock_unlock(seg.fd)
            _sys.ofd_unlock(seg.fd, self._entry, abi.ENTRY_SIZE)
        del self._stamps
        seg.close()

    def _liveness_range(self) -> tuple[int, int] | None:
        return (self._entry, abi.ENTRY_SIZE) if self._idx >= 0 else None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"entry={self._idx} received={self._received} dropped={self._dropped}"
        return f"<Subscriber {self._name!r} {type_name(self._message)} {state}>"

    # -- registration (ABI §8.4) --------------------------------------------

    def _register(self, start_last: bool) -> None:
        """Claim an entry under the registry lock and enrol in it — no CAS."""
        seg = self._seg
        if not _sys.flock_lock(seg.fd, abi.REGISTRY_TIMEOUT_S):
            raise RingTimeout(
                f"attach {self._name!r}: registry lock still held by another process after"
                f" {abi.REGISTRY_TIMEOUT_S}s",
                ring=self._name,
            )
        try:
            idx, resume = self._pick_entry()
            self._bind(idx)
            self._enroll(resume, start_last)
        finally:
            _sys.flock_unlock(seg.fd)

    def _bind(self, idx: int) -> None:
        """Word indices of entry ``idx``, computed once."""
        g, base = self._seg.geo, self._seg.base
        e = g.entry_offset(idx)
        self._idx, self._entry = idx, e
        self._i_head = (e + abi.ENT_HEAD) // 8
        self._i_received = (e + abi.ENT_RECEIVED) // 8
        self._i_dropped = (e + abi.ENT_DROPPED) // 8
        self._i_heartbeat = (e + abi.ENT_HEARTBEAT) // 8
        self._i_gen = (e + abi.ENT_GENERATION) // 8
        self._i_join = (e + abi.ENT_JOIN) // 8
        self._i_state = (e + abi.ENT_STATE) // 4
        self._i_wake = (e + abi.ENT_WAKE) // 4
        self._i_sleep = (g.sleepers_offset + 4 * idx) // 4
        self._i_evict = g.evict_word(idx) // 8
        self._wake_addr = base + e + abi.ENT_WAKE

    def _enroll(self, resume: bool, start_last: bool) -> None:
        """Steps 3-5 on the locked entry: join at a provisional head, the epoch
        handshake with the producer (H5), then the final head and state."""
        w32, w64, e = self._w32, self._w64, self._entry
        cap, k = self._cap, self._seg.header.batch
        # A resumed entry's last position and counters: untrusted numbers,
        # read once, before the entry is reset.
        last = join = received = dropped = 0
        if resume:
            last, join = int(w64.item(self._i_head)), int(w64.item(self._i_join))
            received, dropped = int(w64.item(self._i_received)), int(w64.item(self._i_dropped))

        def resumable(t: int) -> bool:
            # A head at most one batch beyond the published tail: a reader may
            # consume committed slots before the tail covers them (§8.5 1a).
            return resume and join <= last <= t + k and dropped <= last - join

        # Step 3: a provisional head never above the final one, so that a
        # producer scanning between the two stores never overwrites what the
        # final head keeps: the tail, or for a resume at the last position,
        # that position as far as step 4 can keep it.
        self._gen = (int(w64.item(self._i_gen)) + 1) & _M
        w32[self._i_state] = abi.ENT_FREE
        w64[self._i_gen] = self._gen
        t = int(w64.item(self._i_tail))
        provisional = t
        if start_last and resumable(t):
            provisional = max(last, _sat(t + 2 * k, cap))
        w64[self._i_head] = provisional
        w64[self._i_received] = 0
        w64[self._i_dropped] = 0
        w64[(e + abi.ENT_KEY) // 8] = self._key
        w64[self._i_heartbeat] = _sys.mono_ns()
        w32[(e + abi.ENT_PID) // 4] = os.getpid()
        w64[(e + abi.ENT_START_TIME) // 8] = _sys.process_start_time()
        w64[(e + abi.ENT_MAX_LAG) // 8] = self._max_lag
        w64[self._i_join] = provisional
        w32[(e + abi.ENT_FLAGS) // 4] = abi.ENT_FLAG_STRONG if self._asym and self._strong else 0
        w32[self._i_sleep] = 0
        i_high = abi.OFF_TABLE_HIGH // 4
        if w32.item(i_high) <= self._idx:
            w32[i_high] = self._idx + 1  # the producer scans (and checks sleepers) below it
        w32[self._i_state] = abi.ENT_JOINING  # after head, max_lag and table_high
        _hook("register:joining")

        # Step 4: H5. We store the epoch, then load the tail; the producer
        # stores the tail, then loads the epoch. Either it sees our epoch at
        # its next publication and rescans (seeing the provisional head)
        # before it claims again, or it had published at most t2 and
        # committed at most t2+k-1; it writes at most k more before that
        # rescan, so no index >= t2+2k-capacity is overwritten.
        epoch = (int(w64.item(self._i_epoch)) + 1) & _M
        w64[self._i_epoch] = epoch
        if not self._asym:
            _wait.fence()
        elif not self._strong:
            _wait.heavy_barrier()  # the producer's tail store and epoch load have no fence
        else:
            self._await_ack(epoch)
        _hook("register:epoch")
        t2 = int(w64.item(self._i_tail))
        start = t2
        if resumable(t2):
            # The head is exact; a subscriber that died may not have flushed
            # its last counters: that progress counts as received, so that
            # received + dropped == head - join holds again.
            received = last - join - dropped
            start = max(last, _sat(t2 + 2 * k, cap)) if start_last else max(t2, last)
            dropped += start - last
        else:
            # Fresh, or an entry whose numbers do not add up: start over.
            received, dropped, join = 0, 0, t2
        w64[self._i_head] = start & _M
        w64[self._i_join] = join
        w64[self._i_dropped] = dropped & _M
        w64[self._i_received] = received & _M
        w32[self._i_state] = abi.ENT_ACTIVE
        self._cursor, self._tail, self._loaded, self._join = start & _M, t2, t2, join
        self._received, self._dropped = received, dropped
        # Step 5: a producer parked on our provisional head may go on now.
        if w32.item(self._i_prod_sleeping) and w32.item(self._i_wait_entry) == self._idx:
            self._wake_producer_now()

    def _await_ack(self, epoch: int) -> None:
        """Step 4 of a membarrier-less registrant on an asymmetric ring (§8.6).

        The producer's hot side has no fence, so before the tail we load can
        bound what was overwritten, the producer must have scanned the table
        since our epoch (it then also fences for us), or be idle long enough
        that its next epoch load cannot miss ours, or be closed or dead.
        """
        w32, w64 = self._w32, self._w64
        start = time.monotonic()
        last, since = int(w64.item(self._i_tail)), start
        while True:
            if w64.item(self._i_scan_epoch) >= epoch:
                return
            now = time.monotonic()
            t = int(w64.item(self._i_tail))
            if t != last:
                last, since = t, now
            elif (
                now - since >= abi.IDLE_PROOF_S
                or w32.item(self._i_prod_state) != abi.PROD_ACTIVE
                or not _sys.ofd_held(self._seg.fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)
            ):
                return
            if now - start > abi.ACK_TIMEOUT_S:
                raise RingTimeout(
                    f"attach {self._name!r}: the publisher kept publishing for {abi.ACK_TIMEOUT_S}s without"
                    " acknowledging a membarrier-less subscriber (ABI §8.6)",
                    ring=self._name,
                )
            time.sleep(0.0001)

    def _pick_entry(self) -> tuple[int, bool]:
        """The entry to take (§8.4 step 2) and whether it resumes a named one."""
        seg, g = self._seg, self._seg.geo

        def key_of(i: int) -> int:
            return int(self._w64.item((g.entry_offset(i) + abi.ENT_KEY) // 8))

        def lock(i: int) -> bool:
            # A free entry, or one whose owner died (the kernel dropped its
            # lock), can be locked; a live owner's cannot.
            return _sys.ofd_try_lock(seg.fd, g.entry_offset(i), abi.ENTRY_SIZE)

        if self._key:
            for i in range(g.max_subs):
                if key_of(i) == self._key and lock(i):
                    return i, True
        # A fresh entry: first one no named subscriber may come back to; only
        # when none is left, a departed named subscriber's (its resume state
        # is then lost).
        for i in range(g.max_subs):
            if key_of(i) == 0 and lock(i):
                return i, False
        for i in range(g.max_subs):
            if lock(i):
                return i, False
        raise TableFull(
            f"attach {self._name!r}: subscriber table full: all {g.max_subs} entries have live owners",
            ring=self._name,
        )

    # -- receiving (ABI §8.5) -----------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None:
            return None
        if timeout < 0 or math.isnan(timeout):
            raise ValueError(f"receive {self._name!r}: timeout {timeout!r}, want seconds >= 0 or None")
        return time.monotonic() + timeout

    def _is_evicted(self) -> bool:
        # The producer's eviction word names our generation, or someone
        # rewrote our generation (only a hostile process does).
        w64 = self._w64
        return bool(w64.item(self._i_evict) == self._gen or w64.item(self._i_gen) != self._gen)

    def _evicted(self) -> Evicted:
        return Evicted(
            f"receive {self._name!r}: subscriber evicted (entry {self._idx}, generation {self._gen}):"
            " the producer stopped waiting for it",
            ring=self._name,
        )

    def _poll(self) -> int:
        """How many messages are readable at the cursor, without waiting (§8.5 1-2)."""
        c = self._cursor
        w64 = self._w64
        if c >= self._tail:
            want = (2 * c + 2) & _M
            # 1a: a reader whose window is the whole ring may take a committed
            # slot before the batched tail covers it (one cache line, not two).
            if self._whole and w64.item(self._stamp_i(c)) == want:
                if self._is_evicted():
                    raise self._evicted()
                self._tail = (c + 1) & _M
                return 1
            t = int(w64.item(self._i_tail))
            if t < self._loaded:
                raise CorruptSegment(
                    f"receive {self._name!r}: corrupt segment: tail moved back from {self._loaded} to {t}",
                    ring=self._name,
                )
            self._loaded = t
            if self._is_evicted():
                raise self._evicted()
            if t > self._tail:
                self._tail = t
            if self._tail <= c:
                # 1b: caught up with the published tail; a lossy reader may
                # still read a message a batching producer holds back (its
                # lag is then below batch; it loaded tail just before).
                if not self._whole and w64.item(self._stamp_i(c)) == want:
                    self._tail = (c + 1) & _M
                    return 1
                return 0
        n = self._tail - c
        if n > self._window:
            skip = n - self._window
            self._cursor = (c + skip) & _M
            self._dropped += skip
            n = self._window
            self._store_head()
        return n

    def _skip_lapped(self, stamp: int) -> None:
        """The slot at the cursor holds another index: skip what is gone (§8.5 3)."""
        c = self._cursor
        want = (2 * c + 2) & _M
        if stamp < want:
            raise CorruptSegment(
                f"receive {self._name!r}: corrupt segment: slot {c & self._mask} stamp {stamp},"
                f" want >= {want} (index {c})",
                ring=self._name,
            )
        j = ((stamp - 1) & _M) >> 1
        nxt = c + 1
        if j >= self._cap and j + 1 - self._cap > nxt:
            nxt = j + 1 - self._cap
        self._dropped += nxt - c
        self._cursor = nxt & _M
        self._store_head()

    def _next(self) -> bool:
        """Advance to a readable message whose first stamp load checks out."""
        while True:
            if self._poll() == 0:
                return False
            c = self._cursor
            s = int(self._w64.item(self._stamp_i(c)))
            if s == (2 * c + 2) & _M:
                return True
            self._skip_lapped(s)

    def _try_recv(self) -> bytes | None:
        """Seqlock copy of the message at the cursor, or None if none is readable.

        The common case (the next index is known committed, or a whole-ring
        reader finds its stamp committed, §8.5 1a) is inlined; anything else
        (lag window, laps, a tail to load) goes through :meth:`_next`.
        """
        w64 = self._w64
        while True:
            c = self._cursor
            i = self._stamp0 + (c & self._mask) * self._slot_words
            want = (2 * c + 2) & _M
            if c < self._tail and self._tail - c <= self._window:
                ready = w64.item(i) == want  # s1
            elif c >= self._tail and self._whole and w64.item(i) == want:
                if self._is_evicted():
                    raise self._evicted()
                self._tail = (c + 1) & _M
                ready = True
            else:
                ready = False
            if not ready:
                if not self._next():
                    return None
                continue  # _next() checked s1 at the (maybe moved) cursor; redo the fast path
            off = i * 8 + self._msg_off
            raw = self._mm[off : off + self._msg_size]
            s2 = w64.item(i)  # after the copy (x86-64 TSO keeps loads in order)
            if s2 == want:
                self._cursor = (c + 1) & _M
                self._received += 1
                self._store_head()
                return raw
            self._skip_lapped(int(s2))  # torn: discard, count, retry

    def _try_borrow(self, max_n: int) -> Batch[R] | None:
        """Borrow up to ``max_n`` contiguous slots whose stamps match (§8.5 4)."""
        while True:
            if not self._next():
                return None
            t = int(self._w64.item(self._i_tail))  # take all that is published
            if t < self._loaded:
                raise CorruptSegment(
                    f"receive {self._name!r}: corrupt segment: tail moved back from {self._loaded} to {t}",
                    ring=self._name,
                )
            self._loaded = t
            if t > self._tail:
                self._tail = t
            c = self._cursor
            pos = c & self._mask
            n = min(self._tail - c, max_n, self._cap - pos)
            if n > 1 and not self._protected:
                ok = self._stamps[pos : pos + n] == self._committed(c, n)
                if not ok.all():
                    n = int(ok.argmin())  # the first slot not (or no longer) committed
            if n > 0:
                break
            # The first slot was overwritten since _next() checked it (a
            # lapped reader): the next _next() skips what is gone.
        self._cursor = (c + n) & _M
        batch = Batch(self, c, n, pos)
        self._borrows.append(batch)
        return batch

    def _committed(self, start: int, n: int) -> npt.NDArray[np.uint64]:
        """The stamps of indices ``start .. start+n-1`` once committed: 2i+2 (u64)."""
        return self._evens[:n] + np.uint64((2 * start + 2) & _M)

    def _intact(self, start: int, pos: int, n: int) -> bool:
        """Whether borrowed slots were not overwritten: a protected subscriber's
        eviction word, else the slots' stamps re-loaded, unchanged."""
        if self._protected:
            return not self._is_evicted()
        if n == 1:
            return bool(self._w64.item(self._stamp_i(start)) == (2 * start + 2) & _M)
        return bool((self._stamps[pos : pos + n] == self._committed(start, n)).all())

    def _settle(self, batch: Batch[R]) -> None:
        """Release a borrowed batch: count it received or dropped, move the head."""
        intact = self._intact(batch._start, batch._pos, batch._n)
        batch._root = None
        batch._released = True
        self._borrows.remove(batch)
        if intact:
            self._received += batch._n
        else:
            self._dropped += batch._n
        self._store_head()
        if not intact and not batch._reported:
            raise Overwritten(
                f"receive {self._name!r}: batch of {batch._n} messages from index {batch._start} was"
                " overwritten while borrowed (a lapped reader): discard what was read from it;"
                " counted as dropped",
                ring=self._name,
                count=batch._n,
            )

    def _settle_implicit(self) -> None:
        """Release earlier batches before a receive; defer one still referenced."""
        if not self._borrows:
            return
        deferred = 0
        for batch in list(self._borrows):
            if batch._has_views():
                deferred += 1
                continue
            self._settle(batch)
        if deferred > MAX_DEFERRED:
            oldest = self._borrows[0]
            raise ViewStillReferenced(
                f"receive {self._name!r}: {deferred} earlier batches (the oldest from index"
                f" {oldest.start}) still have live NumPy views; the ring cannot advance past them."
                " Delete the views or keep .copy()s.",
                ring=self._name,
            )

    def _store_head(self) -> None:
        head = self._borrows[0]._start if self._borrows else self._cursor
        self._w64[self._i_head] = head
        # H2: head, then prod_sleeping — a full fence unless the ring's parked
        # producer issues a membarrier for us (asymmetric, and we registered).
        if self._strong:
            _wait.FENCE_ACQUIRE()
            _wait.FENCE_RELEASE()
        if self._w32.item(self._i_prod_sleeping):
            self._wake_producer(head)
        self._since_stats += 1
        if self._since_stats >= STATS_EVERY:
            self._flush_stats()

    def _wake_producer(self, head: int) -> None:
        # Loads after prod_sleeping; the producer stored them before it.
        if self._w32.item(self._i_wait_entry) == self._idx and head >= self._w64.item(self._i_wait_head):
            self._wake_producer_now()

    def _wake_producer_now(self) -> None:
        # Advance our entry's wake eventcount (we are its only writer), then
        # wake the producer parked on it.
        self._w32[self._i_wake] = (int(self._w32.item(self._i_wake)) + 1) & 0xFFFFFFFF
        _wait.futex_wake(self._wake_addr, 1)

    def _flush_stats(self) -> None:
        self._since_stats = 0
        w64 = self._w64
        w64[self._i_received] = self._received & _M
        w64[self._i_dropped] = self._dropped & _M
        w64[self._i_heartbeat] = _sys.mono_ns()

    def _committed_at_cursor(self) -> bool:
        c = self._cursor
        return bool(self._w64.item(self._stamp_i(c)) == (2 * c + 2) & _M)

    def _check_terminal(self, check_alive: bool) -> None:
        """Raise why no message will come, if so (§8.5 "Closed / dead")."""
        if self._is_evicted():
            raise self._evicted()
        closed = self._w32.item(self._i_prod_state) == abi.PROD_CLOSED
        dead = (
            not closed
            and check_alive
            and not _sys.ofd_held(self._seg.fd, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)
        )
        if not (closed or dead):
            return
        # H4: closed is stored after the final tail, and a dead producer's
        # tail is final: reload it, and deliver everything first — also a
        # message a dead batching producer committed and never published.
        if self._w64.item(self._i_tail) > self._cursor or self._committed_at_cursor():
            return
        if closed:
            raise PublisherClosed(f"receive {self._name!r}: publisher closed", ring=self._name)
        raise PublisherDead(
            f"receive {self._name!r}: publisher dead (its process exited without closing the ring)",
            ring=self._name,
        )

    def _wait(self, deadline: float | None) -> bool:
        """Block until a message is readable (True) or the deadline passes (False)."""
        spins = 0 if deadline is None or deadline > time.monotonic() else self._spin
        while True:
            if self._poll() > 0:
                return True
            if spins < self._spin:
                spins += 1
                if spins > self._spin - _wait.YIELD_POLLS:
                    os.sched_yield()
                if not (spins & 63 == 0 and deadline is not None and time.monotonic() >= deadline):
                    continue
                spins = self._spin
            now = time.monotonic()
            check_alive = now - self._last_live >= abi.WATCHDOG_S
            if check_alive:
                self._last_live = now
            self._check_terminal(check_alive)
            if deadline is not None and now >= deadline:
                return False
            sleep = abi.WATCHDOG_S if deadline is None else min(abi.WATCHDOG_S, deadline - now + 0.001)
            if self._strong and self._asym and self._w32.item(self._i_fences) != abi.FENCES_STRONG:
                # The producer does not fence for us yet: a wake-up could be
                # lost, so sleep briefly (§8.6).
                sleep = min(sleep, abi.STRONG_PENDING_SLEEP_S)
            self._flush_stats()
            _hook("wait:park")
            if self._park(sleep):
                return True

    def _park(self, sleep: float) -> bool:
        """One sleep (§8.3 "Subscriber parks", H1); True if a message appeared meanwhile."""
        w32 = self._w32
        w32[self._i_sleep] = 1
        try:
            # Our sleeper flag, then (a fence, or on an asymmetric ring a
            # membarrier for the producer's fence-free stores) the eventcount,
            # then the re-check: the tail, the stamp of head (a message a
            # batching producer holds back), prod_state, our eviction. The
            # producer stores tail or a stamp, then loads the flags, and if it
            # sees ours advances the eventcount: either we see its store
            # here, or futex_wait sees the new count.
            if self._strong:
                _wait.fence()
            else:
                _wait.heavy_barrier()
            ev = int(w32.item(self._i_notify))
            if self._poll() > 0:
                return True
            if w32.item(self._i_prod_state) == abi.PROD_CLOSED or self._is_evicted():
                return False  # the next turn reports it
            _hook("wait:futex")
            if _wait.futex_wait(self._notify_addr, ev, sleep):
                self.watchdog_fires += 1
                if self._w64.item(self._i_tail) > self._cursor or self._committed_at_cursor():
                    self.lost_wakeups += 1
        finally:
            w32[self._i_sleep] = 0  # also when a signal (KeyboardInterrupt) ends the sleep
        return False


def _check_options(op: str, name: str, max_lag: int, start: str) -> None:
    if not isinstance(max_lag, int) or isinstance(max_lag, bool) or max_lag < 0:
        raise InvalidOptions(f"{op} {name!r}: invalid options: max lag {max_lag!r}", ring=name)
    if start not in ("live", "last"):
        raise InvalidOptions(f"{op} {name!r}: invalid options: start {start!r}, want 'live' or 'last'", ring=name)
