package gengo

import (
	"fmt"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

// namer derives Go identifiers once, so that every use agrees.
//
// Declarations keep their schema names. The names the generator adds at
// package level (XSize, XAlign, XTypeID, XFingerprint, XFromBytes, enum and
// flag members, schema constants) come second: one that a declaration or an
// earlier generated name already takes gets a trailing underscore, as many
// as needed (IDL identifiers never end in one). Order is declaration order,
// so the result is deterministic.
type namer struct {
	consts  map[*schema.Const]string
	fields  map[*schema.Field]string
	members map[*schema.Member]string
	structs map[*schema.Struct]*structNames
}

// structNames are the package-level names generated for a struct or message.
type structNames struct {
	size, align, typeID, fingerprint, fromBytes string
}

// reservedMethods are the method names generated on struct types; a field
// whose Go name would collide with one gets a trailing underscore (IDL
// identifiers never end in one, so the result cannot collide again).
var reservedMethods = map[string]bool{
	"MarshalBinary": true, "UnmarshalBinary": true, "AppendBinary": true,
	"TachyonFingerprint": true, "TachyonTypeID": true, "TachyonSize": true, "TachyonAlign": true,
}

func newNamer(f *schema.File) *namer {
	n := &namer{
		consts:  map[*schema.Const]string{},
		fields:  map[*schema.Field]string{},
		members: map[*schema.Member]string{},
		structs: map[*schema.Struct]*structNames{},
	}
	files := f.Closure()
	taken := map[string]bool{}
	for _, file := range files {
		for _, d := range file.Decls {
			if _, isConst := d.(*schema.Const); !isConst {
				taken[d.DeclName()] = true
			}
		}
	}
	free := func(name string) string {
		for taken[name] {
			name += "_"
		}
		taken[name] = true
		return name
	}
	for _, file := range files {
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *schema.Struct:
				sn := &structNames{size: free(d.Name + "Size"), align: free(d.Name + "Align")}
				if d.IsMessage {
					sn.typeID, sn.fingerprint = free(d.Name+"TypeID"), free(d.Name+"Fingerprint")
				}
				sn.fromBytes = free(d.Name + "FromBytes")
				n.structs[d] = sn
			case *schema.Enum:
				for _, m := range d.Members {
					n.members[m] = free(d.Name + camel(m.Name))
				}
			case *schema.Flags:
				for _, m := range d.Members {
					n.members[m] = free(d.Name + camel(m.Name))
				}
			}
		}
	}
	for _, file := range files {
		for _, c := range file.Consts {
			n.consts[c] = free(camel(c.Name))
		}
		for _, s := range file.Structs {
			methods := map[string]bool{}
			for _, fld := range s.Fields {
				if fld.Type.IsText() {
					methods[camel(fld.Name)+"String"] = true
					methods["Set"+camel(fld.Name)] = true
				}
			}
			for _, fld := range s.Fields {
				name := camel(fld.Name)
				if reservedMethods[name] || methods[name] {
					name += "_"
				}
				n.fields[fld] = name
			}
		}
	}
	return n
}

func (n *namer) constName(c *schema.Const) string   { return n.consts[c] }
func (n *namer) fieldName(f *schema.Field) string   { return n.fields[f] }
func (n *namer) memberName(m *schema.Member) string { return n.members[m] }
func (n *namer) of(s *schema.Struct) *structNames   { return n.structs[s] }

// camel converts an IDL name to an exported Go name: timestamp_ns ->
// TimestampNs, SNAPSHOT -> Snapshot, price_2 -> Price2.
func camel(name string) string {
	var b strings.Builder
	for _, w := range schema.Words(name) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

func goPrimitive(p schema.Primitive) string {
	switch p {
	case schema.Bool:
		return "bool"
	case schema.Char:
		return "byte"
	case schema.F32:
		return "float32"
	case schema.F64:
		return "float64"
	}
	s := p.String()
	if s[0] == 'u' {
		return "uint" + s[1:]
	}
	return "int" + s[1:]
}

func goType(t *schema.Type) string {
	switch t.Kind {
	case schema.KindArray:
		return fmt.Sprintf("[%d]%s", t.Len, goType(t.Elem))
	case schema.KindPrimitive:
		return goPrimitive(t.Primitive)
	}
	return t.Name()
}

func (g *generator) structure(s *schema.Struct) {
	name := s.Name
	fallback := fmt.Sprintf("%s is the schema %s %s.%s.", name, s.Kind(), s.File.Package, name)
	g.doc(s.Doc, "", fallback)
	if len(s.Doc) > 0 {
		g.P("//")
	}
	if s.IsMessage {
		g.P(fmt.Sprintf("// Layout: %d bytes, aligned to %d, type id %d, fingerprint %s.", s.Size, s.Align, s.ID, schema.FormatFingerprint(s.Fingerprint)))
	} else {
		g.P(fmt.Sprintf("// Layout: %d bytes, aligned to %d.", s.Size, s.Align))
	}
	deprecated(g, s.Deprecated, "")
	g.P("type ", name, " struct {")
	for _, sl := range s.Slots() {
		if sl.Field == nil {
			g.P(fmt.Sprintf("_ [%d]byte // padding: offset %d", sl.Size, sl.Offset))
			continue
		}
		f := sl.Field
		g.doc(f.Doc, "\t", "")
		deprecated(g, f.Deprecated, "\t")
		g.P(g.names.fieldName(f), " ", goType(f.Type), fmt.Sprintf(" // offset %d, %s", f.Offset, f.Type))
	}
	g.P("}")
	g.P()

	sn := g.names.of(s)
	g.P("// Layout of ", name, ", from the schema.")
	g.P("const (")
	g.P("// ", sn.size, " is the size of ", name, " in bytes.")
	g.P(sn.size, " = ", s.Size)
	g.P("// ", sn.align, " is the alignment of ", name, " in bytes.")
	g.P(sn.align, " = ", s.Align)
	if s.IsMessage {
		g.P("// ", sn.typeID, " is the schema type id (@id) of ", name, ".")
		g.P(sn.typeID, " uint32 = ", s.ID)
		g.P("// ", sn.fingerprint, " is the layout fingerprint of ", name, ": rings refuse")
		g.P("// peers whose fingerprint differs.")
		g.P(sn.fingerprint, " uint64 = ", schema.FormatFingerprint(s.Fingerprint))
	}
	g.P(")")
	g.P()

	unsafe := g.pkg("unsafe")
	g.P("// An \"invalid array index\" or \"overflows\" compile error here means the Go")
	g.P("// layout of ", name, " no longer matches the schema: re-run tachyon-gen.")
	g.P("func _() {")
	g.P("var x [1]struct{}")
	g.P("_ = x[", unsafe, ".Sizeof(", name, "{})-", s.Size, "]")
	g.P("_ = x[", unsafe, ".Alignof(", name, "{})-", s.NaturalAlign, "]")
	for _, f := range s.Fields {
		g.P("_ = x[", unsafe, ".Offsetof(", name, "{}.", g.names.fieldName(f), ")-", f.Offset, "]")
	}
	g.P("}")
	g.P()

	g.textHelpers(s)
	if s.IsMessage {
		g.layoutHook(s)
	}
	g.marshal(s)
	g.view(s)
}

func (g *generator) textHelpers(s *schema.Struct) {
	for _, f := range s.Fields {
		if !f.Type.IsText() {
			continue
		}
		field := g.names.fieldName(f)
		base := camel(f.Name)
		g.P("// ", base, "String returns ", f.Name, " as a string, up to its first NUL.")
		g.P("func (m *", s.Name, ") ", base, "String() string {")
		g.P("b := m.", field, "[:]")
		g.P("if i := ", g.pkg("bytes"), ".IndexByte(b, 0); i >= 0 {")
		g.P("b = b[:i]")
		g.P("}")
		g.P("return string(b)")
		g.P("}")
		g.P()
		g.P(fmt.Sprintf("// Set%s stores v in %s, truncated to %d bytes and NUL padded.", base, f.Name, f.Type.Len))
		g.P("func (m *", s.Name, ") Set", base, "(v string) {")
		g.P("n := copy(m.", field, "[:], v)")
		g.P("clear(m.", field, "[n:])")
		g.P("}")
		g.P()
	}
}

func (g *generator) layoutHook(s *schema.Struct) {
	n, sn := s.Name, g.names.of(s)
	g.P("// TachyonFingerprint returns ", sn.fingerprint, "; with TachyonTypeID, TachyonSize and")
	g.P("// TachyonAlign it binds ", n, " to a ring (runtime/ring.Layout).")
	g.P("func (", n, ") TachyonFingerprint() uint64 { return ", sn.fingerprint, " }")
	g.P()
	g.P("// TachyonTypeID returns ", sn.typeID, ".")
	g.P("func (", n, ") TachyonTypeID() uint32 { return ", sn.typeID, " }")
	g.P()
	g.P("// TachyonSize returns ", sn.size, ".")
	g.P("func (", n, ") TachyonSize() int { return ", sn.size, " }")
	g.P()
	g.P("// TachyonAlign returns ", sn.align, ".")
	g.P("func (", n, ") TachyonAlign() int { return ", sn.align, " }")
	g.P()
}

func (g *generator) marshal(s *schema.Struct) {
	n, size, pkg := s.Name, g.names.of(s).size, g.pkgName
	g.P("// AppendBinary appends the ", size, " wire bytes of m to b: the schema layout,")
	g.P("// little-endian, padding zeroed. It implements encoding.BinaryAppender.")
	g.P("func (m *", n, ") AppendBinary(b []byte) ([]byte, error) {")
	g.P("b = ", g.pkg("slices"), ".Grow(b, ", size, ")")
	g.P("off := len(b)")
	g.P("b = b[:off+", size, "]")
	g.P("m.put(b[off:])")
	g.P("return b, nil")
	g.P("}")
	g.P()
	g.P("// MarshalBinary returns the ", size, " wire bytes of m.")
	g.P("func (m *", n, ") MarshalBinary() ([]byte, error) {")
	g.P("return m.AppendBinary(make([]byte, 0, ", size, "))")
	g.P("}")
	g.P()
	g.P("// UnmarshalBinary decodes exactly ", size, " wire bytes into m.")
	g.P("func (m *", n, ") UnmarshalBinary(b []byte) error {")
	g.P("if len(b) != ", size, " {")
	g.P("return ", g.pkg("fmt"), ".Errorf(\"", pkg, ".", n, ": UnmarshalBinary: got %d bytes, want %d\", len(b), ", size, ")")
	g.P("}")
	g.P("m.get(b)")
	g.P("return nil")
	g.P("}")
	g.P()

	g.P("// put writes m into b[:", size, "].")
	g.P("func (m *", n, ") put(b []byte) {")
	g.P("_ = b[", size, "-1] // one bounds check for the whole message")
	for _, sl := range s.Slots() {
		if sl.Field == nil {
			g.P("clear(b[", sl.Offset, ":", sl.Offset+sl.Size, "]) // padding")
			continue
		}
		g.encode("m."+g.names.fieldName(sl.Field), sl.Field.Type, fmt.Sprint(sl.Field.Offset), 0)
	}
	g.P("}")
	g.P()
	g.P("// get reads m from b[:", size, "].")
	g.P("func (m *", n, ") get(b []byte) {")
	g.P("_ = b[", size, "-1] // one bounds check for the whole message")
	for _, f := range s.Fields {
		g.decode("m."+g.names.fieldName(f), f.Type, fmt.Sprint(f.Offset), 0)
	}
	g.P("}")
	g.P()
}

// offsetExpr renders base + stride*index, folding a zero base.
func offsetExpr(base string, stride int, index string) string {
	term := index
	if stride != 1 {
		term = fmt.Sprintf("%d*%s", stride, index)
	}
	if base == "0" {
		return term
	}
	return base + "+" + term
}

func isByteLike(t *schema.Type) bool {
	return t.Kind == schema.KindPrimitive && (t.Primitive == schema.U8 || t.Primitive == schema.Char)
}

// encode emits the statements that write value expr of type t at byte
// offset off of b.
func (g *generator) encode(expr string, t *schema.Type, off string, depth int) {
	switch t.Kind {
	case schema.KindArray:
		if isByteLike(t.Elem) {
			g.P("copy(b[", off, ":", off, "+", t.Size, "], ", expr, "[:])")
			return
		}
		i := fmt.Sprintf("i%d", depth)
		g.P("for ", i, " := range ", expr, " {")
		g.encode(expr+"["+i+"]", t.Elem, offsetExpr(off, t.Elem.Size, i), depth+1)
		g.P("}")
	case schema.KindStruct:
		g.P(expr, ".put(b[", off, ":])")
	default:
		g.P(g.putScalar(t, expr, off))
	}
}

func (g *generator) decode(expr string, t *schema.Type, off string, depth int) {
	switch t.Kind {
	case schema.KindArray:
		if isByteLike(t.Elem) {
			g.P("copy(", expr, "[:], b[", off, ":", off, "+", t.Size, "])")
			return
		}
		i := fmt.Sprintf("i%d", depth)
		g.P("for ", i, " := range ", expr, " {")
		g.decode(expr+"["+i+"]", t.Elem, offsetExpr(off, t.Elem.Size, i), depth+1)
		g.P("}")
	case schema.KindStruct:
		g.P(expr, ".get(b[", off, ":])")
	default:
		g.P(expr, " = ", g.getScalar(t, off))
	}
}

// scalar returns the primitive under an enum, flags or primitive type.
func scalar(t *schema.Type) schema.Primitive {
	switch t.Kind {
	case schema.KindEnum:
		return t.Enum.Underlying
	case schema.KindFlags:
		return t.Flags.Underlying
	}
	return t.Primitive
}

// putScalar records the encoding/binary import only for a multi-byte
// value: a struct of one-byte fields must not import it unused.
func (g *generator) putScalar(t *schema.Type, expr, off string) string {
	p := scalar(t)
	bits := p.Size() * 8
	switch {
	case p == schema.Bool:
		return fmt.Sprintf("b[%s] = 0\nif %s {\nb[%s] = 1\n}", off, expr, off)
	case bits == 8:
		return fmt.Sprintf("b[%s] = byte(%s)", off, expr)
	}
	le := g.pkg("encoding/binary") + ".LittleEndian"
	if p.IsFloat() {
		return fmt.Sprintf("%s.PutUint%d(b[%s:], %s.Float%dbits(float%d(%s)))", le, bits, off, g.pkg("math"), bits, bits, expr)
	}
	return fmt.Sprintf("%s.PutUint%d(b[%s:], uint%d(%s))", le, bits, off, bits, expr)
}

func (g *generator) getScalar(t *schema.Type, off string) string {
	p := scalar(t)
	target := goType(t)
	bits := p.Size() * 8
	var raw string
	switch {
	case p == schema.Bool:
		return fmt.Sprintf("b[%s] != 0", off)
	case bits == 8:
		raw = fmt.Sprintf("b[%s]", off)
	default:
		raw = fmt.Sprintf("%s.LittleEndian.Uint%d(b[%s:])", g.pkg("encoding/binary"), bits, off)
	}
	if p == schema.F32 || p == schema.F64 {
		raw = fmt.Sprintf("%s.Float%dfrombits(%s)", g.pkg("math"), bits, raw)
		if t.Kind == schema.KindPrimitive {
			return raw
		}
	}
	if target == "byte" && bits == 8 && !p.IsSigned() && t.Kind == schema.KindPrimitive {
		return raw
	}
	if target == fmt.Sprintf("uint%d", bits) {
		return raw
	}
	return fmt.Sprintf("%s(%s)", target, raw)
}

func (g *generator) view(s *schema.Struct) {
	n, sn := s.Name, g.names.of(s)
	unsafe := g.pkg("unsafe")
	g.P("// ", sn.fromBytes, " returns the first ", sn.size, " bytes of b viewed as a *", n, ",")
	g.P("// without copying: writes through the pointer change b. b must be at least")
	g.P("// ", sn.size, " bytes long and aligned to ", sn.align, ". The view assumes a")
	g.P("// little-endian host (amd64, arm64) and bool bytes of 0 or 1.")
	g.P("func ", sn.fromBytes, "(b []byte) (*", n, ", error) {")
	g.P("if len(b) < ", sn.size, " {")
	g.P("return nil, ", g.pkg("fmt"), ".Errorf(\"", g.pkgName, ".", sn.fromBytes, ": got %d bytes, want at least %d\", len(b), ", sn.size, ")")
	g.P("}")
	g.P("p := ", unsafe, ".Pointer(", unsafe, ".SliceData(b))")
	g.P("if a := uintptr(p) % ", sn.align, "; a != 0 {")
	g.P("return nil, fmt.Errorf(\"", g.pkgName, ".", sn.fromBytes, ": buffer at %#x is misaligned by %d bytes, want %d-byte alignment\", uintptr(p), a, ", sn.align, ")")
	g.P("}")
	g.P("return (*", n, ")(p), nil")
	g.P("}")
	g.P()
}
