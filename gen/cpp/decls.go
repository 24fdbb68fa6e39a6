package gencpp

import (
	"fmt"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

func (g *generator) constant(c *schema.Const) {
	g.doc(c.Doc, false, "")
	g.P("inline constexpr ", g.integer(c.Type), " ", Ident(c.Name), " = ", literal(c.Value), ";")
}

func (g *generator) enum(e *schema.Enum) {
	name := Ident(e.Name)
	g.doc(e.Doc, e.Deprecated, "")
	g.P("enum class ", name, " : ", g.integer(e.Underlying), " {")
	for _, m := range e.Members {
		g.doc(m.Doc, m.Deprecated, "    ")
		g.P("    ", Ident(m.Name), " = ", literal(m.Value), ",")
	}
	g.P("};")
	g.P()
	g.use("string_view")
	g.P("/// The schema name of v, or an empty view for a value the schema does not declare.")
	g.P("[[nodiscard]] constexpr std::string_view to_string(", name, " v) noexcept {")
	g.P("    switch (v) {")
	for _, m := range e.Members {
		g.P("    case ", name, "::", Ident(m.Name), ":")
		g.P("        return \"", m.Name, "\";")
	}
	g.P("    }")
	g.P("    return {};")
	g.P("}")
	g.P()
}

func (g *generator) flags(f *schema.Flags) {
	name, bits := Ident(f.Name), g.integer(f.Underlying)
	one := "1u"
	if f.Underlying == schema.U64 {
		one = "1ull"
	}
	g.doc(f.Doc, f.Deprecated, "")
	g.P("enum class ", name, " : ", bits, " {")
	for _, m := range f.Members {
		g.doc(m.Doc, m.Deprecated, "    ")
		g.P("    ", Ident(m.Name), " = ", one, " << ", m.Value.String(), ",")
	}
	g.P("};")
	g.P()
	for _, op := range []string{"|", "&", "^"} {
		g.P("[[nodiscard]] constexpr ", name, " operator", op, "(", name, " a, ", name, " b) noexcept {")
		g.P("    return static_cast<", name, ">(static_cast<", bits, ">(a) ", op, " static_cast<", bits, ">(b));")
		g.P("}")
	}
	g.P("[[nodiscard]] constexpr ", name, " operator~(", name, " a) noexcept {")
	g.P("    return static_cast<", name, ">(~static_cast<", bits, ">(a));")
	g.P("}")
	for _, op := range []string{"|", "&", "^"} {
		g.P("constexpr ", name, "& operator", op, "=(", name, "& a, ", name, " b) noexcept { return a = a ", op, " b; }")
	}
	g.P()
	g.P("/// Reports whether every bit of mask is set in v.")
	g.P("[[nodiscard]] constexpr bool has(", name, " v, ", name, " mask) noexcept { return (v & mask) == mask; }")
	g.P()
}

func (g *generator) structure(s *schema.Struct) {
	names, name := newMemberNames(s), Ident(s.Name)
	g.use("cstddef")
	g.use("cstdint")
	g.use("type_traits")

	g.doc(s.Doc, s.Deprecated, "")
	if len(s.Doc) > 0 {
		g.P("///")
	}
	layout := fmt.Sprintf("/// Layout: %d bytes, aligned to %d", s.Size, s.Align)
	if s.IsMessage {
		layout += fmt.Sprintf("; message type id %d", s.ID)
	}
	g.P(layout, ".")
	g.P("struct alignas(", s.Align, ") ", name, " {")
	if s.IsMessage {
		g.P("    /// Schema type id (@id) of ", name, ".")
		g.P("    static constexpr std::uint32_t kTypeId = ", s.ID, ";")
		g.P("    /// Layout fingerprint: rings refuse peers whose fingerprint differs.")
		g.P("    static constexpr std::uint64_t kFingerprint = ", fmt.Sprintf("0x%016xULL", s.Fingerprint), ";")
	}
	g.P("    /// Size and alignment in bytes, padding included.")
	g.P("    static constexpr std::size_t kSize = ", s.Size, ";")
	g.P("    static constexpr std::size_t kAlign = ", s.Align, ";")
	g.P()
	g.fields(s, names)
	g.textHelpers(s, names)
	g.P("};")
	g.P()

	g.P("// The compiler must agree with the schema on every byte of ", name, ".")
	g.P("static_assert(sizeof(", name, ") == ", s.Size, ");")
	g.P("static_assert(alignof(", name, ") == ", s.Align, ");")
	for _, f := range s.Fields {
		g.P("static_assert(offsetof(", name, ", ", names.fields[f], ") == ", f.Offset, ");")
	}
	g.P("static_assert(std::is_trivially_copyable_v<", name, ">);")
	g.P("static_assert(std::is_standard_layout_v<", name, ">);")
	g.P()
}

// fields prints the data members, padding included, each with its offset in
// a trailing comment aligned across the struct.
func (g *generator) fields(s *schema.Struct, names *memberNames) {
	type line struct {
		doc        schema.Doc
		deprecated bool
		decl, note string
	}
	var lines []line
	width, pad := 0, 0
	for _, slot := range s.Slots() {
		var l line
		if f := slot.Field; f != nil {
			l = line{doc: f.Doc, deprecated: f.Deprecated, decl: g.declarator(f.Type, names.fields[f]) + ";",
				note: fmt.Sprintf("offset %d", slot.Offset)}
		} else {
			l = line{decl: fmt.Sprintf("%s _pad%d[%d];", g.integer(schema.U8), pad, slot.Size),
				note: fmt.Sprintf("offset %d, padding", slot.Offset)}
			pad++
		}
		width = max(width, len(l.decl))
		lines = append(lines, l)
	}
	for _, l := range lines {
		g.doc(l.doc, l.deprecated, "    ")
		g.P("    ", l.decl, strings.Repeat(" ", width-len(l.decl)), "  // ", l.note)
	}
}

// textHelpers prints the accessors of the struct's [N]char fields.
func (g *generator) textHelpers(s *schema.Struct, names *memberNames) {
	for _, f := range s.Fields {
		if !f.Type.IsText() {
			continue
		}
		g.use("cstring")
		g.use("string_view")
		field, h := names.fields[f], names.helpers[f]
		text, n := names.local("text"), names.local("n")
		g.P()
		g.P("    /// ", f.Name, " up to its first NUL (all ", f.Type.Len, " bytes if none), viewed in place.")
		g.P("    [[nodiscard]] constexpr std::string_view ", h.view, "() const noexcept {")
		g.P("        const std::string_view ", text, "{", field, ", sizeof ", field, "};")
		g.P("        return ", text, ".substr(0, ", text, ".find('\\0'));")
		g.P("    }")
		g.P("    /// Stores ", text, " in ", f.Name, ": truncated to ", f.Type.Len, " bytes, NUL padded.")
		g.P("    void ", h.set, "(std::string_view ", text, ") noexcept {")
		g.P("        const std::size_t ", n, " = ", text, ".copy(", field, ", sizeof ", field, ");")
		g.P("        std::memset(", field, " + ", n, ", 0, sizeof ", field, " - ", n, ");")
		g.P("    }")
	}
}
