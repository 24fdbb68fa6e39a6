"""Byte identity with Go, both directions, for every example message.

A small Go program, generated here, imports the Go backend's package for the
examples. ``write`` fills N messages with random values (reflection over the
generated struct), and writes their MarshalBinary bytes and their values as
JSON; ``read`` unmarshals N messages written by Python and writes their
values and their re-marshalled bytes. Python checks that records and
decode_batch rows equal Go's values, and that both sides produce the same
bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES, Generated, go, run
from oracle import normalize_struct, py_name, random_record

COUNT = 200

GO_MAIN = """package main

import (
	"encoding"
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"

	"xlang/market"
)

type message interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

var messages = map[string]func() message{
MESSAGES}

func main() {
	newMsg := messages[os.Args[2]]
	switch os.Args[1] {
	case "write": // write NAME COUNT SEED OUT.bin OUT.json
		n, _ := strconv.Atoi(os.Args[3])
		seed, _ := strconv.ParseUint(os.Args[4], 10, 64)
		rng := rand.New(rand.NewPCG(seed, 1))
		var wire []byte
		var values []any
		for range n {
			m := newMsg()
			fill(reflect.ValueOf(m).Elem(), rng)
			b, err := m.MarshalBinary()
			check(err)
			wire = append(wire, b...)
			values = append(values, value(reflect.ValueOf(m).Elem()))
		}
		check(os.WriteFile(os.Args[5], wire, 0o644))
		writeJSON(os.Args[6], values)
	case "read": // read NAME IN.bin OUT.json OUT.bin
		wire, err := os.ReadFile(os.Args[3])
		check(err)
		zero, _ := newMsg().MarshalBinary()
		var values []any
		var again []byte
		for off := 0; off < len(wire); off += len(zero) {
			m := newMsg()
			check(m.UnmarshalBinary(wire[off : off+len(zero)]))
			values = append(values, value(reflect.ValueOf(m).Elem()))
			b, err := m.MarshalBinary()
			check(err)
			again = append(again, b...)
		}
		writeJSON(os.Args[4], values)
		check(os.WriteFile(os.Args[5], again, 0o644))
	}
}

// fill sets every field of v to a random value; floats stay finite. A
// [N]char field (one with a generated <Field>String method) gets text: up
// to N non-NUL bytes, NUL padded, which every language reads the same.
func fill(v reflect.Value, rng *rand.Rand) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if _, text := reflect.PointerTo(v.Type()).MethodByName(name + "String"); text {
				b := v.Field(i)
				for j := range rng.IntN(b.Len() + 1) {
					b.Index(j).SetUint(1 + rng.Uint64N(255))
				}
			} else if name != "_" {
				fill(v.Field(i), rng)
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), rng)
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64() >> (64 - 8*v.Type().Size()))
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.Uint64()) >> (64 - 8*v.Type().Size()))
	case reflect.Float32:
		v.SetFloat(float64(float32(rng.NormFloat64() * 1e4)))
	case reflect.Float64:
		v.SetFloat(rng.NormFloat64() * 1e12)
	default:
		panic("unexpected kind " + v.Kind().String())
	}
}

// value renders v as JSON-ready nested lists, fields in declaration order.
func value(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		var out []any
		for i := range v.NumField() {
			if v.Type().Field(i).Name != "_" {
				out = append(out, value(v.Field(i)))
			}
		}
		return out
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = value(v.Index(i))
		}
		return out
	case reflect.Bool:
		return v.Bool()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return json.Number(strconv.FormatUint(v.Uint(), 10))
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return json.Number(strconv.FormatInt(v.Int(), 10))
	default: // float32 converts exactly to the float64 Python decodes
		return json.Number(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
}

func writeJSON(path string, v any) {
	b, err := json.Marshal(v)
	check(err)
	check(os.WriteFile(path, b, 0o644))
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
"""


@pytest.fixture(scope="session")
def go_peer(examples: Generated, tachyon_gen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go side, built against the Go backend's code for the examples."""
    mod = tmp_path_factory.mktemp("xlang")
    (mod / "go.mod").write_text("module xlang\n\ngo 1.26\n")
    run(tachyon_gen, "generate", "--go-out", mod / "market", *EXAMPLES)
    layout = next(iter(examples.layouts.values()))
    entries = "".join(
        f'\t"{name}": func() message {{ return new(market.{name}) }},\n'
        for name, spec in layout.structs.items()
        if spec["kind"] == "message"
    )
    (mod / "main.go").write_text(GO_MAIN.replace("MESSAGES", entries))
    go("build", "-o", str(mod / "peer"), ".", cwd=mod)
    return mod / "peer"


def example_messages() -> Iterator[str]:
    """Every message of the examples (read without the CLI, for collection)."""
    for path in EXAMPLES:
        for line in path.read_text().splitlines():
            if line.startswith("message "):
                yield line.split()[1]


@pytest.mark.parametrize("name", sorted(example_messages()))
def test_go_to_python(name: str, examples: Generated, go_peer: Path, tmp_path: Path) -> None:
    layout = next(iter(examples.layouts.values()))
    cls = _find(examples, name)
    wire_path, json_path = tmp_path / "go.bin", tmp_path / "go.json"
    run(go_peer, "write", name, str(COUNT), "42", wire_path, json_path)
    wire = wire_path.read_bytes()
    want = json.loads(json_path.read_text())
    assert len(wire) == COUNT * cls.SIZE

    records = [cls.unpack_from(wire, i * cls.SIZE) for i in range(COUNT)]
    assert [normalize_struct(r, name, layout) for r in records] == want

    batch = cls.decode_batch(wire)
    assert batch.shape == (COUNT,)
    assert np.shares_memory(batch, np.frombuffer(wire, np.uint8))
    assert [normalize_struct(row.tolist(), name, layout) for row in batch] == want

    assert b"".join(r.pack() for r in records) == wire


@pytest.mark.parametrize("name", sorted(example_messages()))
def test_python_to_go(name: str, examples: Generated, go_peer: Path, tmp_path: Path) -> None:
    layout = next(iter(examples.layouts.values()))
    cls = _find(examples, name)
    module = _module_of(examples, name)
    rng = random.Random(name)
    records = [random_record(name, layout, module, rng) for _ in range(COUNT)]
    wire = bytearray(COUNT * cls.SIZE)
    for i, record in enumerate(records):
        record.pack_into(wire, i * cls.SIZE)
    wire_path, json_path, again_path = tmp_path / "py.bin", tmp_path / "go.json", tmp_path / "go.bin"
    wire_path.write_bytes(wire)
    run(go_peer, "read", name, wire_path, json_path, again_path)
    assert json.loads(json_path.read_text()) == [normalize_struct(r, name, layout) for r in records]
    assert again_path.read_bytes() == bytes(wire)


def _module_of(examples: Generated, name: str) -> object:
    for m in examples.modules:
        module = examples.load(m)
        if name in getattr(module, "__all__", []) and getattr(module, name).__module__ == module.__name__:
            return module
    raise LookupError(name)


def _find(examples: Generated, name: str) -> type:
    cls: type = getattr(_module_of(examples, name), py_name(name))
    return cls




TEXT_GO = """package main

import (
	"fmt"
	"os"

	"xlang/market"
)

func main() {
	wire, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var book market.Book
	if err := book.UnmarshalBinary(wire); err != nil {
		panic(err)
	}
	fmt.Print(book.VenueString())
}
"""

TEXT_CPP = """#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "book.tsch.hpp"

int main(int, char** argv) {
    std::ifstream in(argv[1], std::ios::binary);
    const std::string wire{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    market::Book book{};
    if (wire.size() != sizeof book) return 1;
    std::memcpy(&book, wire.data(), sizeof book);
    const auto venue = book.venue_view();
    std::fwrite(venue.data(), 1, venue.size(), stdout);
    return 0;
}
"""


def test_text_is_read_up_to_the_first_nul_in_every_language(
    examples: Generated, go_peer: Path, tachyon_gen: Path, tmp_path: Path
) -> None:
    """One rule for [N]char (docs/IDL.md): the text ends at the first NUL.

    The same bytes, b"ab\\0cd" NUL padded, read through Go's VenueString,
    C++'s venue_view and the Python record.
    """
    layout = next(iter(examples.layouts.values()))
    book = _find(examples, "Book")
    venue = next(f for f in layout.structs["Book"]["fields"] if f["name"] == "venue")
    wire = bytearray(book.SIZE)
    raw = b"ab\0cd"
    wire[venue["offset"] : venue["offset"] + len(raw)] = raw
    path = tmp_path / "book.bin"
    path.write_bytes(wire)

    mod = go_peer.parent
    (mod / "textpeer").mkdir(exist_ok=True)
    (mod / "textpeer" / "main.go").write_text(TEXT_GO)
    go("build", "-o", str(tmp_path / "textpeer"), "./textpeer", cwd=mod)
    from_go = run(tmp_path / "textpeer", path)

    cpp = tmp_path / "cpp"
    run(tachyon_gen, "generate", "--cpp-out", cpp, *EXAMPLES)
    (cpp / "main.cpp").write_text(TEXT_CPP)
    run("g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", cpp, cpp / "main.cpp", "-o", cpp / "textpeer")
    from_cpp = run(cpp / "textpeer", path)

    from_python = book.unpack(bytes(wire)).venue
    assert (from_go, from_cpp, from_python) == ("ab", "ab", b"ab")
