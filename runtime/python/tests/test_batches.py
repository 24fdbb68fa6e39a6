"""Zero-copy batches: views of shared memory, their lifetime, and DLPack."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from .support import Message, records

import tachyon
from tachyon import HandleClosed, Publisher, Subscriber, ViewStillReferenced


@pytest.fixture
def pair(ring_name: str) -> Iterator[tuple[Publisher, Subscriber]]:  # type: ignore[type-arg]
    with Publisher.create(ring_name, Message, capacity=16, batch=4) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            yield pub, sub


def head_in_segment(sub: Subscriber) -> int:  # type: ignore[type-arg]
    return next(s.head for s in tachyon.inspect(sub.name).subscribers if s.index == sub.index)


def test_batch_is_a_strided_view_of_the_slots(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(10)))
    pub.flush()
    with sub.recv_batch() as b:
        arr = b.array
        mapping = np.frombuffer(sub._seg.mm, dtype=np.uint8)
        assert np.shares_memory(arr, mapping)
        g = sub._seg.geo
        assert arr.dtype.itemsize == g.slot_size == 128  # a line slot: two whole cache lines
        assert arr.dtype.fields["seq"][1] == g.slot_msg_offset
        assert arr.dtype.names == Message.DTYPE.names
        assert not arr.flags.writeable
        assert b["seq"].tolist() == list(range(10))
        assert b["payload"].shape == (10, 48) and b["payload"].strides == (128, 1)
        assert b.start == 0 and len(b) == 10
        del arr, mapping
    assert b.released and sub.received == 10


def test_batch_never_wraps(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(12)))
    pub.flush()
    with sub.recv_batch() as b:
        assert len(b) == 12
    pub.publish_array(records(range(12, 22)))  # indices 12..21: slots 12..15 then 0..5
    pub.flush()
    sizes = []
    for _ in range(2):
        with sub.recv_batch() as b:
            sizes.append((b.start, len(b), int(b["seq"][0])))
    assert sizes == [(12, 4, 12), (16, 6, 16)]


def test_records_and_copy_are_owned(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(5)))
    pub.flush()
    with sub.recv_batch() as b:
        recs = b.records()
        owned = b.copy()
    assert [r.seq for r in recs] == list(range(5))
    assert recs[3] == Message.unpack_from(records(range(5)).tobytes(), 3 * 64)
    assert owned.dtype == Message.DTYPE and owned.flags.owndata
    assert owned["seq"].tolist() == list(range(5))  # still valid after release


def test_release_refused_while_a_view_lives(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(8)))
    pub.flush()
    b = sub.recv_batch()
    kept = b["seq"][2:]  # a view of a view
    with pytest.raises(ViewStillReferenced, match="live NumPy view") as ei:
        b.release()
    assert sub.name in str(ei.value)
    assert not b.released and sub.received == 0
    assert head_in_segment(sub) == 0  # the head did not move: nothing can be overwritten
    assert kept.tolist() == list(range(2, 8))
    del kept
    b.release()
    assert b.released and sub.received == 8 and head_in_segment(sub) == 8
    with pytest.raises(HandleClosed, match="released"):
        _ = b.array


def test_every_kind_of_view_holds_the_batch(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    makers = [
        lambda b: b.array,
        lambda b: b["payload"].reshape(-1),
        lambda b: b["seq"].view(np.int64),
        lambda b: memoryview(b["seq"]),
        lambda b: np.lib.stride_tricks.as_strided(b["seq"]),
        lambda b: np.from_dlpack(b["timestamp_ns"]),
        lambda b: b.array.view(np.recarray),
        lambda b: np.asarray(b["seq"])[::2],
    ]
    for i, make in enumerate(makers):
        pub.publish_array(records(range(i, i + 1)))
        pub.flush()
        b = sub.recv_batch()
        view = make(b)
        with pytest.raises(ViewStillReferenced):
            b.release()
        del view
        b.release()
    assert sub.received == len(makers)


def test_with_block_reports_a_leaked_view(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(3)))
    pub.flush()
    with pytest.raises(ViewStillReferenced):
        with sub.recv_batch() as b:
            seqs = b["seq"]
    assert seqs.sum() == 3
    del seqs
    b.release()
    assert sub.received == 3


def test_an_exception_in_with_is_not_masked(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(3)))
    pub.flush()
    with pytest.raises(ZeroDivisionError):
        with sub.recv_batch() as b:
            seqs = b["seq"]  # noqa: F841 - alive in the traceback's frame
            1 / 0  # noqa: B018
    # The batch stayed borrowed; the next receive releases it once the view is gone.
    del seqs
    pub.publish_array(records(range(3, 4)))
    pub.flush()
    assert sub.recv(timeout=1).seq == 3
    assert sub.received == 4


def test_iteration_defers_a_batch_still_referenced(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64, batch=8) as pub:
        with Subscriber.attach(ring_name, Message) as sub:
            seen: list[int] = []
            for i in range(6):
                pub.publish_array(records(range(8 * i, 8 * i + 8)))
            pub.flush()
            pub.close()
            for batch in sub.batches(max_n=8):
                seqs = batch["seq"]  # rebound each iteration: the previous batch is deferred once
                seen.extend(seqs.tolist())
            assert seen == list(range(48))
            assert sub.received == 40  # the last batch is still viewed by `seqs`
            del seqs
            with pytest.raises(tachyon.PublisherClosed):
                sub.recv(timeout=0)  # releases it first
            assert sub.received == 48


def test_two_referenced_batches_are_refused(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(6)))
    pub.flush()
    a = sub.recv_batch(max_n=2)["seq"]
    b = sub.recv_batch(max_n=2)["seq"]  # the first is deferred: still borrowed
    assert head_in_segment(sub) == 0
    with pytest.raises(ViewStillReferenced, match="2 earlier batches"):
        sub.recv_batch(max_n=2)
    del a, b
    with sub.recv_batch(max_n=2) as c:
        assert c["seq"].tolist() == [4, 5]
    assert sub.received == 6 and head_in_segment(sub) == 6


def test_dlpack_numeric_fields_without_copy(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    pub.publish_array(records(range(7)))
    pub.flush()
    b = sub.recv_batch()
    seq = np.from_dlpack(b["seq"])
    payload = np.from_dlpack(b["payload"])
    assert np.shares_memory(seq, b.array) and np.shares_memory(payload, b.array)
    assert seq.tolist() == list(range(7)) and seq.strides == (128,)
    assert payload.shape == (7, 48) and payload.strides == (128, 1)
    assert (payload == records(range(7))["payload"]).all()
    assert not seq.flags.writeable  # read-only, signalled through DLPack >= 1.0
    with pytest.raises(BufferError, match="readonly"):
        b["seq"].__dlpack__()  # an unversioned consumer cannot be told it is read-only
    with pytest.raises(ViewStillReferenced):
        b.release()
    del seq, payload
    b.release()


def test_dlpack_into_torch(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    torch = pytest.importorskip("torch")
    pub, sub = pair
    pub.publish_array(records(range(5)))
    pub.flush()
    b = sub.recv_batch()
    t = torch.from_dlpack(b["seq"])
    assert t.tolist() == list(range(5))
    assert t.data_ptr() == b["seq"].ctypes.data
    with pytest.raises(ViewStillReferenced):
        b.release()
    del t
    b.release()


def test_claim_view_is_revoked_by_commit(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    pub, sub = pair
    view = pub.claim()
    assert len(view) == Message.SIZE and not view.readonly
    assert pub.claim() is view  # a second claim before commit: the same slot
    Message(seq=42, timestamp_ns=1, payload=tuple(range(48))).pack_into(view)
    pub.commit()
    with pytest.raises(ValueError, match="released"):
        view[0] = 1
    pub.flush()
    m = sub.recv(timeout=1)
    assert m is not None and m.seq == 42 and m.payload == tuple(range(48))


def test_empty_batch_on_timeout(pair: tuple[Publisher, Subscriber]) -> None:  # type: ignore[type-arg]
    _, sub = pair
    with sub.recv_batch(timeout=0.01) as b:
        assert not b and len(b) == 0 and b.array.shape == (0,)
    assert sub.recv(timeout=0) is None


def test_close_with_a_live_view_warns_and_keeps_the_mapping(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16) as pub:
        sub = Subscriber.attach(ring_name, Message)
        pub.publish_array(records(range(3)))
        pub.flush()
        seqs = sub.recv_batch()["seq"]
        with pytest.warns(ResourceWarning, match="still has live views"):
            sub.close()
        assert seqs.tolist() == [0, 1, 2]  # still mapped: never unmapped under a view
        assert tachyon.inspect(ring_name).subscribers == ()  # but deregistered
        del seqs
