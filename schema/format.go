package schema

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

// Format returns the canonical formatting of a schema file: one declaration
// per block separated by blank lines, four-space indentation, annotations on
// their own line, `name: type;` fields, and every comment kept, on its own
// line before the element it preceded or after the element it trailed.
// Formatting never changes a layout or a fingerprint.
func Format(filename string, src []byte) ([]byte, error) {
	dg := &diagnoser{sources: map[string][]byte{filename: src}}
	ast, comments := parseFile(dg, filename, src)
	if ast == nil {
		return nil, dg.sorted()
	}
	p := &printer{src: src, comments: comments}
	p.file(ast)
	return p.out.Bytes(), nil
}

var blankLineRe = regexp.MustCompile(`\n[ \t\r]*\n`)

type printer struct {
	out      bytes.Buffer
	src      []byte
	comments []comment
	next     int // index of the first comment not yet printed
	lastLine int // source line of the last element printed
}

// leading prints the comments that come before byte offset off, each on its
// own line, keeping one blank line where the source had one or more.
func (p *printer) leading(off int, indent string) {
	for p.next < len(p.comments) && p.comments[p.next].Pos.Offset < off {
		c := p.comments[p.next]
		if p.lastLine > 0 && c.Pos.Line == p.lastLine {
			p.trailing()
			continue
		}
		if p.lastLine > 0 && c.Pos.Line > p.lastLine+1 && p.out.Len() > 0 && !bytes.HasSuffix(p.out.Bytes(), []byte("{\n")) && !bytes.HasSuffix(p.out.Bytes(), []byte("\n\n")) {
			p.out.WriteString("\n")
		}
		for i, line := range strings.Split(c.Text, "\n") {
			if i == 0 {
				p.out.WriteString(indent)
			}
			p.out.WriteString(strings.TrimRight(line, " \t\r"))
			p.out.WriteString("\n")
		}
		p.next++
		p.lastLine = c.Pos.Line + strings.Count(c.Text, "\n")
	}
}

// trailing appends a comment that sits on the same source line as the
// element just printed.
func (p *printer) trailing() { p.trailingBefore(len(p.src) + 1) }

// trailingBefore is trailing for a comment that starts before byte offset
// limit: after an opening brace, a comment past the first field trails the
// field, not the brace.
func (p *printer) trailingBefore(limit int) {
	if p.next >= len(p.comments) {
		return
	}
	c := p.comments[p.next]
	if c.Pos.Line != p.lastLine || c.Pos.Offset >= limit || strings.Contains(c.Text, "\n") {
		return
	}
	b := p.out.Bytes()
	if len(b) > 0 && b[len(b)-1] == '\n' {
		p.out.Truncate(len(b) - 1)
	}
	p.out.WriteString(" " + p.comments[p.next].Text + "\n")
	p.next++
}

// gap keeps one blank line between two elements of a block where the source
// had at least one.
func (p *printer) gap(line int) {
	if p.lastLine > 0 && line > p.lastLine+1 {
		p.out.WriteString("\n")
	}
}

func (p *printer) file(f *astFile) {
	p.leading(f.Package.Pos.Offset, "")
	p.gap(f.Package.Pos.Line)
	p.out.WriteString("package " + f.Package.Name.Value + ";\n")
	p.lastLine = f.Package.EndPos.Line
	p.trailing()
	if len(f.Imports) > 0 {
		p.out.WriteString("\n")
	}
	for _, imp := range f.Imports {
		p.leading(imp.Pos.Offset, "")
		p.out.WriteString("import " + strconv.Quote(imp.Path) + ";\n")
		p.lastLine = imp.EndPos.Line
		p.trailing()
	}
	for i, d := range f.Decls {
		// Blocks are separated by a blank line; runs of adjacent constants
		// stay together.
		if i == 0 || !(d.Const != nil && f.Decls[i-1].Const != nil && !blankLineRe.Match(p.src[f.Decls[i-1].EndPos.Offset:d.Pos.Offset])) {
			p.out.WriteString("\n")
		}
		p.lastLine = 0 // a declaration always starts a new block
		p.leading(d.Pos.Offset, "")
		p.decl(d)
	}
	p.lastLine = 0
	p.leading(len(p.src)+1, "")
	if p.out.Len() > 0 && !bytes.HasSuffix(p.out.Bytes(), []byte("\n")) {
		p.out.WriteString("\n")
	}
}

func (p *printer) annotations(list []*astAnnotation, indent string) {
	if len(list) == 0 {
		return
	}
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = "@" + a.Name.Value
		if len(a.Args) > 0 {
			args := make([]string, len(a.Args))
			for j, v := range a.Args {
				args[j] = value(v)
			}
			parts[i] += "(" + strings.Join(args, ", ") + ")"
		}
	}
	p.out.WriteString(indent + strings.Join(parts, " ") + "\n")
}

func value(v *astValue) string {
	s := v.Int
	if v.Ident != nil {
		s = v.Ident.Value
	}
	if v.Neg {
		s = "-" + s
	}
	return s
}

func typeText(t *astType) string {
	var b strings.Builder
	for _, d := range t.Dims {
		b.WriteString("[" + value(d.Len) + "]")
	}
	b.WriteString(t.Name.Value)
	return b.String()
}

func (p *printer) decl(d *astDecl) {
	p.annotations(d.Annotations, "")
	switch {
	case d.Const != nil:
		k := d.Const
		p.out.WriteString("const " + k.Name.Value + ": " + typeText(k.Type) + " = " + value(k.Value) + ";\n")
		p.lastLine = k.EndPos.Line
		p.trailing()
	case d.Enum != nil:
		p.members("enum "+d.Enum.Name.Value+": "+typeText(d.Enum.Type), d.Enum.Name.Pos.Line, d.Enum.Members, d.Enum.EndPos.Offset, d.Enum.EndPos.Line)
	case d.Flags != nil:
		p.members("flags "+d.Flags.Name.Value+": "+typeText(d.Flags.Type), d.Flags.Name.Pos.Line, d.Flags.Members, d.Flags.EndPos.Offset, d.Flags.EndPos.Line)
	case d.Struct != nil:
		s := d.Struct
		p.out.WriteString(s.Kind + " " + s.Name.Value + " {\n")
		p.lastLine = s.Name.Pos.Line
		if len(s.Fields) > 0 {
			p.trailingBefore(s.Fields[0].Pos.Offset)
		} else {
			p.trailing()
		}
		for _, f := range s.Fields {
			p.leading(f.Pos.Offset, "    ")
			p.gap(f.Pos.Line)
			p.annotations(f.Annotations, "    ")
			p.out.WriteString("    " + f.Name.Value + ": " + typeText(f.Type) + ";\n")
			p.lastLine = f.EndPos.Line
			p.trailing()
		}
		p.closeBlock(s.EndPos.Offset, s.EndPos.Line)
	}
}

func (p *printer) members(head string, line int, ms []*astMember, endOff, endLine int) {
	p.out.WriteString(head + " {\n")
	p.lastLine = line
	if len(ms) > 0 {
		p.trailingBefore(ms[0].Pos.Offset)
	} else {
		p.trailing()
	}
	for _, m := range ms {
		p.leading(m.Pos.Offset, "    ")
		p.gap(m.Pos.Line)
		p.annotations(m.Annotations, "    ")
		p.out.WriteString("    " + m.Name.Value + " = " + value(m.Value) + ";\n")
		p.lastLine = m.EndPos.Line
		p.trailing()
	}
	p.closeBlock(endOff, endLine)
}

// closeBlock prints the comments left inside a block, then its brace.
func (p *printer) closeBlock(endOff, endLine int) {
	// EndPos is just past the closing brace.
	p.leading(endOff-1, "    ")
	p.out.WriteString("}\n")
	p.lastLine = endLine
	p.trailing()
}
