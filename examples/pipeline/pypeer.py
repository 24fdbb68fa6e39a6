#!/usr/bin/env python3
"""The Python interop peer of examples/pipeline/PEERS.md.

    pypeer.py [--gen-dir DIR] pub  --ring NAME --count N [--capacity 4096]
              [--policy block|drop_newest|drop_oldest] [--max-subscribers 8]
              [--wait-subscribers 1] [--batch 64] [--timeout-s 30] [--sealed PATH]
    pypeer.py [--gen-dir DIR] sub  --ring NAME [--count N] [--max-lag L]
              [--slow-us U] [--timeout-s 30] [--latency] [--sealed PATH]
    pypeer.py [--gen-dir DIR] echo --ping NAME --pong NAME [--timeout-s 30] [--pin CPU]

It publishes or subscribes the seed message (examples/Message.tsch) and
prints exactly one JSON summary line on stdout; diagnostics go to stderr.
Exit status: 0 when the run completed (even with drops), 1 on an error, 2 on
a usage error.

The message module is the generated ``message_tsch.py`` in ``--gen-dir``
(default ``build/gen/python``); create it with::

    go run ./cmd/tachyon-gen generate --py-out build/gen/python examples/Message.tsch

The ``tachyon`` package is used from the environment (``pip install -e
runtime/python``), else from this checkout's ``runtime/python``.

The publisher writes NumPy arrays of messages with ``publish_array``; the
subscriber reads zero-copy batches and checks them with vectorised NumPy
(``--slow-us`` reads one message at a time instead, sleeping after each).
With ``--sealed PATH`` the publisher creates a sealed memfd ring and serves
it on the Unix socket PATH instead of /dev/shm, and the subscriber dials it.

Like the Go peer, ``sub`` gives up (exit status 1) when ``--timeout-s`` has
passed twice over: once for the ring to appear, once more for the stream.
A value may follow its option as the next argument even when it starts with
``-`` (``--ring -odd-name``), as Go's flag package allows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 4096  # messages per publish_array call
PAYLOAD = 48


def die(msg: str, code: int = 1) -> None:
    print(f"pypeer: {msg}", file=sys.stderr)
    sys.exit(code)


def load_modules(gen_dir: str) -> tuple[Any, Any]:
    """Import tachyon and the generated Message class."""
    try:
        import tachyon
    except ImportError:
        sys.path.insert(0, str(ROOT / "runtime" / "python"))
        try:
            import tachyon
        except ImportError as e:
            die(f"cannot import the tachyon ring client: {e}")
    path = Path(gen_dir)
    if not (path / "message_tsch.py").is_file():
        die(
            f"no generated message module {path / 'message_tsch.py'}; generate it with\n"
            f"  go run ./cmd/tachyon-gen generate --py-out {gen_dir} examples/Message.tsch"
        )
    sys.path.insert(0, str(path.resolve()))
    mod = importlib.import_module("message_tsch")
    return tachyon, mod.Message


def parse(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gen-dir", default=argparse.SUPPRESS, help="directory of message_tsch.py")
    common.add_argument("--timeout-s", type=float, default=30.0, help="give up after this many seconds")
    sealed = argparse.ArgumentParser(add_help=False)
    sealed.add_argument("--sealed", metavar="PATH", help="a sealed ring served on (pub) or dialled at (sub) this Unix socket")
    p = argparse.ArgumentParser(prog="pypeer", description="Python interop peer (PEERS.md)")
    p.add_argument("--gen-dir", default=str(ROOT / "build" / "gen" / "python"), help="directory of message_tsch.py")
    verbs = p.add_subparsers(dest="verb", required=True)
    pub = verbs.add_parser("pub", parents=[common, sealed], help="create the ring and publish")
    pub.add_argument("--ring", required=True)
    pub.add_argument("--count", type=int, required=True)
    pub.add_argument("--capacity", type=int, default=4096)
    pub.add_argument("--policy", choices=["block", "drop_newest", "drop_oldest"], default="block")
    pub.add_argument("--max-subscribers", type=int, default=8)
    pub.add_argument("--wait-subscribers", type=int, default=1)
    pub.add_argument("--batch", type=int, default=64)
    sub = verbs.add_parser("sub", parents=[common, sealed], help="attach and receive")
    sub.add_argument("--ring", required=True)
    sub.add_argument("--count", type=int, default=0)
    sub.add_argument("--max-lag", type=int, default=0)
    sub.add_argument("--slow-us", type=int, default=0)
    sub.add_argument("--latency", action="store_true")
    echo = verbs.add_parser("echo", parents=[common], help="republish --ping on --pong")
    echo.add_argument("--ping", required=True)
    echo.add_argument("--pong", required=True)
    echo.add_argument("--pin", type=int, default=-1)
    return p.parse_args(join_values(p, argv))


def join_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--opt VALUE`` as ``--opt=VALUE`` for every option that takes a value.

    argparse reads a next argument starting with ``-`` as another option, so
    ``--ring -x`` would fail; Go's flag package (the other peers) takes it as
    the value. Only options the parser (or a verb's) knows are joined.
    """
    takes_value: set[str] = set()
    parsers = [parser]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings and action.nargs is None and action.const is None:
                takes_value.update(action.option_strings)
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value and i + 1 < len(argv):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def publish_pattern(pub: Any, dtype: Any, count: int) -> None:
    """Publishes seqs 0..count-1 with the PEERS.md payload, CHUNK at a time (publish_array)."""
    import numpy as np

    offsets = (np.arange(PAYLOAD, dtype=np.uint64) * np.uint64(7))[None, :]
    chunk = np.zeros(min(CHUNK, max(count, 1)), dtype=dtype)
    seq = 0
    while seq < count:
        k = min(len(chunk), count - seq)
        part = chunk[:k]
        seqs = np.arange(seq, seq + k, dtype=np.uint64)
        part["seq"] = seqs
        part["payload"] = (seqs[:, None] * np.uint64(131) + offsets) & np.uint64(0xFF)
        part["timestamp_ns"] = time.time_ns()
        pub.publish_array(part)
        seq += k


def publish(tachyon: Any, Message: Any, a: argparse.Namespace) -> dict[str, Any]:
    create = tachyon.Publisher.create_sealed if a.sealed else tachyon.Publisher.create
    with create(
        a.ring,
        Message,
        capacity=a.capacity,
        policy=a.policy,
        max_subscribers=a.max_subscribers,
        batch=a.batch,
        timeout=a.timeout_s,
    ) as pub:
        if a.sealed:
            pub.serve(a.sealed)  # stopped (and the socket unlinked) when pub closes
        pub.wait_subscribers(a.wait_subscribers, timeout=a.timeout_s)
        start = time.perf_counter()
        publish_pattern(pub, Message.DTYPE, a.count)
        pub.flush()
        secs = time.perf_counter() - start
        return {
            "published": pub.published,
            "dropped": pub.dropped,
            "seconds": secs,
            "msgs_per_s": a.count / secs if secs > 0 else 0.0,
        }


class Checker:
    """The PEERS.md checks, vectorised over batches."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        self.received = self.gaps = self.torn = self.reordered = 0
        self.first = self.last = -1
        self.max_latency = 0
        # Expected payload of seq s depends on s mod 256 only: a 256-row table
        # of u64 words, gathered by seq & 0xff and compared word by word.
        table = (np.arange(256, dtype=np.uint64)[:, None] * 131 + np.arange(PAYLOAD, dtype=np.uint64) * 7) & 0xFF
        self.table = np.ascontiguousarray(table.astype(np.uint8)).view(np.uint64)
        # The fast path's expectations for a run of consecutive seqs: 0, 1,
        # 2, ... and the table repeated, so a batch starting at seq s0
        # expects tiled[s0 & 0xff :][:n]: slices, no gather. Grown on demand.
        self.ramp = np.arange(0, dtype=np.uint64)
        self.tiled = self.table
        self.scratch = np.empty(0, dtype=np.uint64)

    def _grow(self, n: int) -> None:
        np = self.np
        if len(self.ramp) < n:
            self.ramp = np.arange(n, dtype=np.uint64)
            self.scratch = np.empty(n, dtype=np.uint64)
        if len(self.tiled) < n + 255:
            self.tiled = np.tile(self.table, (-(-(n + 255) // 256), 1))

    def check(self, seq: Any, payload: Any, stamps: Any | None) -> tuple[int, int, int, int, int]:
        """Counts (gaps, torn, reordered, first, last) for one batch, not yet committed."""
        np = self.np
        n = len(seq)
        words = payload.view(np.uint64) if payload.dtype == np.uint8 else payload
        s0 = int(seq[0])
        if s0 == self.last + 1:
            # The usual batch: the next n seqs in order, every payload
            # intact. Two whole-array comparisons prove it; anything else
            # takes the general path below to count what went wrong.
            self._grow(n)
            np.subtract(seq, np.uint64(s0), out=self.scratch[:n])
            if np.array_equal(self.scratch[:n], self.ramp[:n]):
                o = s0 & 0xFF
                if np.array_equal(words, self.tiled[o : o + n]):
                    return 0, 0, 0, s0, s0 + n - 1
        s = seq.astype(np.int64)
        prev_max = np.maximum.accumulate(np.concatenate(([self.last], s[:-1])))
        reordered = int(np.count_nonzero(s <= prev_max))
        jumps = s - prev_max - 1
        gaps = int(jumps[jumps > 0].sum())
        torn = int(np.count_nonzero((words != self.table[seq & 0xFF]).any(axis=1)))
        return gaps, torn, reordered, int(s[0]), max(self.last, int(s.max()))

    def commit(self, n: int, counts: tuple[int, int, int, int, int]) -> None:
        gaps, torn, reordered, first, last = counts
        if self.received == 0:
            self.first = first
        self.received += n
        self.gaps += gaps
        self.torn += torn
        self.reordered += reordered
        self.last = last


def subscribe(tachyon: Any, Message: Any, a: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    chk = Checker()
    start = 0.0
    # As the Go peer: --timeout-s for the ring to appear, then the whole run
    # ends --timeout-s after that deadline at the latest.
    deadline = time.monotonic() + 2 * a.timeout_s
    if a.sealed:
        sub = tachyon.Subscriber.dial(a.sealed, Message, max_lag=a.max_lag, timeout=a.timeout_s)
    else:
        sub = tachyon.Subscriber.attach(a.ring, Message, max_lag=a.max_lag, timeout=a.timeout_s)

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise tachyon.RingTimeout(
                f"receive {sub.name!r}: timeout: {chk.received} messages received in {2 * a.timeout_s:g}s"
                " (twice --timeout-s) and the publisher has not closed",
                ring=sub.name,
            )
        return remaining

    with sub:
        try:
            while a.count <= 0 or chk.received < a.count:
                if a.slow_us > 0:
                    raw = sub.recv_bytes(timeout=left())
                    if raw is None:
                        continue
                    rec = np.frombuffer(raw, dtype=Message.DTYPE)
                    counts = chk.check(rec["seq"], rec["payload"], None)
                    if chk.received == 0:
                        start = time.perf_counter()
                    chk.commit(1, counts)
                    if a.latency:
                        chk.max_latency = max(chk.max_latency, time.time_ns() - int(rec["timestamp_ns"][0]))
                    time.sleep(a.slow_us / 1e6)
                    continue
                want = None if a.count <= 0 else a.count - chk.received
                batch = sub.recv_batch(max_n=want, timeout=left())
                n = len(batch)
                if n == 0:
                    continue
                if chk.received == 0:
                    start = time.perf_counter()
                counts = chk.check(batch["seq"], batch["payload"], None)
                latency = 0
                if a.latency:
                    latency = int(time.time_ns() - batch["timestamp_ns"].astype(np.int64).min())
                try:
                    batch.release()
                except tachyon.Overwritten:
                    continue  # lapped mid-read: discarded, counted as dropped by the ring
                chk.commit(n, counts)
                chk.max_latency = max(chk.max_latency, latency)
        except tachyon.PublisherClosed:
            pass
        secs = time.perf_counter() - start if chk.received else 0.0
        out: dict[str, Any] = {
            "received": chk.received,
            "dropped": sub.dropped,
            "gaps": chk.gaps,
            "torn": chk.torn,
            "reordered": chk.reordered,
            "first": chk.first,
            "last": chk.last,
            "seconds": secs,
            "msgs_per_s": chk.received / secs if secs > 0 else 0.0,
        }
        if a.latency:
            out["max_latency_ns"] = chk.max_latency
        return out


def echo(tachyon: Any, Message: Any, a: argparse.Namespace) -> dict[str, Any]:
    if a.pin >= 0 and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {a.pin % (os.cpu_count() or 1)})
    echoed = 0
    with tachyon.Publisher.create(a.pong, Message, capacity=64, batch=1, policy="block") as out:
        with tachyon.Subscriber.attach(a.ping, Message, timeout=a.timeout_s) as inp:
            start = time.perf_counter()
            try:
                while True:
                    raw = inp.recv_bytes()
                    if raw is not None:
                        out.publish_bytes(raw)
                        echoed += 1
            except tachyon.PublisherClosed:
                pass
            secs = time.perf_counter() - start
    return {"echoed": echoed, "seconds": secs}


def main(argv: list[str]) -> int:
    a = parse(argv)
    tachyon, Message = load_modules(a.gen_dir)
    try:
        if a.verb == "pub":
            summary = publish(tachyon, Message, a)
            ring = a.ring
        elif a.verb == "sub":
            summary = subscribe(tachyon, Message, a)
            ring = a.ring
        else:
            summary = echo(tachyon, Message, a)
            ring = a.ping
    except tachyon.TachyonError as e:
        die(str(e))
    except OSError as e:
        die(f"{a.verb}: {e}")
    except KeyboardInterrupt:
        die("interrupted")
    print(json.dumps({"lang": "python", "role": a.verb, "ring": ring, **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
