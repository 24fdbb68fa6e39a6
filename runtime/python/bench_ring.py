#!/usr/bin/env python3
"""The by-hand Python baselines the ring's Python figures are compared with.

    python runtime/python/bench_ring.py [--json] [--quick|--full] [--runs 3]

Each figure is messages per second of the seed message (examples/Message.tsch,
64 bytes), measured at the receiver from its first message to its last, the
median of ``--runs`` runs:

============================  =================================================
``mp_queue_msgs_per_s``       the messages, packed with the generated STRUCT,
                              through multiprocessing.Queue between two
                              processes, one put/get per message
``mp_shm_struct_msgs_per_s``  multiprocessing.shared_memory and a hand-written
                              SPSC struct ring (the "by hand" peer)
============================  =================================================

The ring's own streams into and out of Python (``go_python_msgs_per_s``,
``cpp_python_msgs_per_s``, ``python_go_msgs_per_s``) are measured by
``make bench`` through the peers, like every other language pair
(``bin/bench --only Python`` for those alone).

The human table goes to stderr; with ``--json`` the last stdout line is one
JSON object with those keys. ``--quick`` (the default) runs in a few
seconds. The message module is ``build/gen/python/message_tsch.py``, else
``golden/python``'s copy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


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


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    size.add_argument("--full", action="store_true", help="1 M queue and 2 M shm messages per run")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    a = ap.parse_args()
    full = a.full
    n_queue = 1_000_000 if full else 100_000
    n_shm = 2_000_000 if full else 200_000
    results: dict[str, float] = {}
    plan: list[tuple[str, str, Callable[[], float]]] = [
        ("mp_queue_msgs_per_s", f"multiprocessing.Queue ({n_queue:,})", lambda: mp_queue(n_queue)),
        ("mp_shm_struct_msgs_per_s", f"shared_memory + struct ring ({n_shm:,})", lambda: mp_shm_struct(n_shm)),
    ]
    start = time.perf_counter()
    for key, label, run in plan:
        results[key] = round(median_of(a.runs, run))
        log(f"  {label:<46} {results[key] / 1e6:8.2f} M msgs/s")
    log(f"  ({a.runs} runs each, median; {time.perf_counter() - start:.1f} s)")
    if a.json:
        print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
