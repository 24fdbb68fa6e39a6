package schema

import (
	"math/big"
	"strconv"
	"strings"
)

// Primitive is one of the IDL's built-in scalar types.
type Primitive int

// The built-in scalar types.
const (
	Bool Primitive = iota + 1
	Char
	U8
	U16
	U32
	U64
	I8
	I16
	I32
	I64
	F32
	F64
)

var primitiveNames = map[Primitive]string{
	Bool: "bool", Char: "char",
	U8: "u8", U16: "u16", U32: "u32", U64: "u64",
	I8: "i8", I16: "i16", I32: "i32", I64: "i64",
	F32: "f32", F64: "f64",
}

var primitivesByName = func() map[string]Primitive {
	m := make(map[string]Primitive, len(primitiveNames))
	for p, n := range primitiveNames {
		m[n] = p
	}
	return m
}()

// String returns the IDL spelling (u8, f64, char, ...).
func (p Primitive) String() string { return primitiveNames[p] }

// Size is the size in bytes; a primitive's alignment equals its size.
func (p Primitive) Size() int {
	switch p {
	case Bool, Char, U8, I8:
		return 1
	case U16, I16:
		return 2
	case U32, I32, F32:
		return 4
	default:
		return 8
	}
}

// IsInteger reports whether p is one of u8..u64, i8..i64.
func (p Primitive) IsInteger() bool { return p >= U8 && p <= I64 }

// IsSigned reports whether p is a signed integer.
func (p Primitive) IsSigned() bool { return p >= I8 && p <= I64 }

// IsFloat reports whether p is f32 or f64.
func (p Primitive) IsFloat() bool { return p == F32 || p == F64 }

// Range returns the inclusive value range of an integer primitive.
func (p Primitive) Range() (lo, hi *big.Int) {
	bits := uint(p.Size() * 8)
	one := big.NewInt(1)
	if p.IsSigned() {
		hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits-1), one)
		lo = new(big.Int).Neg(new(big.Int).Lsh(one, bits-1))
		return lo, hi
	}
	return big.NewInt(0), new(big.Int).Sub(new(big.Int).Lsh(one, bits), one)
}

// TypeKind tells which of Type's fields is meaningful.
type TypeKind int

// The kinds of type a field can have.
const (
	KindPrimitive TypeKind = iota + 1
	KindEnum
	KindFlags
	KindStruct // a struct or a message used as a value
	KindArray
)

// Type is a resolved field type with its size and alignment.
type Type struct {
	Kind      TypeKind
	Primitive Primitive // KindPrimitive
	Enum      *Enum     // KindEnum
	Flags     *Flags    // KindFlags
	Struct    *Struct   // KindStruct
	Elem      *Type     // KindArray
	Len       int       // KindArray: number of elements
	Size      int
	Align     int
}

// String is the IDL spelling with constants resolved: u64, Level, [5]Level,
// [4][8]f32.
func (t *Type) String() string {
	var b strings.Builder
	for t.Kind == KindArray {
		b.WriteString("[" + strconv.Itoa(t.Len) + "]")
		t = t.Elem
	}
	b.WriteString(t.Name())
	return b.String()
}

// Name is the name of a non-array type.
func (t *Type) Name() string {
	switch t.Kind {
	case KindPrimitive:
		return t.Primitive.String()
	case KindEnum:
		return t.Enum.Name
	case KindFlags:
		return t.Flags.Name
	case KindStruct:
		return t.Struct.Name
	}
	return ""
}

// NaturalAlign is the type's alignment ignoring @align (see
// Struct.NaturalAlign).
func (t *Type) NaturalAlign() int {
	in := t.Innermost()
	if in.Kind == KindStruct {
		return in.Struct.NaturalAlign
	}
	return in.Align
}

// Innermost returns the element type under every array dimension.
func (t *Type) Innermost() *Type {
	for t.Kind == KindArray {
		t = t.Elem
	}
	return t
}

// Dims returns the array dimensions, outermost first (nil for non-arrays).
func (t *Type) Dims() []int {
	var dims []int
	for t.Kind == KindArray {
		dims = append(dims, t.Len)
		t = t.Elem
	}
	return dims
}

// IsText reports whether t is a one-dimensional char array: fixed text,
// NUL padded.
func (t *Type) IsText() bool {
	return t.Kind == KindArray && t.Elem.Kind == KindPrimitive && t.Elem.Primitive == Char
}

// Doc is a doc comment: the lines of consecutive /// comments, markers and
// one leading space removed.
type Doc []string

// File is one loaded .tsch file.
type File struct {
	Path    string // as given on the command line or resolved from an import
	Package string
	Imports []*File
	// Decls holds every declaration of this file in source order; the typed
	// lists below hold the same declarations by kind.
	Decls   []Decl
	Consts  []*Const
	Enums   []*Enum
	Flags   []*Flags
	Structs []*Struct // structs and messages
}

// Stem is the output name stem: the file's base name without .tsch,
// lower_snake_cased (Message.tsch -> message).
func (f *File) Stem() string {
	return SnakeCase(strings.TrimSuffix(f.Base(), ".tsch"))
}

// Base is the file's name without its directory (either separator), as
// generated code cites its source.
func (f *File) Base() string {
	base := f.Path
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	return base
}

// Messages returns the file's messages in source order.
func (f *File) Messages() []*Struct {
	var out []*Struct
	for _, s := range f.Structs {
		if s.IsMessage {
			out = append(out, s)
		}
	}
	return out
}

// Decl is a top-level declaration: *Const, *Enum, *Flags or *Struct.
type Decl interface {
	DeclName() string
	DeclPos() Position
}

// Const is an integer constant.
type Const struct {
	Name  string
	Doc   Doc
	Type  Primitive
	Value *big.Int
	Pos   Position
	File  *File
}

// Enum is a named set of integer values over a fixed underlying type.
type Enum struct {
	Name       string
	Doc        Doc
	Underlying Primitive
	Members    []*Member
	Deprecated bool
	Pos        Position
	File       *File
}

// Flags is a bitset over a fixed unsigned underlying type; each member names
// a bit position.
type Flags struct {
	Name       string
	Doc        Doc
	Underlying Primitive
	Members    []*Member // Value is the bit position
	Deprecated bool
	Pos        Position
	File       *File
}

// Member is an enum value or a flag bit.
type Member struct {
	Name       string
	Doc        Doc
	Value      *big.Int // the enum value, or the flag's bit position
	Deprecated bool
	Pos        Position
}

// Struct is a struct or, when IsMessage is set, a message: a struct with a
// wire identity (type id and fingerprint).
type Struct struct {
	Name      string
	Doc       Doc
	IsMessage bool
	ID        uint32 // messages only
	Fields    []*Field
	Size      int
	Align     int
	AlignAttr int // the @align(N) value, 0 when absent
	// NaturalAlign is the alignment with every @align removed, recursively:
	// what a language without alignas (Go, ctypes) gives the struct. Offsets
	// and Size are always those of Align.
	NaturalAlign int
	Deprecated   bool
	Fingerprint  uint64
	// Canonical is the canonical layout text the fingerprint hashes.
	Canonical string
	Pos       Position
	File      *File
}

// Kind is "message" or "struct".
func (s *Struct) Kind() string {
	if s.IsMessage {
		return "message"
	}
	return "struct"
}

// Field is one field of a struct or message, placed at Offset.
type Field struct {
	Name       string
	Doc        Doc
	Type       *Type
	Offset     int
	Deprecated bool
	Pos        Position
}

// Size is the field's size in bytes.
func (f *Field) Size() int { return f.Type.Size }

// Slot is one run of bytes in a struct: a field, or padding when Field is nil.
type Slot struct {
	Offset int
	Size   int
	Field  *Field
}

// Slots returns the struct's bytes as fields and explicit padding, in
// offset order, covering [0, Size) exactly. Backends render padding from
// this list and never compute it themselves.
func (s *Struct) Slots() []Slot {
	var out []Slot
	end := 0
	for _, f := range s.Fields {
		if f.Offset > end {
			out = append(out, Slot{Offset: end, Size: f.Offset - end})
		}
		out = append(out, Slot{Offset: f.Offset, Size: f.Size(), Field: f})
		end = f.Offset + f.Size()
	}
	if s.Size > end {
		out = append(out, Slot{Offset: end, Size: s.Size - end})
	}
	return out
}

// Padding returns the number of padding bytes in the struct.
func (s *Struct) Padding() int {
	n := 0
	for _, sl := range s.Slots() {
		if sl.Field == nil {
			n += sl.Size
		}
	}
	return n
}

func (c *Const) DeclName() string  { return c.Name }
func (e *Enum) DeclName() string   { return e.Name }
func (f *Flags) DeclName() string  { return f.Name }
func (s *Struct) DeclName() string { return s.Name }

func (c *Const) DeclPos() Position  { return c.Pos }
func (e *Enum) DeclPos() Position   { return e.Pos }
func (f *Flags) DeclPos() Position  { return f.Pos }
func (s *Struct) DeclPos() Position { return s.Pos }

// Words splits an identifier into lower-case words at underscores and case
// changes: "timestamp_ns" -> [timestamp ns], "BookLevel2" -> [book level2],
// "HTTPServer" -> [http server].
func Words(name string) []string {
	var words []string
	for _, part := range strings.Split(name, "_") {
		if part == "" {
			continue
		}
		rs := []rune(part)
		start := 0
		for i := 1; i < len(rs); i++ {
			lower := func(r rune) bool { return r >= 'a' && r <= 'z' }
			upper := func(r rune) bool { return r >= 'A' && r <= 'Z' }
			if upper(rs[i]) && (lower(rs[i-1]) || (i+1 < len(rs) && lower(rs[i+1]) && upper(rs[i-1]))) {
				words = append(words, strings.ToLower(string(rs[start:i])))
				start = i
			}
		}
		words = append(words, strings.ToLower(string(rs[start:])))
	}
	return words
}

// SnakeCase joins Words with underscores: "OrderBook" -> "order_book".
func SnakeCase(name string) string { return strings.Join(Words(name), "_") }
