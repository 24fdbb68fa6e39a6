"""The sealed mode (ABI §14): memfd rings handed over a Unix socket, both directions, across languages."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from .support import Message, Tick, finish, pypeer_argv, records, start

import tachyon
from tachyon import FingerprintMismatch, InsecureSegment, Publisher, PublisherClosed, Subscriber

N = 100_000


@pytest.fixture
def sock_path() -> Iterator[str]:
    """A socket path short enough for sun_path (108 bytes)."""
    d = tempfile.mkdtemp(prefix="tpy-")
    yield f"{d}/ring.sock"
    shutil.rmtree(d, ignore_errors=True)


def assert_sealed(sub: Subscriber) -> None:  # type: ignore[type-arg]
    """Nobody can resize the segment: ftruncate fails with EPERM, to shrink or to grow."""
    fd = sub._seg.fd
    size = os.fstat(fd).st_size
    for new in (0, size // 2, size * 2):
        with pytest.raises(PermissionError):
            os.ftruncate(fd, new)
    assert os.fstat(fd).st_size == size


def take(sub: Subscriber, n: int) -> list[int]:  # type: ignore[type-arg]
    got: list[int] = []
    while len(got) < n:
        with sub.recv_batch(timeout=30) as b:
            assert b, "stream stalled"
            got += b["seq"].tolist()
    return got


def test_python_to_python_in_process(ring_name: str, sock_path: str) -> None:
    with Publisher.create_sealed(ring_name, Message, capacity=256, batch=8) as pub:
        assert pub.sealed and not os.path.exists(f"/dev/shm/{ring_name}"), "a sealed ring is not in /dev/shm"
        with pub.serve(sock_path) as server:
            assert os.path.exists(sock_path) and server.path == sock_path
            with Subscriber.dial(sock_path, Message, timeout=5) as sub:
                # The subscriber reopened the descriptor: its liveness lock
                # belongs to its own open file description, which the
                # publisher's probe sees (with the publisher's it would not).
                assert pub.wait_subscribers(1, timeout=5) == 1
                assert server.served == 1
                assert_sealed(sub)
                with pytest.raises(PermissionError):
                    os.ftruncate(pub._seg.fd, 0)  # not even the publisher
                pub.publish_array(records(range(200)))  # fits: nobody reads meanwhile
                pub.flush()
                assert take(sub, 200) == list(range(200))
                assert sub.name == sock_path and sub.stats().capacity == 256
                pub.close()
                with pytest.raises(PublisherClosed):
                    sub.recv(timeout=5)
        assert server.closed and not os.path.exists(sock_path), "the server unlinked its socket"


def test_mismatch_is_refused_with_both_values(ring_name: str, sock_path: str) -> None:
    with Publisher.create_sealed(ring_name, Message, capacity=16) as pub, pub.serve(sock_path) as server:
        with pytest.raises(FingerprintMismatch) as ei:
            Subscriber.dial(sock_path, Tick)
        e = ei.value
        assert (e.field, e.got, e.want, e.ring) == ("fingerprint", Message.FINGERPRINT, Tick.FINGERPRINT, sock_path)
        assert f"{Message.FINGERPRINT:#x}" in str(e) and f"{Tick.FINGERPRINT:#x}" in str(e)
        assert server.refused == 1 and server.served == 0
        assert pub.subscriber_count() == 0


def test_serve_needs_a_sealed_ring_and_a_free_path(ring_name: str, sock_path: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16) as named:
        with pytest.raises(tachyon.InvalidOptions, match="not a sealed ring"):
            named.serve(sock_path)
    with Publisher.create_sealed(ring_name, Message, capacity=16) as pub:
        Path(sock_path).touch()
        with pytest.raises(tachyon.TachyonError, match=f"bind {sock_path}"):
            pub.serve(sock_path)
        os.unlink(sock_path)
        with pytest.raises(tachyon.TachyonError, match=sock_path):
            Subscriber.dial(sock_path, Message)  # nobody listens: fails at once without a timeout


def test_dial_after_the_publisher_closed(ring_name: str, sock_path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    pub = Publisher.create_sealed(ring_name, Message, capacity=16)
    server = pub.serve(listener)  # a socket of its own: served, closed with the server
    assert server.path is None
    with Subscriber.dial(sock_path, Message) as sub:
        pub.close()  # stops the server
        with pytest.raises(PublisherClosed):
            sub.recv(timeout=5)
    assert server.closed
    with pytest.raises(tachyon.TachyonError, match=sock_path):
        Subscriber.dial(sock_path, Message)


def fake_server(path: str, reply: Callable[[socket.socket], None]) -> threading.Thread:
    """A one-connection server that reads a hello and answers with ``reply``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(32)
                reply(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def okay(msg: Any = Message) -> bytes:
    return struct.pack("<8sIIIIQ", b"TACHOKAY", 2, msg.TYPE_ID, msg.SIZE, msg.ALIGN, msg.FINGERPRINT)


@pytest.mark.parametrize("seals", [0, fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW])
def test_unsealed_descriptor_is_refused(sock_path: str, seals: int) -> None:
    memfd = os.memfd_create("tachyon:fake", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(memfd, 1 << 16)
    if seals:
        fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, seals)
    try:
        t = fake_server(sock_path, lambda c: socket.send_fds(c, [okay()], [memfd]))
        with pytest.raises(InsecureSegment, match=f"dial '{sock_path}': insecure segment: descriptor seals {seals:#x}"):
            Subscriber.dial(sock_path, Message)
        t.join(5)
    finally:
        os.close(memfd)


def test_a_regular_file_descriptor_is_refused(sock_path: str, tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_bytes(bytes(4096))
    fd = os.open(f, os.O_RDWR)
    try:
        t = fake_server(sock_path, lambda c: socket.send_fds(c, [okay()], [fd]))
        with pytest.raises(InsecureSegment, match="descriptor seals"):
            Subscriber.dial(sock_path, Message)
        t.join(5)
    finally:
        os.close(fd)


def test_not_a_ring_socket(sock_path: str) -> None:
    t = fake_server(sock_path, lambda c: c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n   "))
    with pytest.raises(tachyon.CorruptSegment, match="not a Tachyon ring socket"):
        Subscriber.dial(sock_path, Message)
    t.join(5)


def test_another_abi_version_is_named(sock_path: str) -> None:
    reply = struct.pack("<8sIIIIQ", b"TACHNOPE", 3, 1, 64, 8, Message.FINGERPRINT)
    t = fake_server(sock_path, lambda c: c.sendall(reply))
    with pytest.raises(tachyon.UnsupportedVersion, match="the publisher speaks version 3, this client speaks version 2"):
        Subscriber.dial(sock_path, Message)
    t.join(5)


# -- across processes and languages ------------------------------------------------


def test_python_peer_to_python_and_go(ring_name: str, sock_path: str, gen_dir: Path, gopeer: Path) -> None:
    """pypeer pub --sealed serves a Go subscriber (gopeer sub --sealed) and this process."""
    pub = start(pypeer_argv(gen_dir, "pub", "--ring", ring_name, "--count", str(N), "--wait-subscribers", "2",
                            "--sealed", sock_path, "--timeout-s", "60"))  # fmt: skip
    gosub = start([str(gopeer), "sub", "--ring", ring_name, "--sealed", sock_path, "--timeout-s", "60"])
    try:
        with Subscriber.dial(sock_path, Message, timeout=30) as sub:
            assert_sealed(sub)
            assert take(sub, N) == list(range(N))
            with pytest.raises(PublisherClosed):
                sub.recv(timeout=30)
        p, s = finish(pub), finish(gosub)
    finally:
        for proc in (pub, gosub):
            proc.kill()
            proc.wait()
    assert (p["lang"], p["published"]) == ("python", N)
    assert (s["lang"], s["received"], s["gaps"], s["torn"], s["reordered"]) == ("go", N, 0, 0, 0)
    assert not os.path.exists(sock_path), "the publisher removed its socket"


def test_go_peer_to_python(ring_name: str, sock_path: str, gen_dir: Path, gopeer: Path) -> None:
    """gopeer pub --sealed serves pypeer sub --sealed and this process (Subscriber.dial)."""
    pub = start([str(gopeer), "pub", "--ring", ring_name, "--count", str(N), "--wait-subscribers", "2",
                 "--sealed", sock_path, "--timeout-s", "60"])  # fmt: skip
    pysub = start(pypeer_argv(gen_dir, "sub", "--ring", ring_name, "--sealed", sock_path, "--timeout-s", "60"))
    try:
        with Subscriber.dial(sock_path, Message, timeout=30) as sub:
            assert_sealed(sub)  # the Go publisher's seals
            assert take(sub, N) == list(range(N))
            with pytest.raises(PublisherClosed):
                sub.recv(timeout=30)
        p, s = finish(pub), finish(pysub)
    finally:
        for proc in (pub, pysub):
            proc.kill()
            proc.wait()
    assert (p["lang"], p["published"]) == ("go", N)
    assert (s["lang"], s["received"], s["gaps"], s["torn"], s["reordered"]) == ("python", N, 0, 0, 0)


def test_python_publisher_to_go_refuses_another_type(ring_name: str, sock_path: str, gopeer: Path) -> None:
    """A Go subscriber of the seed message dialling a Tick ring: refused, both values named."""
    with Publisher.create_sealed(ring_name, Tick, capacity=16) as pub, pub.serve(sock_path) as server:
        r = subprocess.run([str(gopeer), "sub", "--ring", ring_name, "--sealed", sock_path, "--timeout-s", "5"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 1
        assert f"{Tick.FINGERPRINT:#x}" in r.stderr and f"{Message.FINGERPRINT:#x}" in r.stderr
        assert server.refused == 1
