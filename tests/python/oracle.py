"""Independent views of a layout model, for comparing generated code against.

Everything here works from the ``layout --json`` documents (see conftest),
never from the generated modules: type spellings are parsed again, C
layouts come from ctypes, and values are normalised to plain nested lists
so that records, NumPy rows and Go's JSON compare directly.
"""

from __future__ import annotations

import builtins
import ctypes
import dataclasses
import keyword
import random
import re
import struct
from typing import Any

from conftest import Layout

PRIMITIVES: dict[str, Any] = {
    "bool": ctypes.c_bool,
    "char": ctypes.c_char,
    "u8": ctypes.c_uint8,
    "u16": ctypes.c_uint16,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
    "i8": ctypes.c_int8,
    "i16": ctypes.c_int16,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}

# The escape rule of gen/python (see its doc.go), restated from Python's own
# keyword and builtins lists.
_RESERVED = (
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | {n for n in dir(builtins) if not n.startswith("_")}
    | {"annotations", "enum", "struct", "dataclass", "np", "npt", "TYPE_CHECKING",
       "Any", "ClassVar", "Final", "Callable", "Sequence", "ReadableBuffer",
       "WriteableBuffer"}
)
_RECORD_API = {"pack", "pack_into", "unpack", "unpack_from", "decode_batch", "SIZE",
               "STRUCT", "DTYPE", "TYPE_ID", "FINGERPRINT", "self", "cls"}


def py_name(name: str) -> str:
    """The Python name of a declaration."""
    return name + "_" if name in _RESERVED else name


def py_field(name: str) -> str:
    """The Python attribute name of a field."""
    return name + "_" if name in _RESERVED or name in _RECORD_API else name


def parse_type(spelling: str) -> tuple[list[int], str]:
    """'[4][8]f32' -> ([4, 8], 'f32')."""
    dims = [int(d) for d in re.findall(r"\[(\d+)\]", spelling)]
    return dims, spelling[spelling.rfind("]") + 1 :]


def underlying(leaf: str, layout: Layout) -> str:
    for table in (layout.enums, layout.flags):
        if leaf in table:
            return str(table[leaf]["type"])
    return leaf


# --- C layout oracle ---------------------------------------------------------


def ctypes_struct(name: str, layout: Layout, cache: dict[str, Any]) -> Any:
    """A ctypes.Structure for the named struct, with C's natural layout.

    ctypes has no alignas: where a field's type carries @align (its layout
    alignment exceeds what ctypes gives it), explicit padding moves the field
    to the aligned offset, and a tail pad rounds the size up to @align.
    Without @align no padding is added and ctypes alone decides.
    """
    if name in cache:
        return cache[name]
    spec = layout.structs[name]
    fields: list[tuple[str, Any]] = []
    for i, f in enumerate(spec["fields"]):
        ctype, want_align = ctypes_type(f["type"], layout, cache)
        if want_align > ctypes.alignment(ctype):
            end = 0
            if fields:
                probe = type("Probe", (ctypes.Structure,), {"_fields_": fields})
                last, last_type = fields[-1]
                end = getattr(probe, last).offset + ctypes.sizeof(last_type)
            pad = -end % want_align
            if pad:
                fields.append((f"_pad{i}", ctypes.c_uint8 * pad))
        fields.append((f["name"], ctype))
    cls = type(name, (ctypes.Structure,), {"_fields_": fields})
    tail = -ctypes.sizeof(cls) % spec["align"]
    if tail:
        fields.append(("_tail", ctypes.c_uint8 * tail))
        cls = type(name, (ctypes.Structure,), {"_fields_": fields})
    cache[name] = cls
    return cls


def ctypes_type(spelling: str, layout: Layout, cache: dict[str, Any]) -> tuple[Any, int]:
    """The ctypes type of a field and the alignment the layout rules give it."""
    dims, leaf = parse_type(spelling)
    if leaf in layout.structs:
        ctype = ctypes_struct(leaf, layout, cache)
        align = max(ctypes.alignment(ctype), layout.structs[leaf]["align"])
    else:
        ctype = PRIMITIVES[underlying(leaf, layout)]
        align = ctypes.alignment(ctype)
    for n in reversed(dims):
        ctype = ctype * n
    return ctype, align


# --- values ------------------------------------------------------------------


def normalize(value: Any, spelling: str, layout: Layout) -> Any:
    """A field value as nested lists of ints, floats and bools.

    Accepts a record's attribute, a NumPy row's item (tuple.tolist()) or Go's
    JSON; text becomes its full NUL-padded bytes.
    """
    dims, leaf = parse_type(spelling)
    if leaf == "char":
        width = dims.pop() if dims else 1

        def conv(v: Any) -> Any:
            if isinstance(v, list):  # Go: the raw bytes
                return v
            return list(bytes(v).ljust(width, b"\0"))
    elif leaf in layout.structs:
        def conv(v: Any) -> Any:
            return normalize_struct(v, leaf, layout)
    elif leaf in ("f32", "f64"):
        conv = float
    elif leaf == "bool":
        conv = bool
    else:
        conv = int

    def walk(v: Any, shape: list[int]) -> Any:
        if not shape:
            return conv(v)
        assert len(v) == shape[0], (spelling, v)
        return [walk(x, shape[1:]) for x in v]

    return walk(value, dims)


def normalize_struct(value: Any, name: str, layout: Layout) -> list[Any]:
    """A record, NumPy row or Go JSON value as a list of normalised fields."""
    if dataclasses.is_dataclass(value):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    else:
        items = list(value)
    spec = layout.structs[name]["fields"]
    assert len(items) == len(spec)
    return [normalize(v, f["type"], layout) for v, f in zip(items, spec)]


def random_record(name: str, layout: Layout, module: Any, rng: random.Random) -> Any:
    """A random record of the named struct, built through the module's classes."""
    cls = getattr(module, py_name(name))
    values = [random_value(f["type"], layout, module, rng) for f in layout.structs[name]["fields"]]
    return cls(*values)


def random_value(spelling: str, layout: Layout, module: Any, rng: random.Random) -> Any:
    dims, leaf = parse_type(spelling)
    if leaf == "char":
        width = dims.pop() if dims else 1

        def make() -> Any:
            return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(width + 1)))
    elif leaf in layout.structs:
        def make() -> Any:
            return random_record(leaf, layout, module, rng)
    else:
        prim = underlying(leaf, layout)
        cls = getattr(module, py_name(leaf)) if prim != leaf else None

        def make() -> Any:
            v = random_primitive(prim, rng)
            return cls(v) if cls is not None else v

    def walk(shape: list[int]) -> Any:
        if not shape:
            return make()
        return tuple(walk(shape[1:]) for _ in range(shape[0]))

    return walk(dims)


def random_primitive(prim: str, rng: random.Random) -> Any:
    if prim == "bool":
        return rng.random() < 0.5
    if prim == "f32":
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
    if prim == "f64":
        return rng.uniform(-1e12, 1e12)
    bits = int(prim[1:])
    if prim[0] == "u":
        return rng.randrange(1 << bits)
    return rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1))
