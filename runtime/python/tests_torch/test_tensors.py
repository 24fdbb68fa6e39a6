"""to_tensors: zero-copy CPU tensors of a batch's fields, checked against NumPy's own views."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tachyon
from tachyon import Publisher, Subscriber
from tachyon.torch import field_names, to_tensors

from tests.support import Message, records

from .support import NP_TO_TORCH, Tape, fill_random, np_field

def check_against_numpy(tensors: dict[str, torch.Tensor], arr: np.ndarray) -> None:  # type: ignore[type-arg]
    """Every tensor is NumPy's view of that field: address, dtype, shape, strides, values."""
    assert list(tensors) == field_names(arr.dtype)
    for name, t in tensors.items():
        ref = np_field(arr, name)
        if ref.dtype.kind == "S":  # [N]char: the tensor has the bytes as a last dimension
            n = ref.dtype.itemsize
            assert t.dtype == torch.uint8, name
            assert tuple(t.shape) == ref.shape + (n,), name
            assert tuple(s * t.element_size() for s in t.stride()) == ref.strides + (1,), name
            assert t.data_ptr() == ref.ctypes.data, name
            got = np.ascontiguousarray(t.numpy()).view(ref.dtype)[..., 0]
            assert (got == ref).all(), name
            continue
        assert t.dtype == NP_TO_TORCH[ref.dtype], name
        assert tuple(t.shape) == ref.shape, name
        assert tuple(s * t.element_size() for s in t.stride()) == ref.strides, name
        assert t.data_ptr() == ref.ctypes.data, f"{name}: not the slot's memory"
        assert np.array_equal(t.numpy(), ref), name


def test_seed_message_is_viewed_in_place(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=64) as pub, Subscriber.attach(ring_name, Message) as sub:
        pub.publish_array(records(range(40)))
        pub.flush()
        batch = sub.recv_batch()
        t = to_tensors(batch)
        slot = batch.array.dtype.itemsize
        base = batch.array.ctypes.data  # the first slot's address in the mapping
        assert {k: (v.dtype, tuple(v.shape), v.stride()) for k, v in t.items()} == {
            "seq": (torch.uint64, (40,), (slot // 8,)),
            "timestamp_ns": (torch.uint64, (40,), (slot // 8,)),
            "payload": (torch.uint8, (40, 48), (slot, 1)),
        }
        offsets = batch.array.dtype.fields
        assert offsets is not None
        for k, v in t.items():
            assert v.data_ptr() == base + offsets[k][1], k  # the slot's address, not a copy
        check_against_numpy(t, batch.array)
        assert t["seq"].tolist() == list(range(40))
        # The tensors are views of the batch: the ring refuses to move past them.
        with pytest.raises(tachyon.ViewStillReferenced):
            batch.release()
        seq = t["seq"][1:5]  # a view of a view keeps it borrowed too
        del t, v
        with pytest.raises(tachyon.ViewStillReferenced):
            batch.release()
        del seq
        batch.release()
        with pytest.raises(tachyon.HandleClosed):
            to_tensors(batch)


def test_nested_arrays_and_strided_fields(ring_name: str) -> None:
    """Tape: structs in structs, arrays of structs, a 2-D f32 array, [8]char, bool,
    enums, every integer width; the message sits 64 bytes into a 576-byte slot."""
    rng = np.random.default_rng(18)
    src = np.zeros(24, dtype=Tape.DTYPE)
    fill_random(src, rng)
    with Publisher.create(ring_name, Tape, capacity=32) as pub, Subscriber.attach(ring_name, Tape) as sub:
        pub.publish_array(src)
        pub.flush()
        with sub.recv_batch() as batch:
            arr = batch.array
            assert arr.dtype.itemsize > Tape.SIZE  # a slot header: fields are shifted
            t = to_tensors(batch)
            check_against_numpy(t, arr)
            for name in field_names(Tape.DTYPE):  # and the values are what was published
                got = t[name].numpy()
                want = np_field(src, name)
                if want.dtype.kind == "S":
                    want = np.ascontiguousarray(want).view(np.uint8).reshape(got.shape)
                assert np.array_equal(got, want), name
            assert t["heat"].shape == (24, 4, 8) and t["heat"].stride() == (arr.dtype.itemsize // 4, 8, 1)
            assert t["trades.price"].shape == (24, 4) and t["trades.price"].stride() == (arr.dtype.itemsize // 8, 2)
            assert t["book.bids.side"].stride() == (arr.dtype.itemsize, 16)
            assert t["book.venue"].shape == (24, 8)
            del t, arr, got, want


def test_fields_selects_and_names_what_exists(ring_name: str) -> None:
    with Publisher.create(ring_name, Tape, capacity=16) as pub, Subscriber.attach(ring_name, Tape) as sub:
        pub.publish_array(np.zeros(3, dtype=Tape.DTYPE))
        pub.flush()
        with sub.recv_batch() as batch:
            book = to_tensors(batch, ["book"])
            assert list(book) == [n for n in field_names(Tape.DTYPE) if n.startswith("book.")]
            assert list(to_tensors(batch, ["ratio", "seq"])) == ["seq", "ratio"]  # layout order
            assert list(to_tensors(batch, "heat")) == ["heat"]
            with pytest.raises(KeyError, match=r"no field 'book\.nope'; the fields are seq, trades\.price"):
                to_tensors(batch, ["book.nope"])
            with pytest.raises(KeyError, match="no field 'boo'"):
                to_tensors(batch, ["boo"])  # a prefix of a name is not a struct
            del book


def test_an_empty_batch_gives_empty_tensors(ring_name: str) -> None:
    with Publisher.create(ring_name, Message, capacity=16), Subscriber.attach(ring_name, Message) as sub:
        batch = sub.recv_batch(timeout=0)
        assert not batch
        t = to_tensors(batch)
        assert t["payload"].shape == (0, 48) and t["seq"].shape == (0,)


def test_an_unaligned_field_is_refused_by_name() -> None:
    packed: Any = np.dtype({"names": ["a", "b"], "formats": ["u1", "<u4"], "offsets": [0, 1], "itemsize": 8})
    with pytest.raises(TypeError, match=r"field 'b' \(<u4\) at byte offset 1 .* not aligned to its 4-byte type"):
        field_names(packed)
    with pytest.raises(TypeError, match=r"field 'c' has dtype <c8, which has no torch dtype"):
        field_names(np.dtype([("c", "<c8")]))
