"""Policies and lossy readers: drop_newest, drop_oldest, max_lag, Block waits."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from .support import Message, records

import tachyon
from tachyon import Overwritten, Publisher, RingFull, RingTimeout, Subscriber


def drain(sub: Subscriber) -> list[int]:  # type: ignore[type-arg]
    """Receive everything readable now, one copy at a time."""
    out = []
    while (m := sub.recv(timeout=0)) is not None:
        out.append(m.seq)
    return out


def gaps_of(seqs: list[int], start: int = 0) -> int:
    gaps, last = 0, start - 1
    for s in seqs:
        assert s > last, "reordered"
        gaps += s - last - 1
        last = s
    return gaps


def entry_counters(sub: Subscriber) -> tuple[int, int]:  # type: ignore[type-arg]
    sub._flush_stats()
    e = next(s for s in tachyon.inspect(sub.name).subscribers if s.index == sub.index)
    return e.received, e.dropped


def test_drop_newest_refuses_and_counts(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, policy="drop_newest", batch=2) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            arr = records(range(20))
            assert pub.publish_array(arr) == 8
            assert pub.dropped == 12 and pub.published == 8
            assert not pub.publish(Message(seq=99, timestamp_ns=0, payload=(0,) * 48))
            with pytest.raises(RingFull, match=ring_name):
                pub.claim()
            assert pub.dropped == 14
            assert tachyon.inspect(ring_name).dropped_newest == 14
            assert drain(sub) == list(range(8))  # an unlimited reader never drops
            assert sub.dropped == 0


def test_drop_oldest_unlimited_reader_counts_laps(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16, policy="drop_oldest", batch=4) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            pub.publish_array(records(range(100)))
            pub.flush()
            got = drain(sub)
            assert got == list(range(84, 100))
            assert sub.received + sub.dropped == 100 and sub.dropped == gaps_of(got)
            assert entry_counters(sub) == (16, 84)


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_max_lag_window(ring_name: str, policy: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16, policy=policy, batch=1) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=4) as sub:
            # A lossy reader never holds the producer back, even under block.
            pub.publish_array(records(range(52)))
            pub.flush()
            with sub.recv_batch() as b:
                assert b["seq"].tolist() == [48, 49, 50, 51]
            assert (sub.received, sub.dropped) == (4, 48)
            assert entry_counters(sub) == (4, 48)


def test_batch_overwritten_while_borrowed(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, policy="drop_oldest", batch=1) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=8) as sub:
            pub.publish_array(records(range(6)))
            b = sub.recv_batch()
            assert len(b) == 6
            seen = b["seq"].sum()  # read while borrowed ...
            pub.publish_array(records(range(6, 12)))  # ... and lapped meanwhile
            with pytest.raises(Overwritten, match="overwritten while borrowed") as ei:
                b.release()
            assert ei.value.count == 6 and seen == 15
            assert (sub.received, sub.dropped) == (0, 6)
            got = drain(sub)
            assert got == list(range(6, 12))
            assert sub.received + sub.dropped == 12


def test_copy_of_an_overwritten_batch_is_refused(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, policy="drop_oldest", batch=1) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=8) as sub:
            pub.publish_array(records(range(4)))
            b = sub.recv_batch()
            pub.publish_array(records(range(4, 10)))  # overwrites slots 0 and 1
            with pytest.raises(Overwritten, match="while it was copied"):
                b.copy()
            b.release()  # counted once, not raised twice
            assert (sub.received, sub.dropped) == (0, 4)


def test_iteration_raises_overwritten_for_an_unreleased_lapped_batch(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, policy="drop_oldest", batch=1) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=8) as sub:
            pub.publish_array(records(range(4)))
            it = sub.batches()
            first = next(it)
            assert len(first) == 4
            pub.publish_array(records(range(4, 12)))
            with pytest.raises(Overwritten):
                next(it)
            assert sub.dropped == 4


def test_block_waits_for_a_reader_then_proceeds(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, batch=2, timeout=10) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            got: list[int] = []

            def read() -> None:
                while len(got) < 200:
                    with sub.recv_batch(timeout=5) as b:
                        got.extend(b["seq"].tolist())

            t = threading.Thread(target=read)
            t.start()
            assert pub.publish_array(records(range(200))) == 200
            pub.flush()
            t.join(10)
            assert got == list(range(200))


def test_block_timeout_names_the_ring(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=4, batch=1, timeout=0.2, liveness_timeout=30, spin=0) as pub:
        with Subscriber.attach(ring_name, Message):
            pub.publish_array(records(range(4)))
            t0 = time.monotonic()
            with pytest.raises(RingTimeout, match=f"publish '{ring_name}': timeout after 0.2s waiting for subscriber 0"):
                pub.publish(Message(seq=4, timestamp_ns=0, payload=(0,) * 48))
            assert time.monotonic() - t0 < 5


def test_stalled_reader_is_evicted(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=4, batch=1, liveness_timeout=0.3, spin=0) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            pub.publish_array(records(range(10)))  # waits 0.3 s, then evicts the stalled reader
            assert pub.evictions == 1
            assert drain_until_error(sub) == "Evicted"
            assert tachyon.inspect(ring_name).subscribers[0].state == "evicted"
        assert tachyon.inspect(ring_name).subscribers == ()  # detached: the entry is free again


def drain_until_error(sub: Subscriber) -> str:  # type: ignore[type-arg]
    try:
        while True:
            sub.recv(timeout=1)
    except tachyon.TachyonError as e:
        assert sub.name in str(e)
        return type(e).__name__


def test_hostile_head_is_evicted(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, batch=1) as pub:
        with Subscriber.attach(ring_name, Message) as bad, Subscriber.attach(ring_name, Message) as good:
            bad._w64[bad._i_head] = 1 << 40  # beyond anything committed
            # The registrations force a table scan at the first claim: `bad`
            # claims a head beyond every committed index and is evicted.
            pub.publish_array(records(range(8)))
            pub.flush()
            assert pub.evictions == 1
            assert drain_until_error(bad) == "Evicted"
            assert drain(good) == list(range(8))


def test_table_full(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, max_subscribers=2):
        with Subscriber.attach(ring_name, Message), Subscriber.attach(ring_name, Message):
            with pytest.raises(tachyon.TableFull, match=f"attach '{ring_name}': subscriber table full: all 2 entries"):
                Subscriber.attach(ring_name, Message)
        # Both detached: the entries are reusable.
        with Subscriber.attach(ring_name, Message) as s:
            assert s.index == 0


def test_flush_and_batching(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64, batch=8) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=32) as sub:
            pub.publish_array(records(range(5)))
            assert tachyon.inspect(ring_name).published == 0  # below K: not yet published
            # A caught-up lossy reader still takes the held-back messages by
            # their stamps (ABI §8.5 step 1b), loading the tail before each.
            assert [m.seq for m in iter(lambda: sub.recv(timeout=0), None)] == list(range(5))
            pub.flush()
            assert tachyon.inspect(ring_name).published == 5
            pub.publish_array(records(range(5, 13)))  # 13 - 5 >= K: published without a flush
            assert tachyon.inspect(ring_name).published == 13
            assert [m.seq for m in iter(lambda: sub.recv(timeout=0), None)] == list(range(5, 13))


def test_unlimited_reader_takes_committed_slots_before_the_tail(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64, batch=8) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            pub.publish(Message(seq=0, timestamp_ns=0, payload=(0,) * 48))
            assert tachyon.inspect(ring_name).published == 0
            m = sub.recv(timeout=0)  # ABI §8.5 1a
            assert m is not None and m.seq == 0


def test_publish_array_dtype_checked(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8) as pub:
        with pytest.raises(TypeError, match="want Message.DTYPE"):
            pub.publish_array(np.zeros(3, dtype=np.uint64))
        assert pub.publish_array(np.zeros(0, dtype=Message.DTYPE)) == 0


def test_subscriber_key_is_fnv1a() -> None:
    assert tachyon.subscriber_key("") == 0
    assert tachyon.subscriber_key("a") == 0xAF63DC4C8601EC8C
    assert tachyon.subscriber_key("foobar") == 0x85944171F73967E8


def test_named_subscriber_restart(ring_name: str) -> None:
    """Mirror of Go's TestNamedSubscriberRestart (ABI §8.4 "resuming")."""
    seq = 0

    def publish(n: int) -> None:
        nonlocal seq
        pub.publish_array(records(range(seq, seq + n)))
        pub.flush()
        seq += n

    def counters(sub: Subscriber) -> tuple[int, int]:  # type: ignore[type-arg]
        return entry_counters(sub)

    with Publisher.create(ring_name, Message, capacity=64, max_subscribers=3, batch=1) as pub:
        sub = Subscriber.attach(ring_name, Message, subscriber_name="risk-engine", start="last")
        publish(20)
        for _ in range(10):
            assert sub.recv(timeout=0) is not None
        sub.close()  # read 0..9; 10..19 unread
        publish(10)

        # Back at its last position: nothing was overwritten, nothing is lost.
        sub = Subscriber.attach(ring_name, Message, subscriber_name="risk-engine", start="last")
        assert sub.index == 0 and sub.subscriber_name == "risk-engine"
        got = drain(sub)
        assert got == list(range(10, 30))
        assert counters(sub) == (30, 0)
        sub.close()

        # Away while the ring wrapped: what was overwritten counts as dropped.
        publish(100)  # 30..129; the ring keeps the last 64
        sub = Subscriber.attach(ring_name, Message, subscriber_name="risk-engine", start="last")
        got = drain(sub)
        assert got[0] > 30 and got == list(range(got[0], seq))
        received, dropped = counters(sub)
        assert received + dropped == seq and dropped == got[0] - 30

        # It dies (abandoned: its finaliser drops the lock, as the kernel
        # would); an anonymous subscriber meanwhile gets a fresh entry.
        del sub
        with Subscriber.attach(ring_name, Message) as anon:
            assert anon.index != 0, "an anonymous subscriber leaves a named one's entry alone"
            publish(5)
            assert len(drain(anon)) == 5

            # start="live": it skips what it missed and counts it as dropped.
            with Subscriber.attach(ring_name, Message, subscriber_name="risk-engine") as sub2:
                assert sub2.index == 0
                assert drain(sub2) == []
                publish(1)
                assert drain(sub2) == [seq - 1]
                received, dropped = counters(sub2)
                assert received + dropped == seq
                drain(anon)
                assert counters(anon) == (6, 0)
                keys = {s.index: s.key for s in tachyon.inspect(ring_name).subscribers}
                assert keys == {0: tachyon.subscriber_key("risk-engine"), anon.index: 0}


def test_anonymous_subscribers_take_named_entries_only_when_full(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, max_subscribers=2):
        Subscriber.attach(ring_name, Message, subscriber_name="a").close()
        with Subscriber.attach(ring_name, Message) as s1:
            assert s1.index == 1  # entry 0 is kept for "a"
            with Subscriber.attach(ring_name, Message) as s2:
                assert s2.index == 0  # the table is otherwise full: "a" loses its state
                assert tachyon.inspect(ring_name).subscribers[0].key == 0


def test_table_high_only_grows(ring_name: str) -> None:
    """Registrants raise table_high (ABI §5.3) before they join; the producer
    scans and checks sleepers below it only, so a subscriber that did not
    raise it would never be woken by a Go or C++ producer."""
    with Publisher.create(ring_name, Message, capacity=8, max_subscribers=4) as pub:
        high = lambda: int(pub._w32.item(tachyon._abi.OFF_TABLE_HIGH // 4))  # noqa: E731
        assert high() == 0
        a = Subscriber.attach(ring_name, Message)
        b = Subscriber.attach(ring_name, Message)
        assert (a.index, b.index, high()) == (0, 1, 2)
        b.close()
        a.close()
        assert high() == 2, "never decreases"
        with Subscriber.attach(ring_name, Message) as c:
            assert (c.index, high()) == (0, 2)


def test_protected_batch_of_an_evicted_subscriber_is_overwritten(ring_name: str) -> None:
    """An unlimited subscriber of a block ring skips the per-slot stamp checks
    of its batches and checks its eviction word at release instead (ABI §8.5
    step 4): a batch held past the liveness timeout is evicted, then
    overwritten, and its release says so."""
    with Publisher.create(ring_name, Message, capacity=8, batch=1, liveness_timeout=0.3, spin=0) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            pub.publish_array(records(range(8)))
            b = sub.recv_batch()
            assert len(b) == 8
            pub.publish_array(records(range(8, 16)))  # waits 0.3 s, evicts, overwrites the borrowed slots
            assert pub.evictions == 1
            with pytest.raises(Overwritten):
                b.release()
            assert (sub.received, sub.dropped) == (0, 8)
            with pytest.raises(tachyon.Evicted):
                sub.recv(timeout=1)
