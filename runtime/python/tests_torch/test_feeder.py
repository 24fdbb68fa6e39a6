"""DeviceFeeder: ring batches as tensors on a device, never released before their copy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tachyon
from tachyon import Publisher, Subscriber
from tachyon.torch import DeviceBatch, DeviceFeeder, to_tensors

from tests.support import Message, records

from .conftest import needs_cuda
from .support import Tape, Mappings, count_ops, fill_random, np_field


def bad_rows(db: DeviceBatch) -> int:
    """Rows that are not message ``start + i`` as the peer publisher wrote it (PEERS.md):
    seq = its ring index, payload[j] = (seq * 131 + j * 7) mod 256. A slot overwritten
    before the copy was read holds a later message (or half of one)."""
    seq = db["seq"].view(torch.int64)  # same width: a view, for the arithmetic uint64 lacks
    want = db.start + torch.arange(len(db), device=seq.device)
    j = torch.arange(48, device=seq.device) * 7
    payload = ((seq[:, None] * 131 + j) & 0xFF).to(torch.uint8)
    bad = (seq != want) | (db["payload"] != payload).any(dim=1)
    return int(bad.sum())


def start_pub(cpppeer: Path, ring: str, count: int, capacity: int, policy: str) -> subprocess.Popen[str]:
    argv = [str(cpppeer), "pub", "--ring", ring, "--count", str(count), "--capacity", str(capacity),
            "--batch", "8", "--policy", policy, "--timeout-s", "30"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, f"{p.args!r}: exit {p.returncode}\n{err}"
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def test_cpu_feeder_views_the_ring_and_copies_nothing(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=256) as pub, Subscriber.attach(ring_name, Message) as sub:
        pub.publish_array(records(range(200)))
        pub.flush()
        ring = Mappings(ring_name)
        feeder = DeviceFeeder(sub, "cpu", max_batch=64)
        assert feeder.zero_copy
        seen = 0
        while seen < 200:
            with count_ops() as ops:
                db = feeder.recv(timeout=5)
            assert db is not None and not db.owned and db.device == torch.device("cpu")
            assert ops.copies == [], f"the CPU feeder copied: {ops.copies}"
            assert ops.calls, "the op counter saw nothing: it would not see a copy either"
            seq, payload = db["seq"], db["payload"]
            assert ring.hold(seq) and ring.hold(payload)
            assert payload.data_ptr() - seq.data_ptr() == 16  # the fields' offsets within one slot
            assert seq.stride() == (payload.stride(0) // 8,)
            assert bad_rows(db) == 0 and db.start == seen
            seen += len(db)
            del seq, payload
        assert feeder.received == 200 and feeder.dropped == 0
        # A batch is superseded by the next receive: its views are gone with it.
        last = db
        assert last is not None
        assert feeder.recv(timeout=0) is None
        with pytest.raises(tachyon.HandleClosed, match="superseded by the next receive"):
            last["seq"]
        feeder.close()


def test_cpu_views_kept_past_two_receives_stop_the_ring(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64) as pub, Subscriber.attach(ring_name, Message) as sub:
        feeder = DeviceFeeder(sub, "cpu", max_batch=4)
        kept = []
        for i in range(3):
            pub.publish_array(records(range(4 * i, 4 * i + 4)))
            pub.flush()
            if i < 2:
                db = feeder.recv(timeout=5)
                assert db is not None
                kept.append(db["seq"])  # a view kept past the batch: deferred once
        with pytest.raises(tachyon.ViewStillReferenced, match="tensors of two earlier CPU batches"):
            feeder.recv(timeout=5)
        kept.clear()
        db = feeder.recv(timeout=5)
        assert db is not None and db.start == 8


def test_feeder_never_releases_a_batch_before_its_copy(ring_name: str, cpppeer: Path, device: str) -> None:
    """A C++ publisher on a 64-slot blocking ring refills each slot the moment it is
    released: every row the feeder hands out must still be the message published there."""
    count = 100_000
    pub = start_pub(cpppeer, ring_name, count, 64, "block")
    kept: list[DeviceBatch] = []
    with Subscriber.attach(ring_name, Message, timeout=20) as sub:
        with DeviceFeeder(sub, device, max_batch=16) as feeder:
            expect = 0
            for db in feeder:
                assert db.start == expect
                assert bad_rows(db) == 0, f"batch at {db.start} was overwritten under the feeder"
                expect += len(db)
                if db.owned and len(kept) < 2000:
                    kept.append(db)  # owned tensors must stay valid after later batches
            assert feeder.received == count and feeder.dropped == 0
        assert sub.dropped == 0
    assert finish(pub)["published"] == count
    assert all(bad_rows(db) == 0 for db in kept), "an owned batch changed after it was handed out"
    assert (device == "cpu") == (not kept)


def test_lossy_reader_gets_only_intact_batches(ring_name: str, cpppeer: Path, device: str) -> None:
    """drop_oldest never waits: the publisher laps the reader and overwrites slots while
    they are copied. Only intact copies may come out; torn ones are counted, not yielded."""
    count = 2_000_000
    pub = start_pub(cpppeer, ring_name, count, 64, "drop_oldest")
    delivered = 0
    kept: list[DeviceBatch] = []
    with Subscriber.attach(ring_name, Message, timeout=20) as sub:
        with DeviceFeeder(sub, device, max_batch=32) as feeder:
            assert not feeder.zero_copy  # a view could be overwritten under the model
            for db in feeder:
                assert db.owned
                assert bad_rows(db) == 0, f"a torn batch at {db.start} was handed out"
                delivered += len(db)
                if len(kept) < 500:
                    kept.append(db)
            assert feeder.received == delivered
            lapped = sub.dropped
            # Copies the publisher overwrote mid-way are discarded (often a few hundred of
            # ~3000 batches here, sometimes none: test_a_copy_overwritten_... makes one surely).
    p = finish(pub)
    assert p["published"] == count
    assert lapped > 0, "the publisher never lapped the reader: this test exercised nothing"
    assert delivered + lapped == count
    assert all(bad_rows(db) == 0 for db in kept)


def test_a_copy_overwritten_before_its_release_is_discarded(
    ring_name: str, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministically torn: right after the feeder copies a batch out of a drop_oldest
    ring, and before it releases it, the publisher laps the reader. That copy must be
    discarded and counted, and the feeder must go on with what follows."""
    with Publisher.create(ring_name, Message, capacity=16, policy="drop_oldest") as pub, \
            Subscriber.attach(ring_name, Message) as sub:
        feeder = DeviceFeeder(sub, device, max_batch=8)
        gather = feeder._gather
        laps = iter([True, False])

        def gather_then_lap(batch: Any, out: torch.Tensor) -> None:
            gather(batch, out)
            if next(laps, False):
                pub.publish_array(records(range(16, 40)))  # overwrites every slot of the ring
                pub.flush()

        monkeypatch.setattr(feeder, "_gather", gather_then_lap)
        pub.publish_array(records(range(16)))
        pub.flush()
        db = feeder.recv(timeout=5)
        assert feeder.dropped == 8  # the first batch, torn, was not handed out
        assert db is not None and bad_rows(db) == 0 and db.start >= 16
        assert feeder.received == len(db)
        feeder.close()


def test_control_plain_views_of_a_lossy_ring_do_get_overwritten(ring_name: str, cpppeer: Path) -> None:
    """The control for the two tests above: views read slowly from a drop_oldest ring see
    the publisher's overwrites (or the release reports them). So bad_rows and this
    publisher can catch a feeder that lets go of slots too early."""
    pub = start_pub(cpppeer, ring_name, 2_000_000, 64, "drop_oldest")
    caught = 0
    with Subscriber.attach(ring_name, Message, timeout=20, max_lag=64) as sub:
        try:
            while caught < 5:
                batch = sub.recv_batch(32, timeout=10)
                t = to_tensors(batch)
                time.sleep(0.001)  # the publisher runs on
                db = DeviceBatch(t, ring_name, batch.start, len(batch), torch.device("cpu"), owned=False)
                torn = bad_rows(db)
                del t, db
                try:
                    batch.release()
                except tachyon.Overwritten:
                    caught += 1
                    continue
                assert torn == 0, "rows changed but release did not report it"
        except tachyon.PublisherClosed:
            pass
    finish(pub)
    assert caught >= 5, "the publisher never overwrote a slot under a slow view"


def test_options_are_checked(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16), Subscriber.attach(ring_name, Message) as sub:
        with pytest.raises(ValueError, match=r"max_batch 17, want 1\.\.16 \(the ring's capacity\)"):
            DeviceFeeder(sub, "cpu", max_batch=17)
        with pytest.raises(ValueError, match=r"device 'meta', want 'cpu' or 'cuda\[:N\]'"):
            DeviceFeeder(sub, "meta")
        with pytest.raises(KeyError, match="no field 'price'; the fields are seq, timestamp_ns, payload"):
            DeviceFeeder(sub, "cpu", fields=["price"])
        if not torch.cuda.is_available():
            with pytest.raises(RuntimeError, match="'cuda' asked for, but torch .* sees no CUDA device"):
                DeviceFeeder(sub, "cuda")
        feeder = DeviceFeeder(sub, "cpu", fields=["payload"])
        feeder.close()
        with pytest.raises(tachyon.HandleClosed, match="is closed"):
            feeder.recv(timeout=0)


def test_fields_pick_what_reaches_the_device(ring_name: str, device: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64) as pub, Subscriber.attach(ring_name, Message) as sub:
        pub.publish_array(records(range(10)))
        pub.flush()
        with DeviceFeeder(sub, device, fields=["payload", "seq"]) as feeder:
            db = feeder.recv(timeout=5)
            assert db is not None and list(db.keys()) == ["seq", "payload"]
            assert db["payload"].device.type == device and tuple(db["payload"].shape) == (10, 48)
            assert db["payload"].cpu().numpy().tolist() == records(range(10))["payload"].tolist()
            with pytest.raises(KeyError, match="no field 'timestamp_ns'; it has seq, payload"):
                db["timestamp_ns"]


def test_copied_batches_keep_every_field_layout(ring_name: str, device: str) -> None:
    """The copying paths (a lossy CPU reader; CUDA) deliver Tape's nested and strided
    fields laid out as in a compact Tape array, with the values published."""
    src = np.zeros(20, dtype=Tape.DTYPE)
    fill_random(src, np.random.default_rng(7))
    with Publisher.create(ring_name, Tape, capacity=32) as pub, Subscriber.attach(ring_name, Tape, max_lag=32) as sub:
        pub.publish_array(src)
        pub.flush()
        with DeviceFeeder(sub, device) as feeder:
            assert not feeder.zero_copy
            db = feeder.recv(timeout=5)
            assert db is not None and db.owned and len(db) == 20
            for name, t in db.tensors.items():
                want = np_field(src, name)
                if want.dtype.kind == "S":
                    want = np.ascontiguousarray(want).view(np.uint8).reshape(want.shape + (want.dtype.itemsize,))
                    strides = np_field(src, name).strides + (1,)
                else:
                    strides = want.strides
                assert t.device.type == device and tuple(t.shape) == want.shape, name
                assert tuple(s * t.element_size() for s in t.stride()) == strides, name
                assert np.array_equal(t.cpu().numpy(), want), name


def test_cpu_inference_adds_only_the_models_copy(ring_name: str) -> None:
    """On the CPU the feeder copies nothing; the model's input conversion
    (uint8 payload -> float32 features) is the one copy of the stage."""
    model = torch.nn.Sequential(torch.nn.Linear(48, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with Publisher.create(ring_name, Message, capacity=64) as pub, Subscriber.attach(ring_name, Message) as sub:
        pub.publish_array(records(range(64)))
        pub.flush()
        feeder = DeviceFeeder(sub, "cpu")
        with torch.inference_mode(), count_ops() as ops:
            db = feeder.recv(timeout=5)
            assert db is not None
            fed = list(ops.copies)
            x = db["payload"].to(torch.float32)
            pred = model(x).argmax(dim=1)
        assert fed == []
        assert len(ops.copies) == 1 and ops.copies[0].startswith(("aten._to_copy", "aten.to.")), ops.copies
        assert pred.shape == (64,)
        del x, db
        feeder.close()


@needs_cuda
def test_cuda_path_pinned_staging_own_stream_no_device_sync(
    ring_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sync(*_: Any) -> None:
        raise AssertionError("the feeder synchronized the whole device")

    monkeypatch.setattr(torch.cuda, "synchronize", no_sync)
    with Publisher.create(ring_name, Message, capacity=1024) as pub, Subscriber.attach(ring_name, Message) as sub:
        feeder = DeviceFeeder(sub, "cuda", max_batch=128)
        assert all(buf.is_pinned() for buf in feeder._staging)
        assert feeder._stream != torch.cuda.current_stream()
        out = []
        for lo in range(0, 1024, 128):
            pub.publish_array(records(range(lo, lo + 128)))
            pub.flush()
            db = feeder.recv(timeout=5)
            assert db is not None and db.owned and db["seq"].is_cuda
            out.append(db["payload"].float().sum(dim=1))  # the model's stream uses it at once
        want = records(range(1024))["payload"].astype(np.float64).sum(axis=1)
        got = torch.cat(out).cpu().numpy()
        assert np.array_equal(got, want)
        feeder.close()


def test_the_inference_demo_runs_from_outside_the_checkout(tmp_path: Path, cpppeer: Path) -> None:
    """examples/pipeline/gpu_inference.py, as `make demo` runs it: lost 0, and on the CPU
    every batch a view of the ring."""
    script = Path(__file__).resolve().parents[3] / "examples" / "pipeline" / "gpu_inference.py"
    r = subprocess.run([sys.executable, str(script), "--cpp", str(cpppeer), "--count", "100000", "--batch", "1024"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert out.startswith(f"device: {device}")
    assert "100000 messages in " in out and "lost 0, dropped 0, out of order 0" in out
    assert "end-to-end latency p50 " in out and "batch 0: 1024 messages from index 0 -> predicted classes" in out
    if device == "cpu":
        assert "the CPU tensors were views of the ring in every batch: True" in out
