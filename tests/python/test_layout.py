"""The generated layouts agree with the layout model and with C (ctypes).

For every struct and message of RANDOM_SCHEMAS random schemas: STRUCT.size,
the DTYPE's offsets and itemsize and a ctypes.Structure built from the
layout document all give the model's offsets and size.
"""

from __future__ import annotations

import ctypes
import dataclasses
from typing import Any

import numpy as np

from conftest import Generated
from oracle import ctypes_struct, py_field, py_name


def test_random_layouts_agree_with_model_and_ctypes(random_schemas: Generated) -> None:
    checked = 0
    for module_name in random_schemas.modules:
        module = random_schemas.load(module_name)
        layout = random_schemas.layouts[module_name]
        cache: dict[str, Any] = {}
        for name, spec in layout.structs.items():
            where = f"{module_name}.{name}"
            cls = getattr(module, py_name(name))
            names = [f["name"] for f in spec["fields"]]
            offsets = [f["offset"] for f in spec["fields"]]

            assert cls.SIZE == spec["size"], where
            assert cls.ALIGN == spec["align"], where
            assert cls.STRUCT.size == spec["size"], where
            assert cls.STRUCT.format.startswith("<"), where

            dtype = cls.DTYPE
            assert dtype.itemsize == spec["size"], where
            assert list(dtype.names) == names, where
            assert [dtype.fields[n][1] for n in names] == offsets, where
            assert [dtype.fields[n][0].itemsize for n in names] == [f["size"] for f in spec["fields"]], where

            c = ctypes_struct(name, layout, cache)
            assert [getattr(c, n).offset for n in names] == offsets, where
            assert ctypes.sizeof(c) == spec["size"], where
            assert -ctypes.sizeof(c) % spec["align"] == 0, where

            assert [f.name for f in dataclasses.fields(cls)] == [py_field(n) for n in names], where
            if spec["kind"] == "message":
                assert cls.TYPE_ID == spec["id"], where
                assert cls.FINGERPRINT == int(spec["fingerprint"], 16), where
            checked += 1
    assert checked >= 2 * len(random_schemas.modules)


def test_random_records_round_trip(random_schemas: Generated) -> None:
    """unpack(pack(x)) == x, and the bytes agree with NumPy's view of them."""
    import random

    from oracle import normalize_struct, random_record

    rng = random.Random(7)
    for module_name in random_schemas.modules:
        module = random_schemas.load(module_name)
        layout = random_schemas.layouts[module_name]
        for name in layout.structs:
            cls = getattr(module, py_name(name))
            record = random_record(name, layout, module, rng)
            wire = record.pack()
            assert len(wire) == cls.SIZE
            assert cls.unpack(wire) == record, f"{module_name}.{name}"
            batch = cls.decode_batch(wire)
            assert normalize_struct(batch[0].tolist(), name, layout) == normalize_struct(record, name, layout)
            assert np.shares_memory(batch, np.frombuffer(wire, np.uint8))
