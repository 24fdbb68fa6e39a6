"""Waiting, closing and dying: futex sleeps, PublisherClosed, PublisherDead, reclaim."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from .support import Message, helper, records

import tachyon
from tachyon import Publisher, PublisherClosed, PublisherDead, Subscriber

def test_close_drains_then_reports_closed(ring_name: str) -> None:
    pub = Publisher.create(ring_name, Message, capacity=64)  # batch 32: nothing published yet
    sub = Subscriber.attach(ring_name, Message, max_lag=64)
    pub.publish_array(records(range(10)))
    pub.close()
    assert not os.path.exists(f"/dev/shm/{ring_name}")  # the owner unlinked the name
    assert [m.seq for m in sub] == list(range(10))  # drained, then the iteration ends
    with pytest.raises(PublisherClosed, match=ring_name):
        sub.recv()
    with pytest.raises(PublisherClosed):
        sub.recv_batch()
    assert sub.received == 10 and sub.dropped == 0
    sub.close()
    with pytest.raises(tachyon.HandleClosed):
        sub.recv()


def test_idle_subscriber_sleeps(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64), Subscriber.attach(ring_name, Message) as sub:
        wall, cpu = time.monotonic(), time.process_time()
        assert sub.recv(timeout=1.0) is None
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        assert wall >= 0.99
        assert cpu < 0.1 * wall, f"an idle subscriber used {cpu:.3f}s of CPU in {wall:.3f}s"
        assert sub.watchdog_fires >= 4  # every sleep is bounded by the 200 ms watchdog


def test_sleeping_subscriber_wakes_on_publish(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64, batch=32) as pub:
        with Subscriber.attach(ring_name, Message, max_lag=64) as sub:

            def later() -> None:
                time.sleep(0.3)
                pub.publish(Message(seq=7, timestamp_ns=0, payload=(0,) * 48))  # a sleeper: published now

            t = threading.Thread(target=later)
            start = time.monotonic()
            t.start()
            m = sub.recv(timeout=5)
            elapsed = time.monotonic() - start
            t.join()
            assert m is not None and m.seq == 7
            assert elapsed < 4, elapsed


def test_publisher_killed(ring_name: str) -> None:
    child = helper(
        f"""
        pub = tachyon.Publisher.create({ring_name!r}, Message, capacity=1024, batch=16)
        pub.wait_subscribers(1, timeout=20)
        arr = np.zeros(1000, dtype=Message.DTYPE); arr["seq"] = np.arange(1000)
        pub.publish_array(arr)
        pub.flush()
        print("published", flush=True)
        time.sleep(60)
        """
    )
    try:
        with Subscriber.attach(ring_name, Message, timeout=20) as sub:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "published"
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            killed = time.monotonic()
            seqs: list[int] = []
            with pytest.raises(PublisherDead, match=f"receive '{ring_name}': publisher dead"):
                for batch in sub.batches():
                    seqs += batch["seq"].tolist()
            noticed = time.monotonic() - killed
            assert seqs == list(range(1000))  # everything published is delivered first
            assert noticed < 3.0, f"noticed the dead publisher after {noticed:.2f}s"
        st = tachyon.inspect(ring_name)
        assert st.producer_state == "active" and not st.producer_alive
        tachyon.remove(ring_name)  # stale: removable
        assert not os.path.exists(f"/dev/shm/{ring_name}")
    finally:
        child.kill()
        child.wait()


def test_live_ring_is_not_removed(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8):
        with pytest.raises(tachyon.RingInUse, match="publisher is alive"):
            tachyon.remove(ring_name)
        assert tachyon.remove_stale(ring_name) == []


def test_dead_subscriber_is_reclaimed(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=8, batch=1, liveness_timeout=30, timeout=20) as pub:
        child = helper(
            f"""
            sub = tachyon.Subscriber.attach({ring_name!r}, Message, timeout=20)
            print("attached", flush=True)
            time.sleep(60)
            """
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "attached"
            pub.publish_array(records(range(8)))  # fills the ring: the next publish waits
            threading.Timer(0.3, child.kill).start()
            start = time.monotonic()
            assert pub.publish_array(records(range(8, 16))) == 8
            assert time.monotonic() - start < 10
            assert pub.evictions == 1  # reclaimed as dead (liveness timeout is 30 s)
            # The producer never writes the table: the entry stays, shown
            # dead, until a registrant takes its free liveness lock.
            assert [s.state for s in tachyon.inspect(ring_name).subscribers] == ["dead"]
            with Subscriber.attach(ring_name, Message) as again:
                assert again.index == 0
                assert pub.subscriber_count() == 1
        finally:
            child.kill()
            child.wait()


def test_abandoned_handles_release_their_locks(ring_name: str) -> None:
    pub = Publisher.create(ring_name, Message, capacity=8)
    sub = Subscriber.attach(ring_name, Message)
    assert tachyon.inspect(ring_name).subscribers[0].alive
    del sub  # never closed: its finaliser drops the liveness lock
    assert not tachyon.inspect(ring_name).subscribers[0].alive
    del pub
    assert not tachyon.inspect(ring_name).producer_alive
    tachyon.remove(ring_name)


def test_dead_world_writable_ring_is_removed(ring_name: str) -> None:
    """attach refuses a world-writable ring; remove removes it once its publisher is dead (ABI §10)."""
    pub = Publisher.create(ring_name, Message, capacity=8)
    os.chmod(f"/dev/shm/{ring_name}", 0o666)
    with pytest.raises(tachyon.InsecureSegment, match="world-writable"):
        Subscriber.attach(ring_name, Message)
    del pub  # abandoned: dead, the name stays
    assert tachyon.remove_stale(ring_name) == [ring_name]
    assert not os.path.exists(f"/dev/shm/{ring_name}")
