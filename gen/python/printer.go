package genpy

import (
	"bytes"
	"fmt"
	"strings"
)

// maxLine is the line length the printer wraps at (black's default).
const maxLine = 88

// printer collects the generated module line by line.
type printer struct {
	buf bytes.Buffer
}

// P prints one line made of its arguments; P() prints a blank line.
func (p *printer) P(args ...any) {
	for _, a := range args {
		fmt.Fprint(&p.buf, a)
	}
	p.buf.WriteByte('\n')
}

// list prints open, the items separated by ", " and close as black would:
// on one line when that fits, else the items on one line of their own, else
// one item per line with a trailing comma.
func (p *printer) list(indent, open string, items []string, close string) {
	joined := strings.Join(items, ", ")
	if len(indent+open+joined+close) <= maxLine {
		p.P(indent, open, joined, close)
		return
	}
	p.P(indent, open)
	if len(indent+"    "+joined) <= maxLine {
		p.P(indent, "    ", joined)
		p.P(indent, strings.TrimLeft(close, " "))
		return
	}
	for _, it := range items {
		p.P(indent, "    ", it, ",")
	}
	p.P(indent, strings.TrimLeft(close, " "))
}

// docstring prints lines as a docstring at indent: one line when it is one
// line, else the PEP 257 form with the closing quotes on their own line.
func (p *printer) docstring(indent string, lines []string) {
	if len(lines) == 0 {
		return
	}
	esc := make([]string, len(lines))
	for i, l := range lines {
		l = strings.ReplaceAll(l, `\`, `\\`)
		l = strings.ReplaceAll(l, `"""`, `\"\"\"`)
		esc[i] = l
	}
	if len(esc) == 1 {
		if strings.HasSuffix(esc[0], `"`) {
			esc[0] = strings.TrimSuffix(esc[0], `"`) + `\"`
		}
		p.P(indent, `"""`, esc[0], `"""`)
		return
	}
	p.P(indent, `"""`, esc[0])
	for _, l := range esc[1:] {
		if l == "" {
			p.P()
		} else {
			p.P(indent, l)
		}
	}
	p.P(indent, `"""`)
}

// quote renders s as a Python string literal (schema names and struct
// formats are ASCII without quotes or backslashes).
func quote(s string) string { return `"` + s + `"` }
