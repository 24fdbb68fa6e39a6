"""A user's script, as the README shows it: attach, publish, receive batches
and records. tests/consumer runs mypy --strict over it, then runs it.

usage: python consumer.py RING
"""

from __future__ import annotations

import sys

import numpy as np

from tachyon import Publisher, Subscriber
from telemetry_tsch import Reading, Unit

COUNT = 200


def main(ring: str) -> int:
    pub = Publisher.create(ring, Reading, capacity=256)
    with Subscriber.attach(ring, Reading, timeout=5) as sub:
        with pub:
            for i in range(COUNT // 2):
                pub.publish(Reading(seq=i, sensor=b"s%d" % (i % 7), value=i / 4, unit=Unit.CELSIUS, ok=i % 2 == 0))
            records = np.zeros(COUNT - COUNT // 2, dtype=Reading.DTYPE)
            records["seq"] = np.arange(COUNT // 2, COUNT)
            records["unit"] = Unit.KELVIN
            pub.publish_array(records)
        # The publisher closed: the subscriber drains what is left, then
        # batches() ends.
        seqs: list[int] = []
        first: list[Reading] = []
        for batch in sub.batches(max_n=64):
            with batch:
                seqs.extend(int(s) for s in batch["seq"])
                if not first:
                    first = batch.records()
    assert seqs == list(range(COUNT)), seqs
    reading = first[0]
    assert (reading.seq, reading.sensor, reading.unit, reading.ok) == (0, b"s0", Unit.CELSIUS, True), reading
    print(f"received {len(seqs)} readings in order; first from {reading.sensor.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
