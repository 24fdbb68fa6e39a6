"""Across processes and languages: pypeer, the Go peer, shared tables."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from .support import Message, Tick, finish, pypeer_argv, records, start

import tachyon
from tachyon import Publisher, Subscriber

N = 200_000


def wait_registered(name: str, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if tachyon.inspect(name).active_subscribers >= n:
                return
        except (tachyon.RingNotFound, tachyon.NotReady):
            pass
        assert time.monotonic() < deadline, f"{n} subscribers never registered on {name}"
        time.sleep(0.005)


def verify_stream(sub: Subscriber, count: int) -> tuple[int, int]:  # type: ignore[type-arg]
    """Receive ``count`` seed messages in batches; check order and payload exactly."""
    expect = 0
    offsets = np.arange(48, dtype=np.uint64) * np.uint64(7)
    while expect < count:
        with sub.recv_batch(timeout=30) as b:
            assert b, "stream stalled"
            seqs = b["seq"]
            assert (seqs == np.arange(expect, expect + len(b), dtype=np.uint64)).all()
            want = ((seqs[:, None] * np.uint64(131) + offsets) & np.uint64(0xFF)).astype(np.uint8)
            assert (b["payload"] == want).all()
            expect += len(b)
            del seqs, want
    return sub.received, sub.dropped


def test_python_to_python_processes(ring_name: str, gen_dir: Path) -> None:
    sub = start(pypeer_argv(gen_dir, "sub", "--ring", ring_name, "--timeout-s", "30"))
    pub = start(pypeer_argv(gen_dir, "pub", "--ring", ring_name, "--count", str(N), "--timeout-s", "30"))
    p, s = finish(pub), finish(sub)
    assert (p["lang"], p["role"], p["published"], p["dropped"]) == ("python", "pub", N, 0)
    assert (s["received"], s["dropped"], s["gaps"], s["torn"], s["reordered"]) == (N, 0, 0, 0, 0)
    assert (s["first"], s["last"]) == (0, N - 1)


def test_go_to_python(ring_name: str, gopeer: Path) -> None:
    pub = start([str(gopeer), "pub", "--ring", ring_name, "--count", str(N), "--timeout-s", "30"])
    with Subscriber.attach(ring_name, Message, timeout=20) as sub:
        assert verify_stream(sub, N) == (N, 0)
        with pytest.raises(tachyon.PublisherClosed):
            sub.recv(timeout=10)
    assert finish(pub)["published"] == N


def test_python_to_go(ring_name: str, gopeer: Path) -> None:
    sub = start([str(gopeer), "sub", "--ring", ring_name, "--timeout-s", "30"])
    with Publisher.create(ring_name, Message, capacity=4096, batch=64, timeout=30) as pub:
        pub.wait_subscribers(1, timeout=20)
        for lo in range(0, N, 10_000):
            assert pub.publish_array(make_seed(lo, lo + 10_000)) == 10_000
    s = finish(sub)
    assert (s["lang"], s["received"], s["gaps"], s["torn"], s["reordered"], s["last"]) == ("go", N, 0, 0, 0, N - 1)


def make_seed(lo: int, hi: int) -> np.ndarray:  # type: ignore[type-arg]
    arr = records(range(lo, hi))
    arr["timestamp_ns"] = time.time_ns()
    return arr


def test_go_and_python_subscribers_share_the_table(ring_name: str, gopeer: Path) -> None:
    with Publisher.create(ring_name, Message, capacity=1024, max_subscribers=2, timeout=30) as pub:
        gosub = start([str(gopeer), "sub", "--ring", ring_name, "--timeout-s", "30"])
        wait_registered(ring_name, 1)
        with Subscriber.attach(ring_name, Message) as pysub:
            assert pysub.index == 1  # the Go subscriber holds entry 0
            with pytest.raises(tachyon.TableFull, match="all 2 entries have live owners"):
                Subscriber.attach(ring_name, Message)
            late = subprocess.run([str(gopeer), "sub", "--ring", ring_name, "--timeout-s", "5"],
                                  capture_output=True, text=True, timeout=30)
            assert late.returncode == 1 and "table full" in late.stderr
            pub.publish_array(make_seed(0, 1000))
            pub.flush()
            got: list[int] = []
            while len(got) < 1000:
                with pysub.recv_batch(timeout=10) as b:
                    got += b["seq"].tolist()
            assert got == list(range(1000))
        pub.close()
        s = finish(gosub)
        assert (s["received"], s["gaps"], s["torn"]) == (1000, 0, 0)


@pytest.mark.parametrize("mode", ["batches", "slow"])
def test_go_drop_oldest_to_lossy_python(ring_name: str, gopeer: Path, gen_dir: Path, mode: str) -> None:
    count = 300_000 if mode == "batches" else 20_000
    argv = ["sub", "--ring", ring_name, "--max-lag", "256", "--timeout-s", "30"]
    if mode == "slow":
        argv += ["--slow-us", "20"]
    sub = start(pypeer_argv(gen_dir, *argv))
    pub = start([str(gopeer), "pub", "--ring", ring_name, "--count", str(count), "--capacity", "1024",
                 "--policy", "drop_oldest", "--timeout-s", "30"])
    p, s = finish(pub), finish(sub)
    assert p["published"] == count
    assert s["torn"] == 0 and s["reordered"] == 0
    assert s["received"] + s["dropped"] == count
    assert s["dropped"] == s["gaps"]
    if mode == "slow":
        assert s["dropped"] > 0, "the slow reader should have been lapped"


def test_python_drop_oldest_to_lossy_go(ring_name: str, gopeer: Path, gen_dir: Path) -> None:
    count = 300_000
    sub = start([str(gopeer), "sub", "--ring", ring_name, "--max-lag", "128", "--slow-us", "5", "--timeout-s", "30"])
    pub = start(pypeer_argv(gen_dir, "pub", "--ring", ring_name, "--count", str(count), "--capacity", "512",
                            "--batch", "8", "--policy", "drop_oldest", "--timeout-s", "30"))
    p, s = finish(pub), finish(sub)
    assert p["published"] == count
    assert (s["torn"], s["reordered"]) == (0, 0)
    assert s["received"] + s["dropped"] == count and s["dropped"] == s["gaps"] > 0


def test_echo_round_trips(ring_name: str, gen_dir: Path) -> None:
    ping, pong = ring_name, ring_name + "-pong"
    echo = start(pypeer_argv(gen_dir, "echo", "--ping", ping, "--pong", pong, "--timeout-s", "30"))
    try:
        with Publisher.create(ping, Message, capacity=64, batch=1) as pub:
            back = Subscriber.attach(pong, Message, timeout=20)
            pub.wait_subscribers(1, timeout=20)
            with back:
                for i in range(500):
                    m = Message(seq=i, timestamp_ns=i * 10, payload=tuple((i + k) & 0xFF for k in range(48)))
                    pub.publish(m)
                    assert back.recv(timeout=10) == m
                pub.close()
                with pytest.raises(tachyon.PublisherClosed):
                    back.recv(timeout=10)
        s = finish(echo)
        assert (s["role"], s["ring"], s["echoed"]) == ("echo", ping, 500)
    finally:
        echo.kill()
        for n in (ping, pong):
            try:
                tachyon.remove(n)
            except tachyon.TachyonError:
                pass


def test_pypeer_refuses_another_message_type(ring_name: str, gen_dir: Path) -> None:
    with Publisher.create(ring_name, Tick, capacity=16):
        r = subprocess.run(pypeer_argv(gen_dir, "sub", "--ring", ring_name, "--timeout-s", "5"),
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    msg = r.stderr.lower()
    assert ring_name in msg and "fingerprint" in msg
    assert f"{Tick.FINGERPRINT:x}" in msg and f"{Message.FINGERPRINT:x}" in msg
    assert "traceback" not in msg


def test_pypeer_usage_and_missing_module(tmp_path: Path, gen_dir: Path) -> None:
    r = subprocess.run(pypeer_argv(gen_dir, "sub"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--ring" in r.stderr
    r = subprocess.run(pypeer_argv(tmp_path, "sub", "--ring", "t-py-none"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "tachyon-gen generate --py-out" in r.stderr


def test_pypeer_sub_gives_up_on_an_idle_live_ring(ring_name: str, gen_dir: Path) -> None:
    """Issue 14 finding 4: like the Go and C++ peers, sub gives up (exit 1)
    once --timeout-s has passed twice over, even while the publisher lives."""
    with Publisher.create(ring_name, Message, capacity=16):
        start_t = time.monotonic()
        r = subprocess.run(pypeer_argv(gen_dir, "sub", "--ring", ring_name, "--timeout-s", "0.5"),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        took = time.monotonic() - start_t
    assert r.returncode == 1 and r.stdout == ""
    assert f"receive '{ring_name}': timeout" in r.stderr and "traceback" not in r.stderr.lower()
    assert took >= 1.0  # twice the timeout: once to attach, once to receive


def test_pypeer_takes_a_ring_name_starting_with_a_dash(ring_name: str, gen_dir: Path) -> None:
    """``--ring -x`` is a value, as Go's flag package reads it (argparse would not)."""
    name = "-" + ring_name
    sub = start(pypeer_argv(gen_dir, "sub", "--ring", name, "--timeout-s", "30"))
    pub = start(pypeer_argv(gen_dir, "pub", "--ring", name, "--count", "1000", "--timeout-s", "30"))
    try:
        p, s = finish(pub), finish(sub)
    finally:
        for proc in (pub, sub):
            proc.kill()
            proc.wait()
        if os.path.lexists(f"/dev/shm/{name}"):
            os.unlink(f"/dev/shm/{name}")
    assert (p["ring"], p["published"]) == (name, 1000)
    assert (s["ring"], s["received"], s["gaps"]) == (name, 1000, 0)


def test_pypeer_capacity_0_names_the_capacity(ring_name: str, gen_dir: Path) -> None:
    """v1 said 'batch 64 outside [1, 0]': the field at fault is the capacity."""
    r = subprocess.run(pypeer_argv(gen_dir, "pub", "--ring", ring_name, "--count", "1", "--capacity", "0"),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert f"create '{ring_name}': invalid options: capacity 0 is not a power of two" in r.stderr
    assert "batch" not in r.stderr


def test_python_to_go_past_2_63(ring_name: str, gopeer: Path) -> None:
    """A Python ring whose indices are near 2**64 (stamps 2i+2 wrap modulo
    2**64): the Go subscriber reads it exactly as the Python one does."""
    sub = start([str(gopeer), "sub", "--ring", ring_name, "--timeout-s", "30"])
    with Publisher.create(ring_name, Message, capacity=1024, batch=64, timeout=30) as pub:
        near = (1 << 64) - (1 << 20)
        pub._cursor = pub._published = near
        pub._w64[pub._i_tail] = near
        pub.wait_subscribers(1, timeout=20)
        for lo in range(0, 50_000, 10_000):
            assert pub.publish_array(make_seed(lo, lo + 10_000)) == 10_000
    s = finish(sub)
    assert (s["received"], s["gaps"], s["torn"], s["reordered"], s["first"], s["last"]) == (50_000, 0, 0, 0, 0, 49_999)
