#!/usr/bin/env python3
"""The seed pipeline's last stage: C++ publisher -> ring -> a torch.nn model, on a GPU or the CPU.

    python examples/pipeline/gpu_inference.py [--cpp build/cpppeer] [--count N]
        [--device auto|cpu|cuda] [--batch 4096] [--capacity 16384] [--threads T] [--gen-dir DIR]

The C++ interop peer publishes ``--count`` seed messages (examples/Message.tsch)
on a fresh ring under the ``block`` policy; this script subscribes and feeds
the batches through :class:`tachyon.torch.DeviceFeeder` to a small MLP that
reads the 48 payload bytes as features (scaled to [0, 1]) and predicts one of
four classes per message. On CUDA the feeder stages each batch in pinned
memory and copies it asynchronously on its own stream; on the CPU its tensors
are views of the ring, and the model's ``payload.to(float32)`` is the stage's
only copy.

It prints the device it ran on, the first batches' predictions, messages per
second, the end-to-end latency p50/p99 (from the publisher's ``timestamp_ns``
to the batch's predictions on the host; the C++ peer reads its clock every 16
messages, which only makes a latency larger) and lost messages, and exits 1 if
any message was lost or out of order. With ``--device auto`` (the default) it
uses CUDA when torch sees a device, else the CPU.

Exits 0 with "torch not installed: skipping" when PyTorch is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLASSES = 4


def main() -> int:
    ap = argparse.ArgumentParser(description="C++ -> ring -> torch.nn inference, on CUDA or the CPU")
    ap.add_argument("--cpp", default=str(ROOT / "build" / "cpppeer"), help="the C++ peer (make peers builds it)")
    ap.add_argument("--count", type=int, default=1_000_000, help="messages to publish")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--batch", type=int, default=4096, help="most messages per batch")
    ap.add_argument("--capacity", type=int, default=16384, help="ring slots")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="torch's CPU threads (default: one core left to the publisher)")
    ap.add_argument("--gen-dir", default=str(ROOT / "build" / "gen" / "python"))
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping (make test-torch installs it into .venv-torch; make demo then runs this)")
        return 0
    try:
        import tachyon
    except ImportError:
        sys.path.insert(0, str(ROOT / "runtime" / "python"))
        import tachyon
    from tachyon.torch import DeviceFeeder

    if not os.access(a.cpp, os.X_OK):
        print(f"gpu_inference: no C++ peer at {a.cpp}; build it with `make peers`", file=sys.stderr)
        return 2
    from torch_example import load_message  # beside this script

    Message = load_message(Path(a.gen_dir))
    if a.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        why = "" if device == "cuda" else " (torch sees no CUDA device)"
    else:
        device, why = a.device, ""
    # OpenMP threads that outnumber the free cores spin against the publisher:
    # on 2 cores, 2 threads made the MLP 8x slower than 1 did.
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 64), torch.nn.ReLU(), torch.nn.Linear(64, CLASSES)).eval().to(device)
    name = f"t-gpu-inference-{os.getpid()}"
    pub = subprocess.Popen(
        [a.cpp, "pub", "--ring", name, "--count", str(a.count), "--capacity", str(a.capacity), "--timeout-s", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts = torch.zeros(CLASSES, dtype=torch.int64)
    latencies: list[np.ndarray[Any, Any]] = []
    expect, batches, disorder, views = 0, 0, 0, True
    try:
        with tachyon.Subscriber.attach(name, Message, timeout=30) as sub, torch.inference_mode():
            with DeviceFeeder(sub, device, max_batch=min(a.batch, a.capacity)) as feeder:
                label = f"{feeder.device}{why}, torch {torch.__version__}, {a.threads} CPU thread(s)"
                if feeder.device.type == "cuda":
                    label += f", {torch.cuda.get_device_name(feeder.device)}; pinned staging, its own stream"
                else:
                    label += "; the tensors are views of the ring, no copy before the model's"
                print(f"device: {label}")
                start = time.perf_counter()
                for db in feeder:
                    x = db["payload"].to(torch.float32).mul_(1 / 255)  # the model's copy: u8 -> f32
                    pred = model(x).argmax(dim=1).cpu()  # on the host: the batch's predictions are out
                    done = time.time_ns()
                    ts = db["timestamp_ns"].cpu().numpy().astype(np.int64)
                    latencies.append(done - ts)
                    seq = db["seq"].view(torch.int64)
                    want = torch.arange(expect, expect + len(db), device=seq.device)
                    disorder += int((seq != want).sum())
                    views &= feeder.device.type == "cuda" or not db.owned
                    counts += torch.bincount(pred, minlength=CLASSES)
                    if batches < 3:
                        print(f"batch {batches}: {len(db)} messages from index {db.start} -> predicted classes"
                              f" {torch.bincount(pred, minlength=CLASSES).tolist()}")
                    expect += len(db)
                    batches += 1
                    del x, ts, seq, want  # views of the batch (CPU): gone before the next
                secs = time.perf_counter() - start
                received, dropped = feeder.received, sub.dropped
    except tachyon.TachyonError as e:
        print(f"gpu_inference: {e}", file=sys.stderr)
        pub.kill()
        pub.communicate()
        return 1
    out, err = pub.communicate(timeout=60)
    if pub.returncode != 0:
        print(f"gpu_inference: the C++ publisher failed ({pub.returncode}): {err.strip()}", file=sys.stderr)
        return 1
    published = int(json.loads(out.strip().splitlines()[-1])["published"])
    lost = published - received
    lat = np.concatenate(latencies) if latencies else np.zeros(1, dtype=np.int64)
    p50, p99 = (float(np.percentile(lat, q)) / 1e3 for q in (50, 99))
    print(
        f"{received} messages in {batches} batches: {received / secs / 1e6:.2f} M msgs/s; end-to-end latency"
        f" p50 {p50:.0f} us, p99 {p99:.0f} us (ring of {a.capacity}, batches of up to {a.batch}); lost {lost},"
        f" dropped {dropped}, out of order {disorder}"
    )
    print(f"predictions per class: {counts.tolist()}")
    if feeder.device.type == "cpu":
        print(f"the CPU tensors were views of the ring in every batch: {views}")
    return 0 if lost == 0 and dropped == 0 and disorder == 0 and views else 1


if __name__ == "__main__":
    sys.exit(main())
