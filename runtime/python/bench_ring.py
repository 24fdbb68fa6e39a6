#!/usr/bin/env python3
"""Throughput of the Python ring client beside the by-hand alternatives.

    python runtime/python/bench_ring.py [--json] [--quick|--full] [--runs 3]

Each figure is messages per second of the seed message (examples/Message.tsch,
64 bytes), measured at the receiver from its first message to its last, the
median of ``--runs`` runs:

============================  =================================================
``go_python_msgs_per_s``      bin/gopeer pub -> this process, NumPy batches,
                              every seq and payload byte checked
``cpp_python_msgs_per_s``     build/cpppeer pub -> this process (omitted if
                              the C++ peer is not built)
``python_go_msgs_per_s``      this process, ``publish_array`` -> gopeer sub
``mp_queue_msgs_per_s``       the same messages, packed with the generated
                              STRUCT, through multiprocessing.Queue between
                              two processes, one put/get per message
``mp_shm_struct_msgs_per_s``  multiprocessing.shared_memory and a hand-written
                              SPSC struct ring (the "by hand" peer)
============================  =================================================

The human table goes to stderr; with ``--json`` the last stdout line is one
JSON object with those keys. ``--quick`` (the default) runs in well under
30 s; ``--full`` sends 20 M messages through each native stream.
``--skip-native`` leaves out the two native -> Python streams (``make bench``
measures them through the peers, like every other language pair). The native
streams use a ``STREAM_CAPACITY``-slot ring, as ``make bench`` does. The Go peer is
``bin/gopeer`` (built with ``go build`` into a temporary directory if it is
missing); the message module is ``build/gen/python/message_tsch.py``, else
``golden/python``'s copy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Slots of the native -> Python rings: 4.5 MiB, deep enough that the
# subscriber's per-batch overhead (microseconds in Python) does not leave the
# publisher blocked on a full ring. bench/measure.go's streamCapacity.
STREAM_CAPACITY = 65536

try:
    import tachyon
except ImportError:
    sys.path.insert(0, str(HERE))
    import tachyon


def load_message() -> Any:
    for d in (ROOT / "build" / "gen" / "python", ROOT / "golden" / "python"):
        path = d / "message_tsch.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("message_tsch", path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules["message_tsch"] = mod
            spec.loader.exec_module(mod)
            return mod.Message
    raise SystemExit("bench_ring: no message_tsch.py (run `make generate`)")


Message = load_message()
_counter = 0


def load_pypeer() -> Any:
    """The Python peer (examples/pipeline/pypeer.py): its pattern publisher and vectorised checks."""
    spec = importlib.util.spec_from_file_location("pypeer", ROOT / "examples" / "pipeline" / "pypeer.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("examples/pipeline/pypeer.py not found")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ring_name() -> str:
    global _counter
    _counter += 1
    return f"t-py-bench-{os.getpid()}-{_counter}"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- peers --------------------------------------------------------------------


def find_gopeer(tmp: Path) -> Path | None:
    prebuilt = ROOT / "bin" / "gopeer"
    if prebuilt.is_file():
        return prebuilt
    go = shutil.which("go")
    if go is None:
        return None
    out = tmp / "gopeer"
    r = subprocess.run([go, "build", "-o", str(out), "./examples/pipeline/gopeer"], cwd=ROOT, capture_output=True)
    return out if r.returncode == 0 else None


def peer_json(p: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{p.args!r}: exit {p.returncode}: {err.strip()}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def native_to_python(peer: Path, count: int) -> float:
    """A native publisher (Go or C++ peer) -> a Python subscriber on NumPy batches."""
    name = ring_name()
    pub = subprocess.Popen(
        [str(peer), "pub", "--ring", name, "--count", str(count), "--capacity", str(STREAM_CAPACITY), "--timeout-s", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        chk = load_pypeer().Checker()
        first = last = 0.0
        with tachyon.Subscriber.attach(name, Message, timeout=30) as sub:
            try:
                while True:
                    with sub.recv_batch() as b:
                        counts = chk.check(b["seq"], b["payload"], None)
                    if chk.received == 0:
                        first = time.perf_counter()
                    chk.commit(len(b), counts)
                    last = time.perf_counter()
            except tachyon.PublisherClosed:
                pass
        peer_json(pub, 60)
    finally:
        pub.kill()
        pub.wait()
    if chk.received != count or chk.gaps or chk.torn or chk.reordered:
        raise RuntimeError(
            f"received {chk.received} of {count}: {chk.gaps} gaps, {chk.torn} torn, {chk.reordered} reordered"
        )
    return count / (last - first) if last > first else 0.0


def python_to_go(gopeer: Path, count: int) -> float:
    """This process publishing with publish_array -> the Go subscriber."""
    name = ring_name()
    sub = subprocess.Popen(
        [str(gopeer), "sub", "--ring", name, "--timeout-s", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        pypeer = load_pypeer()
        with tachyon.Publisher.create(name, Message, capacity=4096, batch=64, timeout=60) as pub:
            pub.wait_subscribers(1, timeout=30)
            pypeer.publish_pattern(pub, Message.DTYPE, count)
        s = peer_json(sub, 60)
    finally:
        sub.kill()
        sub.wait()
    if s["received"] != count or s["torn"] or s["gaps"]:
        raise RuntimeError(f"gopeer sub: {s}")
    return float(s["msgs_per_s"])


# -- by-hand baselines -----------------------------------------------------------


def _payloads() -> list[tuple[int, ...]]:
    return [tuple((s * 131 + i * 7) & 0xFF for i in range(48)) for s in range(256)]


def _queue_producer(q: Any, count: int) -> None:
    pack = Message.STRUCT.pack
    payloads = _payloads()
    for seq in range(count):
        q.put(pack(seq, time.time_ns(), *payloads[seq & 0xFF]))
    q.put(None)


def mp_queue(count: int) -> float:
    """multiprocessing.Queue, one STRUCT-packed message per put/get."""
    ctx = mp.get_context("fork")
    q = ctx.Queue(maxsize=4096)
    p = ctx.Process(target=_queue_producer, args=(q, count))
    p.start()
    unpack = Message.STRUCT.unpack
    expect, first = 0, 0.0
    while (item := q.get()) is not None:
        if expect == 0:
            first = time.perf_counter()
        if unpack(item)[0] != expect:
            raise RuntimeError("mp.Queue: sequence broken")
        expect += 1
    last = time.perf_counter()
    p.join()
    return count / (last - first)


_SHM_HDR = 128  # head (consumer) at 0, tail (producer) at 64: separate lines


def _shm_producer(name: str, count: int, cap: int) -> None:
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name)
    try:
        idx = shm.buf.cast("Q")  # native 8-byte loads/stores of the indices
        pack_into = Message.STRUCT.pack_into
        payloads = _payloads()
        buf = shm.buf
        tail = 0
        while tail < count:
            if tail - idx[0] >= cap:
                os.sched_yield()
                continue
            pack_into(buf, _SHM_HDR + (tail % cap) * 64, tail, time.time_ns(), *payloads[tail & 0xFF])
            tail += 1
            idx[8] = tail
        del idx, buf
    finally:
        shm.close()


def mp_shm_struct(count: int) -> float:
    """multiprocessing.shared_memory with a hand-written SPSC ring of STRUCT records."""
    from multiprocessing import shared_memory

    cap = 4096
    shm = shared_memory.SharedMemory(create=True, size=_SHM_HDR + cap * 64)
    try:
        idx = shm.buf.cast("Q")
        idx[0] = idx[8] = 0
        ctx = mp.get_context("fork")
        p = ctx.Process(target=_shm_producer, args=(shm.name, count, cap))
        p.start()
        unpack_from = Message.STRUCT.unpack_from
        buf = shm.buf
        head, first = 0, 0.0
        while head < count:
            tail = idx[8]
            if tail == head:
                os.sched_yield()
                continue
            if head == 0:
                first = time.perf_counter()
            for i in range(head, tail):
                if unpack_from(buf, _SHM_HDR + (i % cap) * 64)[0] != i:
                    raise RuntimeError("shm ring: sequence broken")
            head = tail
            idx[0] = head
        last = time.perf_counter()
        p.join()
        del idx, buf
    finally:
        shm.close()
        shm.unlink()
    return count / (last - first)


# -- driver -----------------------------------------------------------------------


def median_of(runs: int, f: Callable[[], float]) -> float:
    values = [f() for _ in range(runs)]
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small counts (default; < 30 s)")
    size.add_argument("--full", action="store_true", help="5 M messages per ring run")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--skip-native", action="store_true", help="leave out the Go/C++ -> Python streams")
    a = ap.parse_args()
    full = a.full
    n_ring = 20_000_000 if full else 2_000_000
    n_queue = 1_000_000 if full else 100_000
    n_shm = 2_000_000 if full else 200_000
    results: dict[str, float] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tachyon-bench-") as tmp:
        gopeer = find_gopeer(Path(tmp))
        cpppeer = ROOT / "build" / "cpppeer"
        plan: list[tuple[str, str, Callable[[], float]]] = []
        if a.skip_native:
            pass
        elif gopeer is not None:
            plan.append(("go_python_msgs_per_s", f"Go pub -> Python batches ({n_ring:,})",
                         lambda: native_to_python(gopeer, n_ring)))
        else:
            notes.append("no Go peer (bin/gopeer missing, no Go toolchain): Go figures omitted")
        if a.skip_native:
            pass
        elif cpppeer.is_file():
            plan.append(("cpp_python_msgs_per_s", f"C++ pub -> Python batches ({n_ring:,})",
                         lambda: native_to_python(cpppeer, n_ring)))
        else:
            notes.append("build/cpppeer not built: cpp_python_msgs_per_s omitted")
        if gopeer is not None:
            plan.append(("python_go_msgs_per_s", f"Python publish_array -> Go sub ({n_ring:,})",
                         lambda: python_to_go(gopeer, n_ring)))
        plan.append(("mp_queue_msgs_per_s", f"multiprocessing.Queue ({n_queue:,})", lambda: mp_queue(n_queue)))
        plan.append(("mp_shm_struct_msgs_per_s", f"shared_memory + struct ring ({n_shm:,})",
                     lambda: mp_shm_struct(n_shm)))
        start = time.perf_counter()
        for key, label, run in plan:
            results[key] = round(median_of(a.runs, run))
            log(f"  {label:<46} {results[key] / 1e6:8.2f} M msgs/s")
        log(f"  ({a.runs} runs each, median; {time.perf_counter() - start:.1f} s)")
    for note in notes:
        log(f"  note: {note}")
    if a.json:
        print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
