#!/usr/bin/env python3
"""Ring -> torch throughput of the seed message, by batch size, with its baselines.

    python runtime/python/bench_torch.py [--json] [--quick|--full] [--runs 3] [--fills N] [--threads 1]

Needs real PyTorch (the venv `make test-torch` makes, .venv-torch); `make
bench` runs it there, and `make bench-torch` alone. Each figure is messages
per second of the 64-byte seed message (examples/Message.tsch) through one
path, for batches of 256 ... 65 536 messages, the median of ``--runs`` runs
(the table on stderr gives the spread). A ring of 131 072 slots is half filled
by a Python publisher in this process between timed phases, so only the reading
side is timed: the receive, the tensors and whatever the path copies.

On the CPU (always):

================================  ===========================================
``torch_cpu_views_bN``            DeviceFeeder(device="cpu"): views of the
                                  ring, nothing copied (every batch's
                                  data_ptr is checked against the mapping)
``torch_cpu_clone_bN``            the naive owned copy: to_tensors(batch)
                                  then ``.clone()`` of each field, which is
                                  also what ``.to("cuda")`` of a strided
                                  shared-memory view does on the host first
``torch_cpu_staged_bN``           the feeder's copying path (a lossy reader):
                                  one gather of the messages into compact
                                  memory, validated: the host half of the
                                  CUDA path
``torch_cpu_feeder_copies``       aten copy operators per batch in the CPU
                                  feeder (counted by a TorchDispatchMode): 0
``torch_cpu_inference_copies``    the same for feeder + ``payload.float()``
                                  + a two-layer MLP: 1, the model's input
================================  ===========================================

On the CPU a "device copy" has no meaning (``t.to("cpu")`` returns ``t``),
so pinned-vs-naive is a CUDA figure. Where ``torch.cuda.is_available()``:

================================  ===========================================
``torch_cuda_pinned_bN``          DeviceFeeder(device="cuda"): pinned staging,
                                  asynchronous copies on its own stream
``torch_cuda_naive_bN``           ``to_tensors(batch)[f].to("cuda")`` per
                                  field: pageable, synchronous
``torch_cuda_h2d_bytes_per_s``    the device's host-to-device bandwidth, a
                                  64 MiB pinned buffer, CUDA events
``torch_cuda_pinned_bN_bytes``    the feeder's payload rate in bytes/s
================================  ===========================================

The human table goes to stderr; with ``--json`` the last stdout line is one
JSON object of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIZES = (256, 1024, 4096, 16384, 65536)
CAPACITY = 131072


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer messages per run (the default)")
    ap.add_argument("--full", action="store_true", help="more messages per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fills", type=int, help="half-rings (65 536 messages) per run: 8 quick, 32 full")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the copies run on one core)")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        log("bench_torch: torch is not installed in this Python (make test-torch installs .venv-torch)")
        return 1
    sys.path.insert(0, str(HERE))
    import tachyon
    from tachyon.torch import DeviceFeeder, to_tensors
    from tests_torch.support import Mappings, count_ops

    from bench_ring import Message  # build/gen/python's, else golden/python's

    torch.set_num_threads(a.threads)
    # Half a ring per fill: the CPU feeder's last batch stays borrowed until its next
    # receive, and the next fill must not need its slots.
    fill = CAPACITY // 2
    fills = a.fills or (32 if a.full else 8)
    chunk = np.zeros(fill, dtype=Message.DTYPE)
    chunk["payload"] = (np.arange(fill)[:, None] * 131 + np.arange(48) * 7) & 0xFF
    results: dict[str, float] = {}
    table: list[tuple[str, float, float, float]] = []
    cuda = torch.cuda.is_available()

    def measure(key: str, make: Callable[[Any], Callable[[], int]], lossy: bool = False) -> float:
        """Messages/s of ``fills`` half-rings through the path ``make(sub)`` builds; median of runs."""
        rates = []
        for run in range(a.runs):
            name = f"t-bench-torch-{os.getpid()}-{len(table)}-{run}"
            with tachyon.Publisher.create(name, Message, capacity=CAPACITY) as pub, tachyon.Subscriber.attach(
                name, Message, max_lag=CAPACITY if lossy else 0
            ) as sub:
                step = make(sub)
                secs, n = 0.0, 0
                for _ in range(fills):
                    pub.publish_array(chunk)
                    pub.flush()
                    got = 0
                    t0 = time.perf_counter()
                    while got < fill:
                        got += step()
                    if cuda:
                        torch.cuda.synchronize()  # the copies are done, not just queued
                    secs += time.perf_counter() - t0
                    n += got
                del step
            rates.append(n / secs)
        med = statistics.median(rates)
        results[key] = med
        table.append((key, med, min(rates), max(rates)))
        return med

    for size in SIZES:

        def views(sub: Any, size: int = size) -> Callable[[], int]:
            feeder = DeviceFeeder(sub, "cpu", max_batch=size)
            ring = Mappings(sub.name)

            def step() -> int:
                db = feeder.recv(timeout=5)
                assert db is not None and not db.owned and ring.hold(db["payload"]), "not a view of the ring"
                return len(db)

            return step

        def clone(sub: Any, size: int = size) -> Callable[[], int]:
            def step() -> int:
                batch = sub.recv_batch(size, timeout=5)
                owned = {k: v.clone() for k, v in to_tensors(batch).items()}
                batch.release()
                return len(owned["seq"])

            return step

        def staged(sub: Any, size: int = size) -> Callable[[], int]:
            feeder = DeviceFeeder(sub, "cpu", max_batch=size)
            assert not feeder.zero_copy

            def step() -> int:
                db = feeder.recv(timeout=5)
                assert db is not None and db.owned
                return len(db)

            return step

        measure(f"torch_cpu_views_b{size}_msgs_per_s", views)
        measure(f"torch_cpu_clone_b{size}_msgs_per_s", clone)
        measure(f"torch_cpu_staged_b{size}_msgs_per_s", staged, lossy=True)
        if cuda:

            def pinned(sub: Any, size: int = size) -> Callable[[], int]:
                feeder = DeviceFeeder(sub, "cuda", max_batch=size)

                def step() -> int:
                    db = feeder.recv(timeout=5)
                    assert db is not None
                    return len(db)

                return step

            def naive(sub: Any, size: int = size) -> Callable[[], int]:
                def step() -> int:
                    batch = sub.recv_batch(size, timeout=5)
                    dev = {k: v.to("cuda") for k, v in to_tensors(batch).items()}
                    batch.release()
                    return len(dev["seq"])

                return step

            rate = measure(f"torch_cuda_pinned_b{size}_msgs_per_s", pinned)
            results[f"torch_cuda_pinned_b{size}_bytes_per_s"] = rate * Message.SIZE
            measure(f"torch_cuda_naive_b{size}_msgs_per_s", naive)

    # Copies, counted: the CPU feeder's receive, then the model's input and forward pass.
    model = torch.nn.Sequential(torch.nn.Linear(48, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    with tachyon.Publisher.create(f"t-bench-torch-{os.getpid()}-copies", Message, capacity=4096) as pub, tachyon.Subscriber.attach(
        f"t-bench-torch-{os.getpid()}-copies", Message
    ) as sub, torch.inference_mode():
        feeder = DeviceFeeder(sub, "cpu", max_batch=1024)
        pub.publish_array(chunk[:4096])
        pub.flush()
        fed = inferred = batches = 0
        ring = Mappings(sub.name)
        while batches < 4:
            with count_ops() as ops:
                db = feeder.recv(timeout=5)
                assert db is not None
                fed += len(ops.copies)
                x = db["payload"].to(torch.float32)
                model(x).argmax(dim=1)
            inferred += len(ops.copies)
            assert ring.hold(db["payload"]) and not ring.hold(x)  # a view of the ring; the model's own input
            batches += 1
            del x, db
        results["torch_cpu_feeder_copies"] = fed / batches
        results["torch_cpu_inference_copies"] = inferred / batches
        feeder.close()
    if cuda:
        buf = torch.empty(64 << 20, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty_like(buf, device="cuda")
        times = []
        for _ in range(6):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dev.copy_(buf, non_blocking=True)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        results["torch_cuda_h2d_bytes_per_s"] = buf.numel() / statistics.median(times[1:])

    log(f"ring -> torch, seed message (64 B), torch {torch.__version__}, {a.threads} CPU thread(s),"
        f" {'CUDA ' + torch.cuda.get_device_name() if cuda else 'no CUDA device: the CPU paths only'}")
    log(f"{'path':<44}{'median':>14}{'min':>12}{'max':>12}")
    for key, med, lo, hi in table:
        log(f"{key:<44}{med / 1e6:>11.2f} M/s{lo / 1e6:>9.2f} M{hi / 1e6:>9.2f} M")
    log(f"copies per batch: CPU feeder {results['torch_cpu_feeder_copies']:.0f},"
        f" feeder + model input + MLP {results['torch_cpu_inference_copies']:.0f} (the payload's u8 -> f32)")
    if cuda:
        log(f"host-to-device bandwidth (pinned, 64 MiB): {results['torch_cuda_h2d_bytes_per_s'] / 1e9:.1f} GB/s")
    if a.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
