package genrust

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

const (
	fmtResult = "::core::fmt::Result"
	fmtParams = "&self, f: &mut ::core::fmt::Formatter<'_>"
	some      = "::core::option::Option::Some"
	none      = "::core::option::Option::None"
	ok        = "::core::result::Result::Ok"
	errPath   = "::core::result::Result::Err"
)

func (g *generator) constant(c *schema.Const) {
	g.doc(c.Doc, false, "")
	g.assign("", "pub const "+Ident(c.Name)+": "+c.Type.String(), literal(c.Value), ";")
}

// fmtImpl prints `impl ::core::fmt::<trait> for name` with its fmt method
// around body.
func (g *generator) fmtImpl(trait, name string, deprecated bool, body func()) {
	g.P()
	g.allowDeprecated(deprecated, "")
	g.implFor("::core::fmt::"+trait, name)
	g.fnHead("    ", "fn fmt", []string{fmtParams}, fmtResult)
	body()
	g.P("    }")
	g.P("}")
}

// newtype prints an enum's or flags' type, #[repr(transparent)] over its
// integer, and opens its impl block with a constant per member: the doc
// comment, then note, then the type with its derives.
func (g *generator) newtype(doc schema.Doc, deprecated bool, name, raw string, members []*schema.Member,
	value func(*schema.Member) string, note []string, derives ...string) {
	g.doc(doc, false, "")
	if len(doc) > 0 {
		g.P("///")
	}
	for _, l := range note {
		g.P("/// ", l)
	}
	g.deprecated(deprecated, "")
	g.derive(derives...)
	g.P("#[repr(transparent)]")
	g.P("pub struct ", name, "(pub ", raw, ");")
	g.P()
	g.allowDeprecated(deprecated, "")
	g.P("impl ", name, " {")
	for _, m := range members {
		g.doc(m.Doc, m.Deprecated, "    ")
		g.assign("    ", "pub const "+Ident(m.Name)+": Self", "Self("+value(m)+")", ";")
	}
}

func (g *generator) enum(e *schema.Enum) {
	name, raw := Ident(e.Name), e.Underlying.String()
	g.newtype(e.Doc, e.Deprecated, name, raw, e.Members, func(m *schema.Member) string { return literal(m.Value) },
		[]string{
			"Any " + raw + " is a " + name + ": a value the schema does not declare (a newer peer's,",
			"say) is kept as it is; [`" + name + "::name`] and [`" + name + "::is_known`] tell.",
		}, "Clone", "Copy", "PartialEq", "Eq", "PartialOrd", "Ord", "Hash")
	g.P()
	g.P("    /// The schema name of the value, or `None` for a value the schema does")
	g.P("    /// not declare.")
	g.P("    #[must_use]")
	g.fnHead("    ", "pub const fn name", []string{"self"}, "::core::option::Option<&'static str>")
	g.P("        match self.0 {")
	for _, m := range e.Members {
		g.arm("            ", literal(m.Value), some, `"`+m.Name+`"`)
	}
	g.P("            _ => ", none, ",")
	g.P("        }")
	g.P("    }")
	g.P()
	g.P("    /// Whether the schema declares the value.")
	g.P("    #[must_use]")
	g.P("    pub const fn is_known(self) -> bool {")
	g.P("        self.name().is_some()")
	g.P("    }")
	g.P("}")
	g.P()
	g.allowDeprecated(e.Deprecated, "")
	g.implFor("::core::convert::TryFrom<"+raw+">", name)
	g.P("    type Error = ::tachyon_ring::UnknownEnumValue;")
	g.P()
	g.P("    /// The value if the schema declares it, else an error (`", name, "(value)`")
	g.P("    /// keeps any value).")
	g.fnHead("    ", "fn try_from", []string{"value: " + raw}, "::core::result::Result<Self, Self::Error>")
	g.assign("        ", "const NAME: &str", `"`+qualified(e.File, e.Name)+`"`, ";")
	g.P("        if Self(value).is_known() {")
	g.P("            return ", ok, "(Self(value));")
	g.P("        }")
	g.P("        ", errPath, "(::tachyon_ring::UnknownEnumValue::new(NAME, value as i128))")
	g.P("    }")
	g.P("}")
	g.P()
	g.allowDeprecated(e.Deprecated, "")
	g.implFor("::core::convert::From<"+name+">", raw)
	g.fnHead("    ", "fn from", []string{"value: " + name}, "Self")
	g.P("        value.0")
	g.P("    }")
	g.P("}")
	g.fmtImpl("Display", name, e.Deprecated, func() {
		g.P("        if let ", some, "(name) = self.name() {")
		g.P("            return f.write_str(name);")
		g.P("        }")
		g.call("        ", "::core::write!", []string{"f", fmt.Sprintf(`"%s({})"`, e.Name), "self.0"}, "")
	})
	g.fmtImpl("Debug", name, e.Deprecated, func() {
		g.P("        ::core::fmt::Display::fmt(self, f)")
	})
}

func (g *generator) flags(fl *schema.Flags) {
	name, raw := Ident(fl.Name), fl.Underlying.String()
	mask := new(big.Int)
	for _, m := range fl.Members {
		mask.SetBit(mask, int(m.Value.Int64()), 1)
	}
	all := "0x" + mask.Text(16)
	g.newtype(fl.Doc, fl.Deprecated, name, raw, fl.Members, func(m *schema.Member) string { return bitExpr(m, false) },
		[]string{
			"A set of bits: any " + raw + " is a " + name + ", bits the schema does not declare",
			"included (they are kept; [`" + name + "::all`] holds the declared ones).",
		}, "Clone", "Copy", "PartialEq", "Eq", "Hash", "Default")
	// method prints one method: its doc line, #[must_use] unless it mutates,
	// its signature and its body lines.
	method := func(doc, sig, ret string, body ...string) {
		g.P()
		g.P("    /// ", doc)
		if !strings.Contains(sig, "&mut self") {
			g.P("    #[must_use]")
		}
		open := strings.Index(sig, "(")
		var params []string
		if p := sig[open+1 : len(sig)-1]; p != "" {
			params = strings.Split(p, ", ")
		}
		g.fnHead("    ", sig[:open], params, ret)
		for _, l := range body {
			g.P("        ", l)
		}
		g.P("    }")
	}
	method("No bits set.", "pub const fn empty()", "Self", "Self(0)")
	method("Every bit the schema declares.", "pub const fn all()", "Self", "Self("+all+")")
	method("The bits as stored.", "pub const fn bits(self)", raw, "self.0")
	method("`bits` if the schema declares every bit set in it, else `None`.",
		"pub const fn from_bits(bits: "+raw+")", "::core::option::Option<Self>",
		"if bits & !Self::all().0 == 0 {", "    "+some+"(Self(bits))", "} else {", "    "+none, "}")
	method("`bits` without the bits the schema does not declare.",
		"pub const fn from_bits_truncate(bits: "+raw+")", "Self", "Self(bits & Self::all().0)")
	method("`bits` as they are, undeclared bits included.",
		"pub const fn from_bits_retain(bits: "+raw+")", "Self", "Self(bits)")
	method("Whether no bit is set.", "pub const fn is_empty(self)", "bool", "self.0 == 0")
	method("Whether every declared bit is set.", "pub const fn is_all(self)", "bool", "self.0 & Self::all().0 == Self::all().0")
	method("Whether every bit of `other` is set in `self`.", "pub const fn contains(self, other: Self)", "bool", "self.0 & other.0 == other.0")
	method("Whether `self` and `other` share a bit.", "pub const fn intersects(self, other: Self)", "bool", "self.0 & other.0 != 0")
	method("The bits set in either.", "pub const fn union(self, other: Self)", "Self", "Self(self.0 | other.0)")
	method("The bits set in both.", "pub const fn intersection(self, other: Self)", "Self", "Self(self.0 & other.0)")
	method("The bits of `self` not set in `other`.", "pub const fn difference(self, other: Self)", "Self", "Self(self.0 & !other.0)")
	method("The bits set in exactly one.", "pub const fn symmetric_difference(self, other: Self)", "Self", "Self(self.0 ^ other.0)")
	method("The declared bits not set in `self`.", "pub const fn complement(self)", "Self", "Self(!self.0 & Self::all().0)")
	method("Sets the bits of `other`.", "pub fn insert(&mut self, other: Self)", "", "self.0 |= other.0;")
	method("Clears the bits of `other`.", "pub fn remove(&mut self, other: Self)", "", "self.0 &= !other.0;")
	method("Flips the bits of `other`.", "pub fn toggle(&mut self, other: Self)", "", "self.0 ^= other.0;")
	method("Sets the bits of `other` if `value`, else clears them.", "pub fn set(&mut self, other: Self, value: bool)", "",
		"if value {", "    self.insert(other);", "} else {", "    self.remove(other);", "}")
	g.P("}")

	for _, op := range []struct{ trait, fn, method string }{
		{"BitOr", "bitor", "union"}, {"BitAnd", "bitand", "intersection"},
		{"BitXor", "bitxor", "symmetric_difference"}, {"Sub", "sub", "difference"},
	} {
		g.P()
		g.allowDeprecated(fl.Deprecated, "")
		g.implFor("::core::ops::"+op.trait, name)
		g.P("    type Output = Self;")
		g.P()
		g.P("    fn ", op.fn, "(self, other: Self) -> Self {")
		g.P("        self.", op.method, "(other)")
		g.P("    }")
		g.P("}")
		g.P()
		g.allowDeprecated(fl.Deprecated, "")
		g.implFor("::core::ops::"+op.trait+"Assign", name)
		g.P("    fn ", op.fn, "_assign(&mut self, other: Self) {")
		g.P("        *self = self.", op.method, "(other);")
		g.P("    }")
		g.P("}")
	}
	g.P()
	g.allowDeprecated(fl.Deprecated, "")
	g.implFor("::core::ops::Not", name)
	g.P("    type Output = Self;")
	g.P()
	g.P("    /// The declared bits not set in `self` (see [`", name, "::complement`]).")
	g.P("    fn not(self) -> Self {")
	g.P("        self.complement()")
	g.P("    }")
	g.P("}")
	g.fmtImpl("Display", name, fl.Deprecated, func() {
		g.P("        // The set bits by schema name, joined by \" | \"; undeclared bits in hex;")
		g.P("        // no bit as 0x0.")
		g.P("        let mut sep = \"\";")
		for _, m := range fl.Members {
			g.P("        if self.0 & ", bitExpr(m, true), " != 0 {")
			g.P("            f.write_str(sep)?;")
			g.call("            ", "f.write_str", []string{`"` + m.Name + `"`}, "?;")
			g.P("            sep = \" | \";")
			g.P("        }")
		}
		g.P("        let rest = self.0 & !Self::all().0;")
		g.P("        if rest != 0 || sep.is_empty() {")
		g.P("            ::core::write!(f, \"{sep}{rest:#x}\")?;")
		g.P("        }")
		g.P("        ", ok, "(())")
	})
	g.fmtImpl("Debug", name, fl.Deprecated, func() {
		g.call("        ", "::core::write!", []string{"f", fmt.Sprintf(`"%s({self})"`, fl.Name)}, "")
	})
}

// bitExpr is the value of flag bit m: 1, or 1 << n (parenthesized in an
// expression).
func bitExpr(m *schema.Member, paren bool) string {
	switch {
	case m.Value.Sign() == 0:
		return "1"
	case paren:
		return "(1 << " + m.Value.String() + ")"
	}
	return "1 << " + m.Value.String()
}

// usesDeprecated reports whether the items generated for s name a
// deprecated declaration: s itself, one of its fields, or a field's type.
func usesDeprecated(s *schema.Struct) bool {
	if s.Deprecated {
		return true
	}
	for _, f := range s.Fields {
		if f.Deprecated || deprecatedType(f.Type) {
			return true
		}
	}
	return false
}

func (g *generator) structure(s *schema.Struct) {
	names := newMemberNames(s)
	name := Ident(s.Name)
	dep := usesDeprecated(s)

	g.doc(s.Doc, false, "")
	if len(s.Doc) > 0 {
		g.P("///")
	}
	if s.IsMessage {
		g.P(fmt.Sprintf("/// Layout: %d bytes, aligned to %d; message type id %d.", s.Size, s.Align, s.ID))
	} else {
		g.P(fmt.Sprintf("/// Layout: %d bytes, aligned to %d.", s.Size, s.Align))
	}
	g.deprecated(s.Deprecated, "")
	derives := []string{"Clone", "Copy", "PartialEq"}
	float := false
	for _, f := range s.Fields {
		float = float || hasFloat(f.Type)
	}
	if !float {
		derives = append(derives, "Eq", "Hash")
	}
	g.derive(derives...)
	if s.AlignAttr != 0 {
		g.P("#[repr(C, align(", s.AlignAttr, "))]")
	} else {
		g.P("#[repr(C)]")
	}
	g.allowDeprecated(dep, "")
	g.P("pub struct ", name, " {")
	pad := 0
	for _, sl := range s.Slots() {
		if sl.Field == nil {
			g.P(fmt.Sprintf("    _pad%d: [u8; %d],", pad, sl.Size))
			pad++
			continue
		}
		f := sl.Field
		g.doc(f.Doc, f.Deprecated, "    ")
		g.split("    ", "pub "+names.fields[f], ":", " ", g.typeName(f.Type), ",")
	}
	g.P("}")

	g.P()
	g.allowDeprecated(dep, "")
	g.P("impl ", name, " {")
	if s.IsMessage {
		g.P("    /// The schema name, package.Name.")
		g.assign("    ", "pub const NAME: &str", `"`+qualified(s.File, s.Name)+`"`, ";")
		g.P("    /// The schema type id (`@id`).")
		g.P("    pub const TYPE_ID: u32 = ", s.ID, ";")
		g.P("    /// The layout fingerprint: rings refuse peers whose fingerprint differs.")
		g.P(fmt.Sprintf("    pub const FINGERPRINT: u64 = 0x%016x;", s.Fingerprint))
	}
	g.P("    /// Size in bytes, padding included.")
	g.P("    pub const SIZE: usize = ", s.Size, ";")
	g.P("    /// Alignment in bytes.")
	g.P("    pub const ALIGN: usize = ", s.Align, ";")
	g.textHelpers(s, names)
	g.P("}")

	g.P()
	g.allowDeprecated(dep, "")
	g.implFor("::core::default::Default", name)
	g.P("    /// All zeros, padding included (an enum's zero need not be a declared value).")
	g.P("    fn default() -> Self {")
	g.P("        ::tachyon_ring::zerocopy::FromZeros::new_zeroed()")
	g.P("    }")
	g.P("}")

	g.fmtImpl("Debug", name, dep, func() {
		g.P("        // Padding is left out; text shows up to its first NUL, escaped.")
		g.assign("        ", "let mut out", `f.debug_struct("`+s.Name+`")`, ";")
		for _, f := range s.Fields {
			value := "&self." + names.fields[f]
			if f.Type.IsText() {
				g.assign("        ", "let text", "self."+names.helpers[f].bytes+"()", ";")
				value = `&::core::format_args!("\"{}\"", text.escape_ascii())`
			}
			g.call("        ", "out.field", []string{`"` + f.Name + `"`, value}, ";")
		}
		g.P("        out.finish()")
	})

	if s.IsMessage {
		g.P()
		g.allowDeprecated(dep, "")
		g.implFor("::tachyon_ring::Message", name)
		g.P("    const NAME: &'static str = Self::NAME;")
		g.P("    const TYPE_ID: u32 = Self::TYPE_ID;")
		g.P("    const FINGERPRINT: u64 = Self::FINGERPRINT;")
		g.P("    const SIZE: usize = Self::SIZE;")
		g.P("    const ALIGN: usize = Self::ALIGN;")
		g.P("}")
	}

	g.P()
	g.P("// The compiler must agree with the schema on every byte of ", s.Name, ".")
	g.allowDeprecated(dep, "")
	g.P("const _: () = {")
	g.P("    use ::core::mem::{align_of, offset_of, size_of};")
	g.assertEq("    ", "size_of::<"+name+">", nil, s.Size)
	g.assertEq("    ", "align_of::<"+name+">", nil, s.Align)
	for _, f := range s.Fields {
		g.assertEq("    ", "offset_of!", []string{name, names.fields[f]}, f.Offset)
	}
	g.P("};")
}

// textHelpers prints the accessors of the struct's [N]char fields. Text is
// the bytes up to the first NUL (all N if none); a setter truncates to N
// bytes and NUL pads, as in every Tachyon language.
func (g *generator) textHelpers(s *schema.Struct, names *memberNames) {
	for _, f := range s.Fields {
		if !f.Type.IsText() {
			continue
		}
		field, h, n := names.fields[f], names.helpers[f], f.Type.Len
		g.P()
		g.P("    /// `", f.Name, "` up to its first NUL (all ", n, " bytes if none).")
		g.P("    #[must_use]")
		g.fnHead("    ", "pub fn "+h.bytes, []string{"&self"}, "&[u8]")
		g.P("        let text = &self.", field, ";")
		g.P("        let end = text.iter().position(|&b| b == 0);")
		g.P("        &text[..end.unwrap_or(", n, ")]")
		g.P("    }")
		g.P()
		g.P("    /// `", f.Name, "` up to its first NUL, as UTF-8.")
		g.fnHead("    ", "pub fn "+h.str, []string{"&self"}, "::core::result::Result<&str, ::core::str::Utf8Error>")
		g.call("        ", "::core::str::from_utf8", []string{"self." + h.bytes + "()"}, "")
		g.P("    }")
		g.P()
		g.P("    /// Stores `text` in `", f.Name, "`: truncated to ", n, " bytes, NUL padded.")
		g.fnHead("    ", "pub fn "+h.set, []string{"&mut self", "text: impl ::core::convert::AsRef<[u8]>"}, "")
		g.P("        let text = ::core::convert::AsRef::<[u8]>::as_ref(&text);")
		g.assign("        ", "let dst", "&mut self."+field, ";")
		g.P("        let n = text.len().min(", n, ");")
		g.P("        dst[..n].copy_from_slice(&text[..n]);")
		g.P("        dst[n..].fill(0);")
		g.P("    }")
	}
}
