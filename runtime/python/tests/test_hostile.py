"""What other processes on the host can do to a ring (issue 14, ABI §2, §9, §10, §11).

* A subscriber that stalls while holding the registry lock, and a read-only
  process of another uid that holds the registry lock and read locks on
  every range, cannot keep a Block publisher past its liveness bound.
* A read lock on a dead publisher's range does not make it look alive:
  subscribers report "publisher dead", ``remove`` removes the ring.
* A FIFO, a Unix socket, a character device or a directory at a ring's name
  is refused at once, named, by create, attach, inspect and remove.
* Indices past 2**63 (near 2**64) work as u64 arithmetic, as in Go and C++.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from .support import Message, helper, records

import tachyon
from tachyon import Evicted, InsecureSegment, Publisher, PublisherDead, RingExists, Subscriber
from tachyon import _abi as abi

F_OFD_SETLK = 37


def read_lock(fd: int, start: int, length: int) -> None:
    """Take an OFD read lock, which anyone who can open the file read-only can
    (on a range nobody holds a write lock on)."""
    fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, start, length, 0))


def lock_ranges(name: str) -> list[tuple[int, int]]:
    """The producer's range and every entry's: the liveness ranges a reader may try to lock."""
    g = tachyon.inspect(name)
    geo = abi.compute_geometry(g.message_size, g.message_align, g.capacity, g.max_subscribers, g.slot_layout == "line")
    return [(abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)] + [
        (geo.entry_offset(i), abi.ENTRY_SIZE) for i in range(geo.max_subs)
    ]


# -- a stalled subscriber with locks -----------------------------------------


def test_stalled_subscriber_holding_the_registry_lock_is_evicted(ring_name: str) -> None:
    """v1 needed the registry lock to evict: this publisher waited until its own timeout."""
    liveness = 0.5
    with Publisher.create(
        ring_name, Message, capacity=8, batch=1, liveness_timeout=liveness, timeout=liveness + 5, spin=0
    ) as pub:
        with Subscriber.attach(ring_name, Message) as stalled:
            fcntl.flock(stalled._seg.fd, fcntl.LOCK_EX)  # held, and it never reads
            pub.publish_array(records(range(8)))
            start = time.monotonic()
            assert pub.publish_array(records(range(8, 16))) == 8  # no RingTimeout: evicted first
            assert pub.evictions == 1
            assert time.monotonic() - start < liveness + 4
            with pytest.raises(Evicted, match=ring_name):
                stalled.recv(timeout=5)


def nobody_python() -> str:
    """A Python interpreter the ``nobody`` user can execute (ours may sit in a private home)."""
    seen: list[str] = []
    for cand in [os.path.realpath(sys.executable), shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"]:
        if not cand or cand in seen:
            continue
        seen.append(cand)
        try:
            r = subprocess.run([cand, "-c", "pass"], user="nobody", capture_output=True, timeout=30)
        except OSError:
            continue  # e.g. under a home directory nobody cannot enter
        if r.returncode == 0:
            return cand
    pytest.fail(f"no Python interpreter the nobody user can run (tried {seen}); the other-uid tests need one")


@pytest.fixture
def as_nobody() -> Iterator[Callable[[str, str], subprocess.Popen[str]]]:
    """Start a child as ``nobody`` that opens a ring read-only and holds locks on it."""
    if os.geteuid() != 0:
        pytest.skip("running a child as another uid needs root (the CI and the dev machine run as root)")
    python = nobody_python()
    children: list[subprocess.Popen[str]] = []

    def start(name: str, code: str) -> subprocess.Popen[str]:
        prelude = f"import fcntl, os, struct, sys, time\nfd = os.open('/dev/shm/{name}', os.O_RDONLY | os.O_NONBLOCK)\n"
        child = subprocess.Popen([python, "-c", prelude + textwrap.dedent(code)], user="nobody",
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        children.append(child)
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == "locked", f"the nobody child did not lock: {line!r} {child.stderr.read() if child.stderr else ''}"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def test_read_only_other_uid_holding_every_lock_cannot_hold_the_publisher(
    ring_name: str, as_nobody: Callable[[str, str], subprocess.Popen[str]]
) -> None:
    """A 0644 ring: another uid may open it read-only, flock it and read-lock
    every range. v1: the publisher could not evict (no registry lock) and a
    reader's lock made the producer's range look held."""
    liveness = 0.5
    with Publisher.create(
        ring_name, Message, capacity=8, batch=1, mode=0o644, liveness_timeout=liveness, timeout=liveness + 5, spin=0
    ) as pub:
        stalled = Subscriber.attach(ring_name, Message)
        ranges = lock_ranges(ring_name)
        # Read locks on every range not write-locked by a live owner (the
        # others cannot be had); the registry lock on top.
        child = as_nobody(
            ring_name,
            f"""
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = 0
            for start, length in {ranges!r}:
                try:
                    fcntl.fcntl(fd, {F_OFD_SETLK}, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, start, length, 0))
                    held += 1
                except BlockingIOError:
                    pass
            print("locked", flush=True)
            print(held, flush=True)
            time.sleep(60)
            """,
        )
        assert child.stdout is not None
        assert int(child.stdout.readline()) == len(ranges) - 2  # all but the producer's and the subscriber's
        pub.publish_array(records(range(8)))
        start = time.monotonic()
        assert pub.publish_array(records(range(8, 16))) == 8  # the stalled subscriber was evicted
        assert pub.evictions == 1
        assert time.monotonic() - start < liveness + 4
        st = tachyon.inspect(ring_name)
        assert st.producer_alive and [s.state for s in st.subscribers] == ["evicted"]
        with pytest.raises(Evicted):
            stalled.recv(timeout=5)
        stalled.close()  # the registry lock is held elsewhere: it only drops its liveness lock
        assert [s.state for s in tachyon.inspect(ring_name).subscribers] == ["dead"]
        # What the lock holder can still do (ABI §11, not defended): deny new
        # registrations, with an error naming the ring.
        with pytest.raises(tachyon.RingTimeout, match=f"attach '{ring_name}': registry lock"):
            Subscriber.attach(ring_name, Message)


# -- a fake read lock on a dead publisher ------------------------------------

def test_read_lock_on_a_dead_publisher_does_not_fake_liveness(ring_name: str) -> None:
    child = helper(
        f"""
        pub = tachyon.Publisher.create({ring_name!r}, Message, capacity=256, batch=16)
        pub.wait_subscribers(1, timeout=20)
        arr = np.zeros(100, dtype=Message.DTYPE); arr["seq"] = np.arange(100)
        pub.publish_array(arr)
        pub.flush()
        print("published", flush=True)
        time.sleep(60)
        """
    )
    locker = -1
    try:
        with Subscriber.attach(ring_name, Message, timeout=20) as sub:
            assert child.stdout is not None and child.stdout.readline().strip() == "published"
            child.kill()
            child.wait(10)
            # The range is free now: anyone who can read the file may take a
            # read lock on it. v1's probe counted it as the publisher's.
            locker = os.open(f"/dev/shm/{ring_name}", os.O_RDONLY)
            read_lock(locker, abi.PROD_LOCK_START, abi.PROD_LOCK_LEN)
            seqs: list[int] = []
            with pytest.raises(PublisherDead, match=f"receive '{ring_name}': publisher dead"):
                while True:
                    with sub.recv_batch(timeout=5) as b:
                        assert b, "no 'publisher dead' within 5 s: the read lock made it look alive"
                        seqs += b["seq"].tolist()
            assert seqs == list(range(100))
        assert not tachyon.inspect(ring_name).producer_alive
        tachyon.remove(ring_name)  # with the read lock still held
        assert not os.path.exists(f"/dev/shm/{ring_name}")
    finally:
        if locker >= 0:
            os.close(locker)
        child.kill()
        child.wait()


# -- special files at the name -----------------------------------------------


def make_fifo(path: str) -> Any:
    os.mkfifo(path, 0o600)
    return None


def make_socket(path: str) -> Any:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    return s


def make_chardev(path: str) -> Any:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root (the CI and the dev machine run as root)")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
    return None


def make_dir(path: str) -> Any:
    os.mkdir(path, 0o700)
    return None


SQUATTERS = {
    "fifo": (make_fifo, "a FIFO (named pipe)"),
    "socket": (make_socket, "a Unix socket"),
    "chardev": (make_chardev, "a character device"),
    "directory": (make_dir, "a directory"),
}


def at_once(op: Callable[[], object]) -> BaseException | None:
    """Run ``op`` in a daemon thread; fail if it is still running after 5 s (a hang)."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            op()
            out.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert out, f"{op} still blocked after 5 s: it waited on what squats on the name"
    return out[0]


@pytest.mark.parametrize("kind", sorted(SQUATTERS))
def test_special_file_at_the_name_is_refused_at_once(ring_name: str, kind: str) -> None:
    path = f"/dev/shm/{ring_name}"
    make, what = SQUATTERS[kind]
    keep = make(path)
    try:
        named = f"/dev/shm/{ring_name} is {what}, not a ring segment"
        e = at_once(lambda: Publisher.create(ring_name, Message, capacity=8))
        assert isinstance(e, RingExists) and named in str(e), e
        for op in (lambda: Subscriber.attach(ring_name, Message), lambda: tachyon.inspect(ring_name),
                   lambda: tachyon.remove(ring_name)):  # fmt: skip
            e = at_once(op)
            assert isinstance(e, InsecureSegment) and named in str(e), e
        assert at_once(lambda: tachyon.remove_stale(ring_name)) is None
        assert os.path.lexists(path), "a non-ring file was removed"
    finally:
        if keep is not None:
            keep.close()
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.lexists(path):
            os.unlink(path)


# -- indices past 2**63 --------------------------------------------------------

NEAR = (1 << 64) - (1 << 20)  # past 2**63: 2i+2 no longer fits in 64 bits


def advance(pub: Publisher, index: int) -> None:  # type: ignore[type-arg]
    """Make a fresh ring look as if ``index`` messages had been published (a
    golden/hostile-test device: the producer's counters and the tail)."""
    pub._cursor = pub._published = index
    pub._w64[pub._i_tail] = index


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_indices_near_2_64(ring_name: str, policy: str) -> None:
    """Stamps 2i+2 and every index are u64 modulo 2**64, as in Go and C++ (v1:
    OverflowError). Under drop_oldest the readers are lapped, so the stamps
    that name later indices are decoded near 2**64 too."""
    n = 1000
    chunk = 50 if policy == "block" else 100  # drop_oldest: more than the 64 slots between reads
    with Publisher.create(ring_name, Message, capacity=64, batch=8, policy=policy) as pub:
        advance(pub, NEAR)
        with Subscriber.attach(ring_name, Message) as sub, Subscriber.attach(ring_name, Message, max_lag=16) as lossy:
            got: list[int] = []
            lossy_got: list[int] = []
            arr = records(range(n))
            for lo in range(0, n, chunk):
                assert pub.publish_array(arr[lo : lo + chunk]) == chunk
                pub.flush()
                while b := sub.recv_batch(timeout=0):
                    got += b["seq"].tolist()
                    b.release()
                while (m := lossy.recv(timeout=0)) is not None:
                    lossy_got.append(m.seq)
            if policy == "block":
                assert got == list(range(n)) and sub.dropped == 0
            else:
                assert got == sorted(set(got)) and got[-1] == n - 1 and sub.dropped > 0
            assert sub.received + sub.dropped == n
            assert lossy_got == sorted(set(lossy_got)) and lossy_got[-1] == n - 1 and lossy.dropped > 0
            assert lossy.received + lossy.dropped == n
            sub._flush_stats()
            st = tachyon.inspect(ring_name)
            assert st.published == NEAR + n
            assert st.subscribers[0].head == NEAR + n
            assert st.subscribers[0].received + st.subscribers[0].dropped == n
