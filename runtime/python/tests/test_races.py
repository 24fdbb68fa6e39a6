"""Issue 14's protocol races (5-7), wake-ups at the brink, and the membarrier-less subscriber.

Each interleaving is forced with ``tachyon.subscriber.test_hook``, which
pauses the subscriber at a named step while the test plays the producer:
no sleeps, no luck. Each failed on ABI v1. The Go runtime's
runtime/ring/races_test.go forces the same interleavings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from .support import Message, finish, pypeer_argv, records, start

import tachyon
from tachyon import Publisher, PublisherClosed, RingTimeout, Subscriber
from tachyon import subscriber as subscriber_module


@pytest.fixture
def hook() -> Iterator[Callable[[Callable[[str], None] | None], None]]:
    """Install a test hook (None removes it); removed at the end of the test."""

    def install(fn: Callable[[str], None] | None) -> None:
        subscriber_module.test_hook = fn

    yield install
    subscriber_module.test_hook = None


def once(point: str, fn: Callable[[], None]) -> Callable[[str], None]:
    """A hook that runs ``fn`` the first time ``point`` is reached."""
    done = threading.Event()

    def at(p: str) -> None:
        if p == point and not done.is_set():
            done.set()
            fn()

    return at


def seq_message(seq: int) -> Any:
    return Message(seq=seq, timestamp_ns=seq, payload=tuple((seq * 131 + 7 * k) & 0xFF for k in range(48)))


def publish_until_blocked(pub: Publisher, seq: int) -> int:  # type: ignore[type-arg]
    """Publish messages seq, seq+1, ... until a Block publisher with a short
    timeout reports that it waits; return the next seq."""
    while True:
        try:
            pub.publish(seq_message(seq))
        except RingTimeout:
            return seq
        seq += 1


def drain(sub: Subscriber) -> list[int]:  # type: ignore[type-arg]
    out = []
    while (m := sub.recv(timeout=0)) is not None:
        out.append(m.seq)
    return out


def test_race_5_resume_provisional_head(ring_name: str, hook: Any) -> None:
    """A named subscriber resumes at its last position while the producer,
    held back by another subscriber, rescans between the registrant's two
    head stores. On v1 the first store put the live tail in the entry: the
    producer's limit ran a lap past the backlog and overwrote it."""
    capacity = 16
    with Publisher.create(ring_name, Message, capacity=capacity, batch=1, max_subscribers=2, timeout=0.05,
                          liveness_timeout=3600) as pub:  # fmt: skip
        with Subscriber.attach(ring_name, Message) as other:
            named = Subscriber.attach(ring_name, Message, subscriber_name="risk", start="last")
            for i in range(10):
                pub.publish(seq_message(i))
            assert [m.seq for m in iter(lambda: named.recv(timeout=0), None)] == list(range(10))
            named.close()  # its last position: 10
            for i in range(10, 14):
                pub.publish(seq_message(i))  # tail 14; the backlog is 10..13
            drain(other)

            stopped_at = -1

            def fill() -> None:
                # While the returning subscriber joins, the producer fills the
                # ring as far as it may: it rescans at its limit (the other
                # subscriber drained everything) and sees the joining entry.
                nonlocal stopped_at
                drain(other)
                stopped_at = publish_until_blocked(pub, 14)

            hook(once("register:joining", fill))
            with Subscriber.attach(ring_name, Message, subscriber_name="risk", start="last") as back:
                hook(None)
                assert stopped_at == 10 + capacity, "the producer stops a lap past the backlog, not past the tail"
                start = back._cursor
                assert start <= 10 + 2 * pub.batch, f"start {start}: the backlog 10..13 was overwritten"
                assert back.dropped == start - 10  # only the handshake's margin
                got = drain(back)
                assert got == list(range(start, stopped_at))
                drain(other)
                for i in range(stopped_at, stopped_at + 4):
                    pub.publish(seq_message(i))
                assert drain(back) == list(range(stopped_at, stopped_at + 4))
                assert back.received + back.dropped == stopped_at + 4


def test_race_6_resume_ahead_of_tail(ring_name: str) -> None:
    """A named subscriber that read committed messages ahead of the published
    tail (the stamp fast path, batch 8) and closed keeps its position and
    counters. On v1 it started fresh and was sent the same messages again."""
    with Publisher.create(ring_name, Message, capacity=64, batch=8) as pub:
        sub = Subscriber.attach(ring_name, Message, subscriber_name="audit", start="last")
        for i in range(3):
            pub.publish(seq_message(i))  # committed, not published (batch 8)
        assert tachyon.inspect(ring_name).published == 0
        assert drain(sub) == [0, 1, 2]
        sub.close()
        with Subscriber.attach(ring_name, Message, subscriber_name="audit", start="last") as back:
            assert back.received == 3, "counters carried over"
            pub.publish(seq_message(3))
            pub.flush()
            assert drain(back) == [3], "resumed where it stopped, nothing delivered twice"


@pytest.mark.parametrize("fences", ["strong", "auto"])
@pytest.mark.parametrize("max_lag", [0, 32], ids=["unlimited", "lossy"])
def test_race_7_held_back_message(ring_name: str, hook: Any, max_lag: int, fences: str) -> None:
    """A batching producer commits a message and holds it back (nobody sleeps
    yet); then the subscriber parks. On v1 it re-checked only the tail: an
    unlimited subscriber got the message after the 200 ms watchdog, a lossy
    one not until the next publication."""
    with Publisher.create(ring_name, Message, capacity=64, batch=8, fences=fences) as pub:  # type: ignore[arg-type]
        with Subscriber.attach(ring_name, Message, max_lag=max_lag, spin=0) as sub:
            hook(once("wait:park", lambda: pub.publish(seq_message(0))))
            m = sub.recv(timeout=5)
            assert m is not None and m.seq == 0
            assert tachyon.inspect(ring_name).published == 0, "the message was still held back"
            assert sub.watchdog_fires == 0, "delivered without waiting for the watchdog"


def test_close_at_the_brink_is_not_lost(ring_name: str, hook: Any) -> None:
    """A close that lands after the subscriber's last check and before it
    sleeps wakes it: the notify eventcount changed. On v1 the close woke the
    tail's futex word without changing it: the waiter slept until the watchdog."""
    pub = Publisher.create(ring_name, Message, capacity=8)
    with Subscriber.attach(ring_name, Message, spin=0) as sub:
        hook(once("wait:futex", pub.close))
        with pytest.raises(PublisherClosed):
            sub.recv(timeout=5)
        assert sub.watchdog_fires == 0, "woken, not rescued by the watchdog"


def test_joining_is_not_registered(ring_name: str, hook: Any) -> None:
    """While a subscriber registers, the publisher does not count it; once it
    does, every message published afterwards reaches it. On v1 an entry was
    active before its start index was fixed (the --wait-subscribers race)."""
    with Publisher.create(ring_name, Message, capacity=1024) as pub:
        joining, proceed = threading.Event(), threading.Event()

        def pause(p: str) -> None:
            if p == "register:epoch":
                joining.set()
                proceed.wait(10)

        hook(pause)
        result: list[Any] = []
        t = threading.Thread(target=lambda: result.append(Subscriber.attach(ring_name, Message)))
        t.start()
        assert joining.wait(10)
        assert pub.subscriber_count() == 0, "a joining entry is not registered yet"
        assert [s.state for s in tachyon.inspect(ring_name).subscribers] == ["joining"]
        pub.publish_array(records(range(5)))  # published while it joins: not promised to it
        with pytest.raises(RingTimeout):
            pub.wait_subscribers(1, timeout=0.03)
        proceed.set()
        t.join(10)
        hook(None)
        with result[0] as sub:
            assert pub.wait_subscribers(1, timeout=10) == 1
            first = pub.published
            pub.publish_array(records(range(first, first + 100)))
            pub.flush()
            got = drain(sub)
            assert got[-100:] == list(range(first, first + 100)) and got == sorted(got)


# -- a subscriber that cannot issue membarrier ---------------------------------


def asymmetric(ring_name: str, **kwargs: Any) -> Publisher:  # type: ignore[type-arg]
    try:
        return Publisher.create(ring_name, Message, fences="asymmetric", **kwargs)
    except tachyon.InvalidOptions as e:
        pytest.skip(f"this process cannot register for membarrier, so it creates only strong rings: {e}")


def strong_env() -> dict[str, str]:
    return {**os.environ, "TACHYON_FENCES": "strong"}


@pytest.mark.parametrize("lang", ["python", "go"])
def test_membarrier_less_subscriber_on_an_asymmetric_ring(
    ring_name: str, gen_dir: Path, gopeer: Path, lang: str
) -> None:
    """A subscriber process with TACHYON_FENCES=strong joins an asymmetric
    Python ring with the STRONG flag; the producer's scan (wait_subscribers)
    acknowledges it and fences for it from then on; the stream is complete."""
    n = 200_000
    with asymmetric(ring_name, capacity=1024, batch=64, timeout=60) as pub:
        assert not pub.strong_fences
        argv = ["sub", "--ring", ring_name, "--timeout-s", "60"]
        cmd = pypeer_argv(gen_dir, *argv) if lang == "python" else [str(gopeer), *argv]
        sub = start(cmd, env=strong_env())
        try:
            pub.wait_subscribers(1, timeout=60)
            st = tachyon.inspect(ring_name)
            assert st.fences == "asymmetric" and st.subscribers[0].strong_fences
            assert pub.strong_fences and st.producer_strong_fences, "the producer fences for it"
            for lo in range(0, n, 10_000):
                assert pub.publish_array(records(range(lo, lo + 10_000))) == 10_000
            pub.close()
            s = finish(sub)
        finally:
            sub.kill()
            sub.wait()
    assert (s["received"], s["gaps"], s["torn"], s["reordered"]) == (n, 0, 0, 0)


def test_membarrier_less_python_subscriber_of_a_go_ring(ring_name: str, gen_dir: Path, gopeer: Path) -> None:
    """The Go peer creates an asymmetric ring (where it can); pypeer joins it
    as a membarrier-less process and receives everything."""
    n = 200_000
    pub = start([str(gopeer), "pub", "--ring", ring_name, "--count", str(n), "--timeout-s", "60"])
    sub = start(pypeer_argv(gen_dir, "sub", "--ring", ring_name, "--timeout-s", "60"), env=strong_env())
    try:
        s, p = finish(sub), finish(pub)
    finally:
        for proc in (pub, sub):
            proc.kill()
            proc.wait()
    assert p["published"] == n
    assert (s["received"], s["gaps"], s["torn"], s["reordered"]) == (n, 0, 0, 0)


def test_tachyon_fences_strong_makes_a_creator_strong(ring_name: str, gen_dir: Path) -> None:
    """TACHYON_FENCES=strong in a creator's environment: a strong ring, whatever membarrier offers."""
    pub = start(pypeer_argv(gen_dir, "pub", "--ring", ring_name, "--count", "1000", "--timeout-s", "60"), env=strong_env())
    try:
        with Subscriber.attach(ring_name, Message, timeout=30) as sub:
            st = sub.stats()
            assert (st.fences, st.producer_strong_fences) == ("strong", True)
            assert sub.strong_fences  # a strong ring: every side fences
            got = 0
            with pytest.raises(PublisherClosed):
                while True:
                    with sub.recv_batch(timeout=30) as b:
                        assert b
                        got += len(b)
            assert got == 1000
        assert finish(pub)["published"] == 1000
    finally:
        pub.kill()
        pub.wait()
