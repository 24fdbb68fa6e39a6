package schema

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// Position is a place in a source file. Line and Column are 1-based; Column
// counts characters (runes), Offset counts bytes.
type Position struct {
	Filename string
	Offset   int
	Line     int
	Column   int
}

// String renders the position as FILE:LINE:COL, or FILE alone for an error
// about a whole file (one that cannot be read: Line is 0).
func (p Position) String() string {
	if p.Line == 0 {
		return p.Filename
	}
	return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column)
}

// Diagnostic is one error found in a schema.
type Diagnostic struct {
	Pos Position
	Msg string
	// line is the source line the position points into, as written.
	line string
}

// Error renders the diagnostic as FILE:LINE:COL: error: MESSAGE.
func (d *Diagnostic) Error() string { return d.Pos.String() + ": error: " + d.Msg }

// Diagnostics is a sorted, de-duplicated list of schema errors. It is the
// error type returned by Load.
type Diagnostics []*Diagnostic

// Error renders every diagnostic on its own line, without source excerpts.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Print writes every diagnostic like a C compiler does: the message, the
// source line as written (tabs kept) and a caret under the column.
func (ds Diagnostics) Print(w io.Writer) {
	for _, d := range ds {
		fmt.Fprintln(w, d.Error())
		if d.line == "" && d.Pos.Line == 0 {
			continue
		}
		excerpt, caret := renderExcerpt(d.line, d.Pos.Column)
		fmt.Fprintln(w, excerpt)
		fmt.Fprintln(w, caret)
	}
}

// maxExcerpt bounds how much of a source line a diagnostic repeats, so a
// 10 MB line does not flood the terminal.
const maxExcerpt = 160

// renderExcerpt returns the source line (windowed around col when long,
// invalid UTF-8 and control bytes shown as U+FFFD) and the caret line.
func renderExcerpt(line string, col int) (string, string) {
	runes := []rune(strings.ToValidUTF8(line, "\uFFFD"))
	if col < 1 {
		col = 1
	}
	idx := col - 1
	if idx > len(runes) {
		idx = len(runes)
	}
	start, end, prefix, suffix := 0, len(runes), "", ""
	if len(runes) > maxExcerpt {
		start = idx - maxExcerpt/2
		if start < 0 {
			start = 0
		}
		end = start + maxExcerpt
		if end > len(runes) {
			end = len(runes)
			start = max(0, end-maxExcerpt)
		}
		if start > 0 {
			prefix = "..."
		}
		if end < len(runes) {
			suffix = "..."
		}
	}
	var text, caret strings.Builder
	caret.WriteString(strings.Repeat(" ", len(prefix)))
	text.WriteString(prefix)
	for i := start; i < end; i++ {
		r := runes[i]
		switch {
		case r == '\t':
			text.WriteRune('\t')
		case r < 0x20 || r == 0x7f:
			text.WriteRune(utf8.RuneError)
		default:
			text.WriteRune(r)
		}
		if i < idx {
			if r == '\t' {
				caret.WriteByte('\t')
			} else {
				caret.WriteByte(' ')
			}
		}
	}
	text.WriteString(suffix)
	caret.WriteByte('^')
	return text.String(), caret.String()
}

// diagnoser collects diagnostics for a set of sources.
type diagnoser struct {
	sources map[string][]byte
	list    Diagnostics
}

func (dg *diagnoser) errorf(pos Position, format string, args ...any) {
	d := &Diagnostic{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	if src, ok := dg.sources[pos.Filename]; ok {
		d.line = lineAt(src, pos.Offset)
	}
	dg.list = append(dg.list, d)
}

// lineAt returns the line of src that contains byte offset off.
func lineAt(src []byte, off int) string {
	if off < 0 || off > len(src) {
		return ""
	}
	start := off
	for start > 0 && src[start-1] != '\n' {
		start--
	}
	end := off
	for end < len(src) && src[end] != '\n' {
		end++
	}
	return strings.TrimSuffix(string(src[start:end]), "\r")
}

// sorted returns the diagnostics ordered by file, then offset, without
// exact duplicates.
func (dg *diagnoser) sorted() Diagnostics {
	ds := dg.list
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Offset < b.Offset
	})
	out := ds[:0]
	for i, d := range ds {
		if i > 0 && d.Pos == ds[i-1].Pos && d.Msg == ds[i-1].Msg {
			continue
		}
		out = append(out, d)
	}
	return out
}
