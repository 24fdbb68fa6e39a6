#!/usr/bin/env python3
"""Ring batches into PyTorch tensors through DLPack, without copying.

    python examples/pipeline/torch_example.py [--ring NAME] [--count N] [--gen-dir DIR]

Without ``--ring`` it is self-contained: a Python publisher thread feeds a
ring of the seed message (examples/Message.tsch) and this script subscribes.
With ``--ring NAME`` it attaches to a ring another process publishes (for
instance ``bin/gopeer pub --ring NAME --count N``) and reads until it closes.

Every batch's numeric fields become tensors over shared memory:
``torch.from_dlpack(batch["seq"])`` is a 1-D int tensor whose stride is the
slot size; ``batch["payload"]`` a 2-D ``(n, 48)`` uint8 tensor. The views are
read-only, which DLPack signals from version 1.0 on; PyTorch versions that
request only an unversioned capsule get BufferError from NumPy, and this
example falls back to ``torch.from_numpy`` (also zero-copy). Tensors are views
of the batch: they must be gone before the batch is released.

Exits 0 with "torch not installed: skipping" when PyTorch is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description="ring batches -> torch tensors via DLPack")
    ap.add_argument("--ring", help="attach to this ring instead of publishing one")
    ap.add_argument("--count", type=int, default=1_000_000, help="messages to publish (self-contained mode)")
    ap.add_argument("--gen-dir", default=str(ROOT / "build" / "gen" / "python"))
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping")
        return 0
    try:
        import tachyon
    except ImportError:
        sys.path.insert(0, str(ROOT / "runtime" / "python"))
        import tachyon
    Message = load_message(Path(a.gen_dir))

    def to_tensor(field: Any) -> Any:
        """A zero-copy tensor over a batch field (DLPack, else from_numpy)."""
        try:
            return torch.from_dlpack(field)
        except (BufferError, RuntimeError, TypeError):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "the given NumPy array is not writable"
                return torch.from_numpy(field)

    name = a.ring or f"t-py-torch-{time.monotonic_ns()}"
    pub, feeder = None, None
    if a.ring is None:
        pub = tachyon.Publisher.create(name, Message, capacity=4096)
        feeder = threading.Thread(target=publish, args=(pub, Message, a.count), daemon=True)
        feeder.start()
    total, messages, batches, zero_copy = 0, 0, 0, True
    start = time.perf_counter()
    try:
        with tachyon.Subscriber.attach(name, Message, timeout=30) as sub:
            for batch in sub.batches():
                with batch:
                    seq = to_tensor(batch["seq"])
                    payload = to_tensor(batch["payload"])
                    zero_copy &= seq.data_ptr() == batch["seq"].ctypes.data
                    total += int(seq.sum()) + int(payload[:, 0].to(torch.int64).sum())
                    messages += seq.shape[0]
                    batches += 1
                    del seq, payload  # views of the batch: gone before its release
    except tachyon.TachyonError as e:
        print(f"torch_example: {e}", file=sys.stderr)
        return 1
    finally:
        if pub is not None and feeder is not None:
            feeder.join(30)  # it closes the ring when done (the publisher is not thread-safe)
    secs = time.perf_counter() - start
    print(
        f"{messages} messages in {batches} batches, {messages / secs / 1e6:.2f} M msgs/s;"
        f" tensors shared the ring's memory: {zero_copy}; checksum {total}"
    )
    return 0 if zero_copy else 1


def publish(pub: Any, Message: Any, count: int) -> None:
    import numpy as np

    pub.wait_subscribers(1, timeout=30)
    chunk = np.zeros(4096, dtype=Message.DTYPE)
    for lo in range(0, count, len(chunk)):
        part = chunk[: min(len(chunk), count - lo)]
        part["seq"] = np.arange(lo, lo + len(part), dtype=np.uint64)
        pub.publish_array(part)
    pub.flush()
    pub.close()


def load_message(gen_dir: Path) -> Any:
    """The generated seed message class (gpu_inference.py uses it too)."""
    for d in (gen_dir, ROOT / "golden" / "python"):
        path = d / "message_tsch.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("message_tsch", path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules["message_tsch"] = mod  # dataclasses look their module up
            spec.loader.exec_module(mod)
            return mod.Message
    raise SystemExit(
        f"{Path(sys.argv[0]).name}: no message_tsch.py in {gen_dir}; generate it with\n"
        f"  go run ./cmd/tachyon-gen generate --py-out {gen_dir} examples/Message.tsch"
    )


if __name__ == "__main__":
    sys.exit(main())
