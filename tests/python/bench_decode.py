"""Decode throughput of the seed Message: NumPy batch vs a struct loop.

Decodes N Messages (default 10 M, 640 MB) from one buffer two ways, in the
same run:

* numpy:  Message.decode_batch(buffer) (a zero-copy view) plus a reduction
  over two columns (sum of seq, max of timestamp_ns);
* struct: a for loop of Message.STRUCT.unpack_from over the same buffer,
  doing the same reduction; measured over --loop-n messages (default 1 M)
  and reported per message, since it is linear.

Prints a table (msgs/s and the ratio); --json prints the numbers as JSON
(numpy_decode_msgs_per_s, struct_loop_decode_msgs_per_s, ratio, ...). Uses the
golden generated module, so it needs no Go toolchain.

    .venv/bin/python tests/python/bench_decode.py [--n 10000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golden" / "python"))
from message_tsch import Message  # noqa: E402


def make_buffer(n: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    records = np.zeros(n, dtype=Message.DTYPE)
    records["seq"] = np.arange(n, dtype=np.uint64)
    records["timestamp_ns"] = np.arange(n, dtype=np.uint64) * 1000 + 1_700_000_000_000_000_000
    records["payload"][:, 0] = 0xAB
    return records.view(np.uint8)


def numpy_decode(buffer: np.ndarray[Any, np.dtype[np.uint8]]) -> tuple[int, int]:
    batch = Message.decode_batch(buffer)
    return int(batch["seq"].sum()), int(batch["timestamp_ns"].max())


def struct_loop_decode(buffer: memoryview, n: int) -> tuple[int, int]:
    unpack_from, size = Message.STRUCT.unpack_from, Message.SIZE
    seq_sum, ts_max = 0, 0
    for offset in range(0, n * size, size):
        values = unpack_from(buffer, offset)
        seq_sum += values[0]
        if values[1] > ts_max:
            ts_max = values[1]
    return seq_sum, ts_max


def best_of(repeat: int, fn: Any, *args: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="messages in the buffer")
    parser.add_argument("--loop-n", type=int, default=1_000_000, help="messages the struct loop decodes")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    loop_n = min(args.loop_n, args.n)

    buffer = make_buffer(args.n)
    np_s, np_result = best_of(args.repeat, numpy_decode, buffer)
    loop_s, loop_result = best_of(args.repeat, struct_loop_decode, memoryview(buffer), loop_n)
    if loop_n == args.n:
        assert loop_result == np_result, (loop_result, np_result)

    numpy_rate, loop_rate = args.n / np_s, loop_n / loop_s
    result = {
        "messages": args.n,
        "message_size": Message.SIZE,
        "numpy_decode_seconds": np_s,
        "numpy_decode_msgs_per_s": numpy_rate,
        "struct_loop_messages": loop_n,
        "struct_loop_decode_seconds": loop_s,
        "struct_loop_decode_msgs_per_s": loop_rate,
        "ratio": numpy_rate / loop_rate,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Decoding {args.n:,} Messages ({Message.SIZE} B each, {args.n * Message.SIZE / 1e6:,.0f} MB)")
    print(f"{'method':<44} {'msgs/s':>16} {'ratio':>8}")
    print(f"{'numpy: decode_batch + column reduction':<44} {numpy_rate:>16,.0f} {numpy_rate / loop_rate:>7.1f}x")
    loop_label = f"struct: unpack_from loop ({loop_n:,} msgs)"
    print(f"{loop_label:<44} {loop_rate:>16,.0f} {1.0:>7.1f}x")


if __name__ == "__main__":
    main()
