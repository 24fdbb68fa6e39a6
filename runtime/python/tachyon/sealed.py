"""The sealed mode (ABI §14): a ring in an anonymous, size-sealed memfd, handed over a Unix socket.

The publisher creates the ring in a memfd (``memfd_create`` with
``MFD_ALLOW_SEALING``), initialises it as a named ring would be, and seals
it against shrinking, growing and further sealing: from then on nobody — not
even a process of the same uid — can change its size (``ftruncate`` fails
with EPERM), so no reader can be killed by SIGBUS, and nothing appears in
/dev/shm. A :class:`Server` answers each subscriber's 32-byte *hello* with
the ring's identity and, when it matches, the descriptor (``SCM_RIGHTS``).
The subscriber (:func:`dial`) checks the seals, reopens the descriptor
through ``/proc/self/fd/N`` so that its open file description — and with it
its liveness and registry locks — is its own, validates the header and
registers as in the named mode.

Use it through :meth:`tachyon.Publisher.create_sealed`,
:meth:`tachyon.Publisher.serve` and :meth:`tachyon.Subscriber.dial`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _abi as abi
from ._message import Identity, MessageType, mismatch
from ._segment import Segment, init_segment, map_segment
from .errors import CorruptSegment, InsecureSegment, PublisherClosed, TachyonError, UnsupportedVersion

__all__ = ["HANDSHAKE_SIZE", "SEALS", "Offer", "Server", "create_segment", "dial"]

#: The seals a sealed segment carries; a subscriber refuses a descriptor without all of them.
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
#: Both handshake messages are 32 bytes (§14).
HANDSHAKE_SIZE = 32
#: How long one side waits for the other during a handshake.
HANDSHAKE_TIMEOUT_S = 5.0

_HELLO = b"TACHHELO"
_OKAY = b"TACHOKAY"
_NOPE = b"TACHNOPE"
# magic, abi_version u32, type_id u32, msg_size u32, msg_align u32, fingerprint u64
_SHAPE = struct.Struct("<8sIIIIQ")


def _encode(magic: bytes, ident: Identity) -> bytes:
    return _SHAPE.pack(magic, abi.ABI_VERSION, ident.type_id, ident.size, ident.align, ident.fingerprint)


def _decode(raw: bytes) -> tuple[bytes, int, Identity]:
    magic, version, type_id, size, align, fingerprint = _SHAPE.unpack(raw)
    return magic, version, Identity(fingerprint, type_id, size, align)


def create_segment(name: str, header: abi.Header, mode: int) -> tuple[Segment, Offer]:
    """Create, initialise and seal a memfd ring; return it and what a server hands out."""
    op = "create sealed"
    try:
        fd = os.memfd_create(f"tachyon:{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError as e:
        raise TachyonError(f"{op} {name!r}: memfd_create: {e.strerror or e}", ring=name) from None
    seg = init_segment(op, name, fd, header, mode)
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        # The server hands out its own descriptor (the same open file
        # description), so it never touches the publisher's.
        dup = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)
    except OSError as e:
        seg.close()
        raise TachyonError(f"{op} {name!r}: seal: {e.strerror or e}", ring=name) from None
    return seg, Offer(dup, Identity.of_header(header), name)


class Offer:
    """What a sealed publisher hands out: a descriptor of its segment and the
    ring's identity, guarded so that the publisher's close (on its thread)
    and a server (on another) never race over the descriptor."""

    def __init__(self, fd: int, identity: Identity, name: str) -> None:
        self._lock = threading.Lock()
        self._fd = fd
        self.identity = identity
        self.name = name

    def answer(self, conn: socket.socket, count: Callable[[bool], None]) -> None:
        """Perform one handshake on an accepted connection. ``count`` learns
        whether the descriptor goes out, before the reply is sent."""
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        raw = _read_exactly(conn, HANDSHAKE_SIZE)
        ours = self.identity
        if raw is None:
            count(False)
            return
        magic, version, theirs = _decode(raw)
        if magic != _HELLO or version != abi.ABI_VERSION or theirs != ours:
            count(False)
            conn.sendall(_encode(_NOPE, ours))
            return
        with self._lock:
            if self._fd < 0:  # the publisher closed
                count(False)
                conn.sendall(_encode(_NOPE, ours))
                return
            count(True)
            socket.send_fds(conn, [_encode(_OKAY, ours)], [self._fd])

    def close(self) -> None:
        """Stop handing the descriptor out (the publisher closed)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _read_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


class Server:
    """Serves one sealed ring's descriptor on a Unix stream socket, from a daemon thread.

    Made by :meth:`tachyon.Publisher.serve`. Every connection performs the
    handshake: a subscriber of another message type (or ABI version) is
    refused with the ring's values, so both sides can name both. Closing the
    server (or its publisher) stops it; a socket path it bound is unlinked
    if it still names that socket.
    """

    def __init__(self, offer: Offer, where: str | socket.socket, backlog: int = 16) -> None:
        self._offer = offer
        self._path: str | None = None
        self._inode: tuple[int, int] | None = None
        if isinstance(where, socket.socket):
            sock = where
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(where)
            except OSError as e:
                sock.close()
                raise TachyonError(
                    f"serve {offer.name!r}: bind {where}: {e.strerror or e}", ring=offer.name
                ) from None
            self._path = where
            st = os.stat(where)
            self._inode = (st.st_dev, st.st_ino)
        sock.listen(backlog)
        self._sock = sock
        self._closed = False
        self.served = 0
        """Subscribers that were handed the descriptor."""
        self.refused = 0
        """Connections refused (another message type, ABI version, a closed publisher, or no hello)."""
        self._thread = threading.Thread(target=self._run, name=f"tachyon-serve-{offer.name}", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str | None:
        """The socket path this server bound (None for a socket it was given)."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed:
                    return
                time.sleep(0.01)  # e.g. EMFILE: back off rather than spin
                continue
            with conn:
                try:
                    self._offer.answer(conn, self._count)
                except OSError:
                    pass  # the subscriber went away, or sent nothing in time

    def _count(self, served: bool) -> None:
        if served:
            self.served += 1
        else:
            self.refused += 1

    def close(self) -> None:
        """Stop accepting, close the socket, unlink the path it bound."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux: EINVAL)
        except OSError:
            pass
        self._thread.join(HANDSHAKE_TIMEOUT_S + 1)
        self._sock.close()
        if self._path is not None and self._inode is not None:
            try:
                st = os.lstat(self._path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self._path)
            except OSError:
                pass

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._path if self._path is not None else "a given socket"
        state = "closed" if self._closed else f"served={self.served}"
        return f"<tachyon.sealed.Server {self._offer.name!r} on {where} {state}>"


def dial(
    path: str, message: MessageType[Any], *, ready_timeout: float, allow_foreign: bool, timeout: float | None
) -> Segment:
    """Connect to a sealed ring's server at ``path`` and return its validated segment.

    ``timeout`` (seconds) retries while nobody listens at ``path`` yet;
    None fails at once.
    """
    op = "dial"
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            sock.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            if deadline is None or time.monotonic() >= deadline:
                raise TachyonError(f"{op} {path!r}: {e.strerror or e}", ring=path) from None
            time.sleep(0.005)
        except OSError as e:
            sock.close()
            raise TachyonError(f"{op} {path!r}: connect: {e.strerror or e}", ring=path) from None
    with sock:
        fd = _handshake(op, path, sock, message)
    return map_segment(
        op, path, fd, write=True, ready_timeout=ready_timeout, allow_foreign=allow_foreign, where=f"the memfd from {path}"
    )


def _handshake(op: str, path: str, sock: socket.socket, message: MessageType[Any]) -> int:
    """Hello, reply, seals, reopen: the subscriber's side of §14; returns its own descriptor."""
    ours = Identity.of(message)
    fds: list[int] = []
    try:
        sock.sendall(_encode(_HELLO, ours))
        data, fds, _, _ = socket.recv_fds(sock, HANDSHAKE_SIZE, 4)
        if 0 < len(data) < HANDSHAKE_SIZE:
            rest = _read_exactly(sock, HANDSHAKE_SIZE - len(data))
            data = data + rest if rest is not None else data
    except OSError as e:
        _close_all(fds)
        raise TachyonError(f"{op} {path!r}: handshake: {e.strerror or e}", ring=path) from None
    try:
        if not data:
            raise TachyonError(f"{op} {path!r}: handshake: the publisher closed the connection", ring=path)
        if data[:8] not in (_OKAY, _NOPE):
            raise CorruptSegment(
                f"{op} {path!r}: corrupt segment: not a Tachyon ring socket (reply {data[:8]!r})", ring=path
            )
        if len(data) < HANDSHAKE_SIZE:
            raise CorruptSegment(f"{op} {path!r}: corrupt segment: short handshake reply ({len(data)} bytes)", ring=path)
        magic, version, ring = _decode(data)
        if version != abi.ABI_VERSION:
            raise UnsupportedVersion(
                f"{op} {path!r}: unsupported ABI version: the publisher speaks version {version},"
                f" this client speaks version {abi.ABI_VERSION}",
                ring=path,
            )
        if (err := mismatch(op, path, ring, message)) is not None:
            raise err
        if magic == _NOPE:
            raise PublisherClosed(f"{op} {path!r}: publisher closed: it refused the handshake", ring=path)
        if len(fds) != 1:
            raise CorruptSegment(f"{op} {path!r}: corrupt segment: expected one descriptor, got {len(fds)}", ring=path)
        got = fds[0]
        try:
            seals = fcntl.fcntl(got, fcntl.F_GET_SEALS)
        except OSError as e:  # not a memfd, or no sealing
            raise InsecureSegment(f"{op} {path!r}: insecure segment: descriptor seals: {e.strerror or e}", ring=path) from None
        if seals & SEALS != SEALS:
            raise InsecureSegment(
                f"{op} {path!r}: insecure segment: descriptor seals {seals:#x}, want {SEALS:#x} (shrink, grow, seal)",
                ring=path,
            )
        # A descriptor of our own open file description: the OFD locks of
        # §8.4 and §9 tell owners apart only by open file description, and
        # the received one is the publisher's.
        try:
            return os.open(f"/proc/self/fd/{got}", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise TachyonError(f"{op} {path!r}: reopen the segment: {e.strerror or e}", ring=path) from None
    finally:
        _close_all(fds)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
