package schema

import (
	"math/big"
	"strings"
)

// declare creates a model object for every declaration, registers it in its
// package scope and checks the spelling of its name.
func (c *compiler) declare() {
	c.structs = map[*Struct]*astStruct{}
	c.lfOf = map[*Struct]*loadedFile{}
	for _, lf := range c.order {
		lf.closure = map[*File]bool{}
		for _, f := range lf.file.Closure() {
			lf.closure[f] = true
		}
		docs := docIndex(lf)
		for _, d := range lf.ast.Decls {
			c.declareOne(lf, d, docs)
		}
	}
}

func (c *compiler) declareOne(lf *loadedFile, d *astDecl, docs map[int]Doc) {
	f := lf.file
	doc := docs[d.Pos.Line]
	var name *astName
	var decl Decl
	var ast any
	switch {
	case d.Const != nil:
		name = d.Const.Name
		k := &Const{Name: name.Value, Doc: doc, Pos: toPosition(name.Pos), File: f}
		f.Consts = append(f.Consts, k)
		decl, ast = k, d.Const
		c.checkCase(name, upperRe, "constant", "UPPER_SNAKE_CASE")
	case d.Enum != nil:
		name = d.Enum.Name
		e := &Enum{Name: name.Value, Doc: doc, Pos: toPosition(name.Pos), File: f}
		f.Enums = append(f.Enums, e)
		decl, ast = e, d.Enum
		c.checkCase(name, pascalRe, "enum", "PascalCase")
		for _, m := range d.Enum.Members {
			e.Members = append(e.Members, c.member(m, docs))
		}
	case d.Flags != nil:
		name = d.Flags.Name
		fl := &Flags{Name: name.Value, Doc: doc, Pos: toPosition(name.Pos), File: f}
		f.Flags = append(f.Flags, fl)
		decl, ast = fl, d.Flags
		c.checkCase(name, pascalRe, "flags", "PascalCase")
		for _, m := range d.Flags.Members {
			fl.Members = append(fl.Members, c.member(m, docs))
		}
	case d.Struct != nil:
		name = d.Struct.Name
		s := &Struct{Name: name.Value, Doc: doc, IsMessage: d.Struct.Kind == "message", Pos: toPosition(name.Pos), File: f}
		f.Structs = append(f.Structs, s)
		c.structs[s] = d.Struct
		c.lfOf[s] = lf
		decl, ast = s, d.Struct
		c.checkCase(name, pascalRe, s.Kind(), "PascalCase")
		seen := map[string]*astField{}
		for _, af := range d.Struct.Fields {
			if prev, dup := seen[af.Name.Value]; dup {
				c.dg.errorf(toPosition(af.Name.Pos), "duplicate field %s in %s %s (first declared at %s)", af.Name.Value, s.Kind(), s.Name, describe(toPosition(prev.Name.Pos)))
				continue
			}
			seen[af.Name.Value] = af
			if !af.Colon {
				c.dg.errorf(toPosition(af.Type.Pos), "expected ':' between field name %s and its type", af.Name.Value)
			}
			c.checkCase(af.Name, snakeRe, "field", "lower_snake_case")
			fld := &Field{Name: af.Name.Value, Doc: docs[af.Pos.Line], Pos: toPosition(af.Name.Pos)}
			fld.Deprecated = c.annotations(af.Annotations, "field", nil)
			s.Fields = append(s.Fields, fld)
		}
		if len(d.Struct.Fields) == 0 {
			c.dg.errorf(toPosition(name.Pos), "%s %s is empty: a %s needs at least one field", s.Kind(), s.Name, s.Kind())
		}
	}
	f.Decls = append(f.Decls, decl)
	scope := c.scopes[f.Package]
	if scope == nil {
		scope = map[string]*symbol{}
		c.scopes[f.Package] = scope
	}
	if prev, dup := scope[name.Value]; dup {
		c.dg.errorf(toPosition(name.Pos), "duplicate declaration of %s (first declared at %s)", name.Value, describe(prev.decl.DeclPos()))
		return
	}
	scope[name.Value] = &symbol{decl: decl, ast: ast, lf: lf}
	c.declAnnotations(d, decl)
}

func (c *compiler) member(m *astMember, docs map[int]Doc) *Member {
	c.checkCase(m.Name, upperRe, "member", "UPPER_SNAKE_CASE")
	mem := &Member{Name: m.Name.Value, Doc: docs[m.Pos.Line], Pos: toPosition(m.Name.Pos)}
	mem.Deprecated = c.annotations(m.Annotations, "member", nil)
	return mem
}

func (c *compiler) checkCase(n *astName, re interface{ MatchString(string) bool }, what, style string) {
	if !re.MatchString(n.Value) {
		c.dg.errorf(toPosition(n.Pos), "%s name %q must be %s", what, n.Value, style)
	}
}

// declAnnotations validates the annotations of a declaration and applies them.
func (c *compiler) declAnnotations(d *astDecl, decl Decl) {
	switch x := decl.(type) {
	case *Const:
		c.annotations(d.Annotations, "constant", nil)
	case *Enum:
		x.Deprecated = c.annotations(d.Annotations, "enum", nil)
	case *Flags:
		x.Deprecated = c.annotations(d.Annotations, "flags", nil)
	case *Struct:
		var id *astAnnotation
		allowed := map[string]func(*astAnnotation){
			"align": func(a *astAnnotation) {
				if v, ok := c.annotationInt(a, x.File); ok {
					if v <= 0 || v&(v-1) != 0 || v > MaxAlign {
						c.dg.errorf(toPosition(a.Args[0].Pos), "@align(%d): alignment must be a power of two between 1 and %d", v, MaxAlign)
						return
					}
					x.AlignAttr = int(v)
					c.alignPos[x] = toPosition(a.Pos)
				}
			},
		}
		if x.IsMessage {
			allowed["id"] = func(a *astAnnotation) {
				id = a
				if v, ok := c.annotationInt(a, x.File); ok {
					if v < 1 || v > 0xFFFFFFFF {
						c.dg.errorf(toPosition(a.Args[0].Pos), "@id(%d): a type id must be between 1 and 4294967295", v)
						return
					}
					x.ID = uint32(v)
					ids := c.ids[x.File.Package]
					if ids == nil {
						ids = map[uint32]*Struct{}
						c.ids[x.File.Package] = ids
					}
					if prev, dup := ids[x.ID]; dup {
						c.dg.errorf(toPosition(a.Args[0].Pos), "duplicate type id %d: message %s already uses it (%s)", x.ID, prev.Name, describe(prev.Pos))
						return
					}
					ids[x.ID] = x
				}
			}
		}
		x.Deprecated = c.annotations(d.Annotations, x.Kind(), allowed)
		if x.IsMessage && id == nil {
			c.dg.errorf(x.Pos, "message %s needs a type id: add @id(N) before it", x.Name)
		}
	}
}

// annotations checks a list of annotations against the ones allowed on a
// kind of element (deprecated is allowed everywhere) and reports whether
// @deprecated is present.
func (c *compiler) annotations(list []*astAnnotation, what string, allowed map[string]func(*astAnnotation)) bool {
	deprecated := false
	seen := map[string]bool{}
	for _, a := range list {
		name := a.Name.Value
		pos := toPosition(a.Pos)
		if seen[name] {
			c.dg.errorf(pos, "duplicate annotation @%s", name)
			continue
		}
		seen[name] = true
		if name == "deprecated" {
			if len(a.Args) > 0 {
				c.dg.errorf(pos, "@deprecated takes no arguments")
			}
			deprecated = true
			continue
		}
		fn, ok := allowed[name]
		if !ok {
			switch name {
			case "id":
				c.dg.errorf(pos, "@id is only allowed on messages, not on a %s", what)
			case "align":
				c.dg.errorf(pos, "@align is only allowed on structs and messages, not on a %s", what)
			default:
				if hint := didYouMean(name, []string{"id", "align", "deprecated"}, "@"); hint != "" {
					c.dg.errorf(pos, "unknown annotation @%s%s", name, hint)
				} else {
					c.dg.errorf(pos, "unknown annotation @%s (known: @id, @align, @deprecated)", name)
				}
			}
			continue
		}
		fn(a)
	}
	return deprecated
}

// annotationInt evaluates the single integer argument of an annotation.
func (c *compiler) annotationInt(a *astAnnotation, f *File) (int64, bool) {
	if len(a.Args) != 1 {
		c.dg.errorf(toPosition(a.Pos), "@%s takes exactly one integer argument, got %d", a.Name.Value, len(a.Args))
		return 0, false
	}
	v, ok := c.value(a.Args[0], c.lfByFile(f))
	if !ok {
		return 0, false
	}
	if !v.IsInt64() {
		c.dg.errorf(toPosition(a.Args[0].Pos), "@%s(%s): value out of range", a.Name.Value, v)
		return 0, false
	}
	return v.Int64(), true
}

func (c *compiler) lfByFile(f *File) *loadedFile {
	for _, lf := range c.order {
		if lf.file == f {
			return lf
		}
	}
	return nil
}

// lookup resolves a name as seen from a file: its own declarations and those
// of the files it imports.
func (c *compiler) lookup(n *astName, lf *loadedFile) *symbol {
	sym := c.scopes[lf.file.Package][n.Value]
	if sym == nil {
		return nil
	}
	if !lf.closure[sym.lf.file] {
		c.dg.errorf(toPosition(n.Pos), "%s is declared in %s, which this file does not import", n.Value, sym.lf.file.Path)
		return &symbol{}
	}
	return sym
}

// typeNames are the names a field type may be spelled with in lf: the
// primitives and the package's enums, flags and structs, for "did you mean".
func (c *compiler) typeNames(lf *loadedFile) []string {
	var names []string
	for name := range primitivesByName {
		names = append(names, name)
	}
	for name, sym := range c.scopes[lf.file.Package] {
		if _, isConst := sym.decl.(*Const); !isConst {
			names = append(names, name)
		}
	}
	return names
}

// constNames are the package's constants, for "did you mean".
func (c *compiler) constNames(lf *loadedFile) []string {
	var names []string
	for name, sym := range c.scopes[lf.file.Package] {
		if _, isConst := sym.decl.(*Const); isConst {
			names = append(names, name)
		}
	}
	return names
}

// value evaluates an integer literal or a constant reference.
func (c *compiler) value(v *astValue, lf *loadedFile) (*big.Int, bool) {
	var out *big.Int
	if v.Ident != nil {
		sym := c.lookup(v.Ident, lf)
		if sym == nil {
			c.dg.errorf(toPosition(v.Ident.Pos), "undefined constant %s%s", v.Ident.Value, didYouMean(v.Ident.Value, c.constNames(lf), ""))
			return nil, false
		}
		if sym.decl == nil {
			return nil, false
		}
		k, ok := sym.decl.(*Const)
		if !ok {
			c.dg.errorf(toPosition(v.Ident.Pos), "%s is not a constant", v.Ident.Value)
			return nil, false
		}
		if k.Value == nil {
			c.resolveConst(k, sym)
			if k.Value == nil {
				return nil, false
			}
		}
		out = new(big.Int).Set(k.Value)
	} else {
		lit := strings.ReplaceAll(v.Int, "_", "")
		if len(lit) > 40 {
			c.dg.errorf(toPosition(v.Pos), "integer literal %s is too large", truncate(v.Int, 24))
			return nil, false
		}
		base := 10
		switch {
		case strings.HasPrefix(lit, "0x") || strings.HasPrefix(lit, "0X"):
			lit, base = lit[2:], 16
		case strings.HasPrefix(lit, "0b") || strings.HasPrefix(lit, "0B"):
			lit, base = lit[2:], 2
		}
		var ok bool
		out, ok = new(big.Int).SetString(lit, base)
		if !ok || lit == "" {
			c.dg.errorf(toPosition(v.Pos), "malformed integer literal %s", v.Int)
			return nil, false
		}
	}
	if v.Neg {
		out.Neg(out)
	}
	return out, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (c *compiler) resolveConsts() {
	for _, lf := range c.order {
		for _, k := range lf.file.Consts {
			c.resolveConst(k, c.scopes[lf.file.Package][k.Name])
		}
	}
}

func (c *compiler) resolveConst(k *Const, sym *symbol) {
	if k.Value != nil || sym == nil || sym.decl != Decl(k) {
		return
	}
	ast := sym.ast.(*astConst)
	if c.constResolving[k] {
		c.dg.errorf(k.Pos, "constant %s is defined in terms of itself", k.Name)
		return
	}
	c.constResolving[k] = true
	defer delete(c.constResolving, k)
	typ, ok := c.integerType(ast.Type, "constant "+k.Name)
	if !ok {
		return
	}
	k.Type = typ
	v, ok := c.value(ast.Value, sym.lf)
	if !ok {
		return
	}
	if lo, hi := typ.Range(); v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
		c.dg.errorf(toPosition(ast.Value.Pos), "constant %s = %s is out of range for %s [%s, %s]", k.Name, v, typ, lo, hi)
		return
	}
	k.Value = v
}

// integerType resolves a type reference that must be an integer primitive.
func (c *compiler) integerType(t *astType, what string) (Primitive, bool) {
	p, isPrim := primitivesByName[t.Name.Value]
	if len(t.Dims) > 0 || !isPrim || !p.IsInteger() {
		c.dg.errorf(toPosition(t.Pos), "%s must have an integer type (u8..u64, i8..i64), not %s", what, typeSpelling(t))
		return 0, false
	}
	return p, true
}

func typeSpelling(t *astType) string {
	var b strings.Builder
	for _, d := range t.Dims {
		b.WriteString("[")
		if d.Len.Neg {
			b.WriteString("-")
		}
		if d.Len.Ident != nil {
			b.WriteString(d.Len.Ident.Value)
		} else {
			b.WriteString(truncate(d.Len.Int, 24))
		}
		b.WriteString("]")
	}
	b.WriteString(t.Name.Value)
	return b.String()
}

func (c *compiler) resolveEnums() {
	for _, lf := range c.order {
		for _, e := range lf.file.Enums {
			sym := c.scopes[lf.file.Package][e.Name]
			if sym == nil || sym.decl != Decl(e) {
				continue
			}
			ast := sym.ast.(*astEnum)
			typ, ok := c.integerType(ast.Type, "enum "+e.Name)
			if !ok {
				continue
			}
			e.Underlying = typ
			lo, hi := typ.Range()
			names := map[string]*Member{}
			values := map[string]*Member{}
			for i, m := range e.Members {
				v, ok := c.value(ast.Members[i].Value, lf)
				if !ok {
					continue
				}
				vpos := toPosition(ast.Members[i].Value.Pos)
				if v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
					c.dg.errorf(vpos, "enum value %s.%s = %s is out of range for %s [%s, %s]", e.Name, m.Name, v, typ, lo, hi)
					continue
				}
				m.Value = v
				if prev, dup := names[m.Name]; dup {
					c.dg.errorf(m.Pos, "duplicate member %s in enum %s (first declared at %s)", m.Name, e.Name, describe(prev.Pos))
					continue
				}
				names[m.Name] = m
				if prev, dup := values[v.String()]; dup {
					c.dg.errorf(vpos, "duplicate value %s in enum %s: %s already has it", v, e.Name, prev.Name)
					continue
				}
				values[v.String()] = m
			}
			if len(e.Members) == 0 {
				c.dg.errorf(e.Pos, "enum %s is empty: an enum needs at least one member", e.Name)
			}
		}
		for _, fl := range lf.file.Flags {
			sym := c.scopes[lf.file.Package][fl.Name]
			if sym == nil || sym.decl != Decl(fl) {
				continue
			}
			ast := sym.ast.(*astFlags)
			typ, ok := c.integerType(ast.Type, "flags "+fl.Name)
			if !ok {
				continue
			}
			if typ.IsSigned() {
				c.dg.errorf(toPosition(ast.Type.Pos), "flags %s must have an unsigned type (u8..u64), not %s", fl.Name, typ)
				continue
			}
			fl.Underlying = typ
			bits := int64(typ.Size() * 8)
			names := map[string]*Member{}
			used := map[int64]*Member{}
			for i, m := range fl.Members {
				v, ok := c.value(ast.Members[i].Value, lf)
				if !ok {
					continue
				}
				vpos := toPosition(ast.Members[i].Value.Pos)
				if !v.IsInt64() || v.Int64() < 0 || v.Int64() >= bits {
					c.dg.errorf(vpos, "flag bit %s.%s = %s is out of range: %s has bits 0..%d", fl.Name, m.Name, v, typ, bits-1)
					continue
				}
				m.Value = v
				if prev, dup := names[m.Name]; dup {
					c.dg.errorf(m.Pos, "duplicate member %s in flags %s (first declared at %s)", m.Name, fl.Name, describe(prev.Pos))
					continue
				}
				names[m.Name] = m
				if prev, dup := used[v.Int64()]; dup {
					c.dg.errorf(vpos, "duplicate bit %s in flags %s: %s already uses it", v, fl.Name, prev.Name)
					continue
				}
				used[v.Int64()] = m
			}
			if len(fl.Members) == 0 {
				c.dg.errorf(fl.Pos, "flags %s is empty: flags need at least one member", fl.Name)
			}
		}
	}
}

// resolveStructs resolves field types and lays out every struct, dependencies
// first, reporting cycles.
func (c *compiler) resolveStructs() {
	for _, lf := range c.order {
		for _, s := range lf.file.Structs {
			c.layout(s, nil)
		}
	}
}

// layout computes a struct's field offsets, size and alignment. path is the
// chain of structs being laid out, for cycle messages.
func (c *compiler) layout(s *Struct, path []*Struct) bool {
	switch c.layouts[s] {
	case layoutDone:
		return s.Size > 0
	case layoutActive:
		return false
	}
	c.layouts[s] = layoutActive
	defer func() { c.layouts[s] = layoutDone }()
	ast := c.structs[s]
	lf := c.lfOf[s]
	path = append(path, s)
	ok := len(s.Fields) > 0
	offset, align, natural := 0, 1, 1
	fieldAST := map[string]*astField{}
	for _, af := range ast.Fields {
		if _, seen := fieldAST[af.Name.Value]; !seen {
			fieldAST[af.Name.Value] = af
		}
	}
	for _, f := range s.Fields {
		af := fieldAST[f.Name]
		t := c.fieldType(af.Type, lf, s, path)
		if t == nil {
			ok = false
			continue
		}
		f.Type = t
		offset = alignUp(offset, t.Align)
		f.Offset = offset
		offset += t.Size
		align = max(align, t.Align)
		natural = max(natural, t.NaturalAlign())
		if offset > MaxMessageSize {
			c.dg.errorf(f.Pos, "%s %s is larger than %d bytes (1 MiB) at field %s", s.Kind(), s.Name, MaxMessageSize, f.Name)
			return false
		}
	}
	if !ok {
		return false
	}
	if s.AlignAttr != 0 {
		if s.AlignAttr < align {
			c.dg.errorf(c.alignPos[s], "@align(%d) on %s %s is below its natural alignment %d", s.AlignAttr, s.Kind(), s.Name, align)
			return false
		}
		align = s.AlignAttr
	}
	s.Align = align
	s.NaturalAlign = natural
	s.Size = alignUp(offset, align)
	if s.Size > MaxMessageSize {
		c.dg.errorf(s.Pos, "%s %s is %d bytes, above the limit of %d bytes (1 MiB)", s.Kind(), s.Name, s.Size, MaxMessageSize)
		return false
	}
	return true
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// fieldType resolves a field's type, laying out any struct it names.
func (c *compiler) fieldType(at *astType, lf *loadedFile, owner *Struct, path []*Struct) *Type {
	var t *Type
	if p, ok := primitivesByName[at.Name.Value]; ok {
		t = &Type{Kind: KindPrimitive, Primitive: p, Size: p.Size(), Align: p.Size()}
	} else {
		sym := c.lookup(at.Name, lf)
		if sym == nil {
			c.dg.errorf(toPosition(at.Name.Pos), "unknown type %s%s", at.Name.Value, didYouMean(at.Name.Value, c.typeNames(lf), ""))
			return nil
		}
		switch d := sym.decl.(type) {
		case nil:
			return nil
		case *Enum:
			if d.Underlying == 0 {
				return nil
			}
			t = &Type{Kind: KindEnum, Enum: d, Size: d.Underlying.Size(), Align: d.Underlying.Size()}
		case *Flags:
			if d.Underlying == 0 {
				return nil
			}
			t = &Type{Kind: KindFlags, Flags: d, Size: d.Underlying.Size(), Align: d.Underlying.Size()}
		case *Struct:
			if c.layouts[d] == layoutActive {
				chain := []string{}
				start := 0
				for i, p := range path {
					if p == d {
						start = i
					}
				}
				for _, p := range path[start:] {
					chain = append(chain, p.Name)
				}
				chain = append(chain, d.Name)
				c.dg.errorf(toPosition(at.Name.Pos), "%s %s contains itself: %s", owner.Kind(), owner.Name, strings.Join(chain, " -> "))
				return nil
			}
			if !c.layout(d, path) {
				return nil
			}
			t = &Type{Kind: KindStruct, Struct: d, Size: d.Size, Align: d.Align}
		case *Const:
			c.dg.errorf(toPosition(at.Name.Pos), "%s is a constant, not a type", at.Name.Value)
			return nil
		}
	}
	for i := len(at.Dims) - 1; i >= 0; i-- {
		d := at.Dims[i]
		n, ok := c.value(d.Len, lf)
		if !ok {
			return nil
		}
		pos := toPosition(d.Len.Pos)
		if n.Sign() <= 0 {
			c.dg.errorf(pos, "array length must be positive, got %s", n)
			return nil
		}
		if !n.IsInt64() || n.Int64() > MaxMessageSize || n.Int64()*int64(t.Size) > MaxMessageSize {
			c.dg.errorf(pos, "array [%s]%s is too large: it exceeds the 1 MiB limit", n, t)
			return nil
		}
		t = &Type{Kind: KindArray, Elem: t, Len: int(n.Int64()), Size: int(n.Int64()) * t.Size, Align: t.Align}
	}
	return t
}

// docIndex maps a line number to the doc comment that ends on the line just
// above it: consecutive /// lines, each alone on its line.
func docIndex(lf *loadedFile) map[int]Doc {
	out := map[int]Doc{}
	var block Doc
	lastLine := -1
	for _, cm := range lf.comments {
		if !cm.isDoc() || !aloneOnLine(lf.src, cm.Pos.Offset) {
			block, lastLine = nil, -1
			continue
		}
		if cm.Pos.Line != lastLine+1 {
			block = nil
		}
		text := strings.TrimPrefix(cm.Text, "///")
		text = strings.TrimPrefix(text, " ")
		block = append(block, strings.TrimRight(text, " \t\r"))
		lastLine = cm.Pos.Line
		out[lastLine+1] = append(Doc(nil), block...)
	}
	return out
}

// aloneOnLine reports whether only blanks precede byte offset off on its line.
func aloneOnLine(src []byte, off int) bool {
	for i := off - 1; i >= 0 && src[i] != '\n'; i-- {
		if src[i] != ' ' && src[i] != '\t' {
			return false
		}
	}
	return true
}
