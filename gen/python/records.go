package genpy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

// pyField is how one schema field maps onto Python: the record attribute,
// the struct items it occupies and the NumPy field it becomes.
type pyField struct {
	*schema.Field
	name string
	// dims are the array dimensions Python sees, outermost first: a char
	// array's last dimension is its text length, not a dimension.
	dims []int
	leaf *schema.Type // the type under every array dimension
	text int          // for char: the text length (1 for a single char)
}

func newPyField(s *schema.Struct, f *schema.Field) pyField {
	pf := pyField{Field: f, name: fieldName(f), dims: f.Type.Dims(), leaf: f.Type.Innermost()}
	if pf.leaf.Kind == schema.KindPrimitive && pf.leaf.Primitive == schema.Char {
		pf.text = 1
		if n := len(pf.dims); n > 0 {
			pf.text = pf.dims[n-1]
			pf.dims = pf.dims[:n-1]
		}
	}
	return pf
}

// count is the number of struct items the field occupies.
func (pf pyField) count() int {
	n := 1
	for _, d := range pf.dims {
		n *= d
	}
	return n
}

// format is the field's part of the struct format.
func (pf pyField) format() string {
	n := pf.count()
	switch {
	case pf.text > 0:
		return strings.Repeat(strconv.Itoa(pf.text)+"s", n)
	case pf.leaf.Kind == schema.KindStruct:
		return strings.Repeat(strconv.Itoa(pf.leaf.Size)+"s", n)
	case n > 1:
		return strconv.Itoa(n) + structCode(underlying(pf.leaf))
	default:
		return structCode(underlying(pf.leaf))
	}
}

// hint is the field's type annotation.
func (pf pyField) hint() string {
	var t string
	switch {
	case pf.text > 0:
		t = "bytes"
	case pf.leaf.Kind == schema.KindPrimitive:
		t = pyScalar(pf.leaf.Primitive)
	default:
		t = typeName(pf.leaf)
	}
	for range pf.dims {
		t = "tuple[" + t + ", ...]"
	}
	return t
}

// decoder is the function that turns one struct item into the field's
// element value, or "" when the item is the value.
func (pf pyField) decoder() string {
	switch {
	case pf.text > 0:
		return "_text"
	case pf.leaf.Kind == schema.KindStruct:
		return typeName(pf.leaf) + ".unpack"
	case pf.leaf.Kind != schema.KindPrimitive:
		return typeName(pf.leaf)
	}
	return ""
}

// decode is the expression that builds the field's value from the struct
// items v[first:first+count].
func (pf pyField) decode(first int) string {
	conv := pf.decoder()
	if len(pf.dims) == 0 {
		if conv == "" {
			return fmt.Sprintf("v[%d]", first)
		}
		return fmt.Sprintf("%s(v[%d])", conv, first)
	}
	items := fmt.Sprintf("v[%d:%d]", first, first+pf.count())
	if conv != "" {
		items = fmt.Sprintf("tuple(map(%s, %s))", conv, items)
	}
	if len(pf.dims) > 1 {
		items = fmt.Sprintf("_nest(%s, %s)", items, shape(pf.dims))
	}
	return items
}

// encode is the expression that gives the field's struct items, starred
// when there are several.
func (pf pyField) encode(record string) string {
	attr := "self." + pf.name
	isStruct := pf.leaf.Kind == schema.KindStruct
	if len(pf.dims) == 0 {
		if isStruct {
			return attr + ".pack()"
		}
		return attr
	}
	items := fmt.Sprintf("_flat(%s, %s, %s)", attr, shape(pf.dims), quote(record+"."+pf.name))
	if isStruct {
		items = fmt.Sprintf("map(%s.pack, %s)", typeName(pf.leaf), items)
	}
	return "*" + items
}

// dtype is the field's NumPy format: a dtype string, a nested record's
// DTYPE, or a (format, shape) sub-array.
func (pf pyField) dtype() string {
	var t string
	switch {
	case pf.text > 0:
		t = quote("S" + strconv.Itoa(pf.text))
	case pf.leaf.Kind == schema.KindStruct:
		t = typeName(pf.leaf) + ".DTYPE"
	default:
		t = quote(dtypeCode(underlying(pf.leaf)))
	}
	if len(pf.dims) > 0 {
		t = "(" + t + ", " + shape(pf.dims) + ")"
	}
	return t
}

// record prints the dataclass of a struct or message.
func (g *generator) record(s *schema.Struct) {
	name := declName(s)
	fields := make([]pyField, len(s.Fields))
	for i, f := range s.Fields {
		fields[i] = newPyField(s, f)
	}

	layout := fmt.Sprintf("Layout: %d bytes, aligned to %d.", s.Size, s.Align)
	if s.IsMessage {
		layout = fmt.Sprintf("Layout: %d bytes, aligned to %d, type id %d, fingerprint %#016x.", s.Size, s.Align, s.ID, s.Fingerprint)
	}
	doc := append(docOr(s.Doc, fmt.Sprintf("Schema %s %s.", s.Kind(), s.Name)), "", layout)

	g.P("@dataclass(frozen=True, slots=True)")
	g.P("class ", name, ":")
	g.docstring("    ", withDeprecation(doc, s.Deprecated))
	g.P()
	g.P("    SIZE: ClassVar[int] = ", s.Size)
	g.P("    ALIGN: ClassVar[int] = ", s.Align)
	if s.IsMessage {
		g.P("    TYPE_ID: ClassVar[int] = ", s.ID)
		g.P("    FINGERPRINT: ClassVar[int] = ", fmt.Sprintf("0x%016X", s.Fingerprint))
	}
	g.list("    ", "STRUCT: ClassVar[struct.Struct] = _compile(", []string{quote(name), quote(structFormat(s, fields)), "SIZE"}, ")")
	g.P()
	for _, pf := range fields {
		g.P("    ", pf.name, ": ", pf.hint(), "  # offset ", pf.Offset, ", ", pf.Type)
		g.docstring("    ", withDeprecation(pf.Doc, pf.Deprecated))
	}

	// To a type checker DTYPE is the dtype itself, a ClassVar: mypy does
	// not apply a descriptor's __get__ when it matches a class object
	// against a protocol (Subscriber.attach("x", M) wants a MessageType).
	// At run time it is the lazy descriptor.
	g.P()
	g.P("    if TYPE_CHECKING:")
	g.P("        DTYPE: ClassVar[np.dtype[np.void]]")
	g.P(`        """The NumPy structured dtype of `, name, `, built on first access."""`)
	g.P("    else:")
	g.P()
	g.P("        @_lazy_dtype")
	g.P("        def DTYPE(cls) -> np.dtype[np.void]:")
	g.P("            import numpy as np")
	g.P()
	g.P("            return np.dtype(")
	g.P("                {")
	var names, formats, offsets []string
	for _, pf := range fields {
		names = append(names, quote(pf.Field.Name))
		formats = append(formats, pf.dtype())
		offsets = append(offsets, strconv.Itoa(pf.Offset))
	}
	g.list("                    ", `"names": [`, names, "],")
	g.list("                    ", `"formats": [`, formats, "],")
	g.list("                    ", `"offsets": [`, offsets, "],")
	g.P(`                    "itemsize": `, s.Size, ",")
	g.P("                }")
	g.P("            )")

	g.P()
	g.P("    @classmethod")
	g.P("    def unpack(cls, buffer: ReadableBuffer) -> ", name, ":")
	g.P(`        """Decode a `, name, ` from exactly SIZE bytes."""`)
	g.P("        return cls._from_values(cls.STRUCT.unpack(buffer))")
	g.P()
	g.P("    @classmethod")
	g.P("    def unpack_from(cls, buffer: ReadableBuffer, offset: int = 0) -> ", name, ":")
	g.P(`        """Decode a `, name, ` from the SIZE bytes of buffer at offset."""`)
	g.P("        return cls._from_values(cls.STRUCT.unpack_from(buffer, offset))")
	g.P()
	g.P("    @classmethod")
	g.P("    def decode_batch(cls, buffer: ReadableBuffer) -> npt.NDArray[np.void]:")
	g.P(`        """View buffer, a whole number of `, name, ` records, as a NumPy array.`)
	g.P()
	g.P("        The array shares memory with buffer (no copy): writes to either show")
	g.P("        in the other. Raises ValueError when the length of buffer is not a")
	g.P("        multiple of SIZE.")
	g.P(`        """`)
	g.P("        return _decode_batch(cls, buffer)")
	g.P()
	g.P("    def pack(self) -> bytes:")
	g.P(`        """Encode to SIZE bytes, padding zeroed."""`)
	g.P("        return self.STRUCT.pack(*self._values())")
	g.P()
	g.P("    def pack_into(self, buffer: WriteableBuffer, offset: int = 0) -> None:")
	g.P(`        """Encode into the SIZE bytes of buffer at offset, padding zeroed."""`)
	g.P("        self.STRUCT.pack_into(buffer, offset, *self._values())")
	g.P()
	g.P("    @classmethod")
	g.P("    def _from_values(cls, v: tuple[Any, ...]) -> ", name, ":")
	g.P("        return cls(")
	item := 0
	for _, pf := range fields {
		g.P("            ", pf.name, "=", pf.decode(item), ",")
		item += pf.count()
	}
	g.P("        )")
	g.P()
	g.P("    def _values(self) -> tuple[Any, ...]:")
	g.P("        return (")
	for _, pf := range fields {
		g.P("            ", pf.encode(name), ",")
	}
	g.P("        )")
}

// structFormat is the struct module format of s: little-endian, standard
// sizes, no implicit alignment, every padding slot spelled as x.
func structFormat(s *schema.Struct, fields []pyField) string {
	byField := make(map[*schema.Field]pyField, len(fields))
	for _, pf := range fields {
		byField[pf.Field] = pf
	}
	var b strings.Builder
	b.WriteString("<")
	for _, sl := range s.Slots() {
		switch {
		case sl.Field != nil:
			b.WriteString(byField[sl.Field].format())
		case sl.Size == 1:
			b.WriteString("x")
		default:
			b.WriteString(strconv.Itoa(sl.Size) + "x")
		}
	}
	return b.String()
}

// underlying is the primitive an enum, flags or primitive type is stored as.
func underlying(t *schema.Type) schema.Primitive {
	switch t.Kind {
	case schema.KindEnum:
		return t.Enum.Underlying
	case schema.KindFlags:
		return t.Flags.Underlying
	}
	return t.Primitive
}

// typeName is the Python class of an enum, flags or struct type.
func typeName(t *schema.Type) string {
	switch t.Kind {
	case schema.KindEnum:
		return declName(t.Enum)
	case schema.KindFlags:
		return declName(t.Flags)
	case schema.KindStruct:
		return declName(t.Struct)
	}
	panic("genpy: typeName of " + t.String())
}

func shape(dims []int) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = strconv.Itoa(d)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func pyScalar(p schema.Primitive) string {
	switch {
	case p == schema.Bool:
		return "bool"
	case p.IsFloat():
		return "float"
	case p == schema.Char:
		return "bytes"
	}
	return "int"
}

// structCodes and dtypeCodes name each primitive in a struct format and a
// NumPy dtype.
var (
	structCodes = map[schema.Primitive]string{
		schema.Bool: "?", schema.Char: "s",
		schema.U8: "B", schema.U16: "H", schema.U32: "I", schema.U64: "Q",
		schema.I8: "b", schema.I16: "h", schema.I32: "i", schema.I64: "q",
		schema.F32: "f", schema.F64: "d",
	}
	dtypeCodes = map[schema.Primitive]string{
		schema.Bool: "?", schema.Char: "S1",
		schema.U8: "u1", schema.U16: "<u2", schema.U32: "<u4", schema.U64: "<u8",
		schema.I8: "i1", schema.I16: "<i2", schema.I32: "<i4", schema.I64: "<i8",
		schema.F32: "<f4", schema.F64: "<f8",
	}
)

func structCode(p schema.Primitive) string { return structCodes[p] }

func dtypeCode(p schema.Primitive) string { return dtypeCodes[p] }
