"""pypeer's Checker: the vectorised PEERS.md checks every Python stream relies on.

Its fast path (a whole batch proven in order and intact by two array
comparisons) must fall back to the counting path on any gap, reordering or
torn payload, or a broken stream would be reported clean.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from .support import PYPEER, records


@pytest.fixture()
def checker() -> Any:
    spec = importlib.util.spec_from_file_location("pypeer_under_test", PYPEER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Checker()


def feed(chk: Any, batch: np.ndarray) -> None:  # type: ignore[type-arg]
    chk.commit(len(batch), chk.check(batch["seq"], batch["payload"], None))


def test_clean_stream_counts_nothing(checker: Any) -> None:
    for start, stop in [(0, 1), (1, 1000), (1000, 70_000), (70_000, 70_300)]:
        feed(checker, records(range(start, stop)))
    assert (checker.received, checker.gaps, checker.torn, checker.reordered) == (70_300, 0, 0, 0)
    assert (checker.first, checker.last) == (0, 70_299)


def test_gap_between_and_inside_batches(checker: Any) -> None:
    feed(checker, records(range(0, 100)))
    feed(checker, records(range(150, 200)))  # 50 missing between batches
    feed(checker, np.concatenate([records(range(200, 210)), records(range(213, 220))]))  # 3 inside
    assert checker.gaps == 53
    assert checker.torn == checker.reordered == 0


def test_torn_payload_is_counted(checker: Any) -> None:
    batch = records(range(0, 500))
    batch["payload"][321, 17] ^= 0x40
    feed(checker, batch)
    assert checker.torn == 1
    assert checker.gaps == checker.reordered == 0


def test_reordered_inside_a_batch(checker: Any) -> None:
    batch = records(range(0, 8))
    batch[[3, 4]] = batch[[4, 3]]
    feed(checker, batch)
    assert checker.reordered == 1
    assert checker.torn == 0


def test_strided_ring_view(checker: Any) -> None:
    # A ring batch is a view with the slot's stride (72 B), not a packed array.
    slots = np.zeros(1000, dtype=np.dtype({"names": ["m"], "formats": [records(range(0)).dtype], "offsets": [8], "itemsize": 72}))
    slots["m"] = records(range(5, 1005))
    feed(checker, records(range(0, 5)))
    feed(checker, slots["m"])
    assert (checker.received, checker.gaps, checker.torn, checker.reordered) == (1005, 0, 0, 0)
    slots["m"]["payload"][999, 0] ^= 1
    feed(checker, slots["m"][999:])
    assert checker.reordered == 1  # seq 1004 again
    assert checker.torn == 1
