// Package genpy renders the schema layout model as a Python module: for X.tsch,
// x_tsch.py, importable with the standard library alone (Python 3.10+).
//
// Per struct and message the module has a frozen dataclass with SIZE, ALIGN, a
// little-endian struct.Struct (STRUCT, padding as x), a NumPy structured
// dtype (DTYPE, built on first access: NumPy is imported lazily),
// unpack/unpack_from/pack/pack_into and a zero-copy decode_batch; messages
// add TYPE_ID and FINGERPRINT. Enums are IntEnum, flags IntFlag, constants
// module constants, doc comments docstrings. Offsets and padding come from
// schema.Struct.Slots; this package only prints.
//
// # Names
//
// Schema names are kept as written (types PascalCase, fields snake_case,
// constants and members UPPER_SNAKE_CASE). A name that is a Python keyword
// or builtin, that shadows a name the module imports (struct, enum, np,
// ClassVar, ...), or, for a field, that collides with the record's own API
// (pack, unpack, unpack_from, pack_into, decode_batch, SIZE, ALIGN, STRUCT, DTYPE,
// TYPE_ID, FINGERPRINT, self, cls) gets a trailing underscore: class ->
// class_, pack -> pack_. Schema identifiers never end in an underscore, so an
// escaped name cannot collide with another schema name. The escape does not
// depend on the file's contents, so every file of a package agrees on it.
// NumPy dtype field names are the schema names, unescaped (they are strings,
// not identifiers).
//
// # Imports between files
//
// A file that uses types of another file of its package imports them from
// that file's module, first relatively (the output directory is a Python
// package), then, if that fails, absolutely (the output directory is on
// sys.path):
//
//	try:
//	    from .common_tsch import Level, Side
//	except ImportError:  # not a package: the output directory is on sys.path
//	    from common_tsch import Level, Side
//
// mypy --strict checks the package form; the fallback lines carry targeted
// type: ignore comments so that both forms check clean.
package genpy
