package schema

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// Syntax errors as participle reports them point where the parser noticed
// the problem, which for the commonest slips is not where the user has to
// look. These rules move the diagnostic to the cause, as a C compiler or
// rustc does.

// significant returns the tokens of src that the parser sees (no blanks, no
// comments). src must lex.
func significant(filename string, src []byte) []lexer.Token {
	lex, _ := tschDefinition{}.LexBytes(filename, src)
	var out []lexer.Token
	for {
		tok, err := lex.Next()
		if err != nil || tok.EOF() {
			return out
		}
		if tok.Type != tokWhitespace && tok.Type != tokComment {
			out = append(out, tok)
		}
	}
}

// refineParseError returns a better position and message for a parser error,
// or ok=false to keep participle's.
func refineParseError(filename string, src []byte, err error) (Position, string, bool) {
	var ute *participle.UnexpectedTokenError
	if !errors.As(err, &ute) {
		return Position{}, "", false
	}
	toks := significant(filename, src)
	at := ute.Unexpected.Pos.Offset
	if ute.Unexpected.EOF() {
		at = len(src)
	}
	// The IDL has no nested braces: a '{' met while another is open, or the
	// end of the file, means the open one was never closed.
	open := -1
	for i, tok := range toks {
		if tok.Pos.Offset > at {
			break
		}
		switch tok.Value {
		case "{":
			if open >= 0 && tok.Type == tokPunct {
				return toPosition(toks[open].Pos), fmt.Sprintf("'{' of %s is never closed: expected '}' before %s", declBefore(toks, open), declBefore(toks, i)), true
			}
			open = i
		case "}":
			open = -1
		}
	}
	if open >= 0 && ute.Unexpected.EOF() {
		return toPosition(toks[open].Pos), fmt.Sprintf("'{' of %s is never closed: expected '}' before the end of the file", declBefore(toks, open)), true
	}
	// A missing ';' belongs after the token before it, not at the start of
	// whatever follows (often on the next line).
	if strings.HasSuffix(ute.Message(), `(expected ";")`) {
		prev := -1
		for i, tok := range toks {
			if tok.Pos.Offset >= at {
				break
			}
			prev = i
		}
		if prev >= 0 {
			p := toks[prev]
			return positionAt(filename, src, p.Pos.Offset+len(p.Value)), fmt.Sprintf("expected ';' after %s", describeToken(p)), true
		}
	}
	return Position{}, "", false
}

// declBefore names the declaration whose '{' is toks[i]: "struct A",
// "enum Side", or "line N" when the tokens before it are not a header.
func declBefore(toks []lexer.Token, i int) string {
	for j := i - 1; j >= 0 && j >= i-4; j-- {
		switch toks[j].Value {
		case "struct", "message", "enum", "flags":
			if j+1 < i {
				return toks[j].Value + " " + toks[j+1].Value
			}
		}
	}
	return fmt.Sprintf("line %d", toks[i].Pos.Line)
}

func describeToken(t lexer.Token) string {
	if t.Type == tokPunct {
		return "'" + t.Value + "'"
	}
	return t.Value
}

// refineLexError explains a character the lexer refused at off: a letter
// outside ASCII in an identifier, a dotted package name, a qualified name.
func refineLexError(src []byte, off int) (string, bool) {
	r, n := utf8.DecodeRune(src[off:])
	identAround := off > 0 && isIdentByte(src[off-1]) || off+n < len(src) && isIdentByte(src[off+n])
	switch {
	case r >= utf8.RuneSelf && (unicode.IsLetter(r) || identAround):
		start, end := off, off
		for start > 0 && (isIdentByte(src[start-1]) || src[start-1] >= utf8.RuneSelf) {
			start--
		}
		for end < len(src) && (isIdentByte(src[end]) || src[end] >= utf8.RuneSelf) {
			end++
		}
		return fmt.Sprintf("identifier %q has the non-ASCII character %s: identifiers are ASCII letters, digits and '_'", src[start:end], quoteRune(r)), true
	case r == '.' && off > 0 && isIdentByte(src[off-1]) && off+1 < len(src) && isLetter(src[off+1]):
		if pkg, ok := packagePath(src, off); ok {
			return fmt.Sprintf("package name %s is dotted: a package name is one lower_snake_case word (package %s;)", pkg, strings.ReplaceAll(pkg, ".", "_")), true
		}
		start, end := off, off+1
		for start > 0 && isIdentByte(src[start-1]) {
			start--
		}
		for end < len(src) && isIdentByte(src[end]) {
			end++
		}
		return fmt.Sprintf("qualified name %s: names are not qualified; write %s (an imported file's declarations are in scope by their own names)", src[start:end], src[off+1:end]), true
	}
	return "", false
}

// packagePath reports the dotted name being written after "package" when
// off, a '.', is inside it.
func packagePath(src []byte, off int) (string, bool) {
	start := firstTokenOffset(src)
	if !startsWithPackage(src) {
		return "", false
	}
	i := start + len("package")
	for i < len(src) && isSpace(src[i]) {
		i++
	}
	end := i
	for end < len(src) && (isIdentByte(src[end]) || src[end] == '.') {
		end++
	}
	if off < i || off >= end {
		return "", false
	}
	return string(src[i:end]), true
}
