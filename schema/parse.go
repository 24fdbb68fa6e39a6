package schema

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

var tschParser = participle.MustBuild[astFile](
	participle.Lexer(tschLexer),
	participle.Elide("Comment", "Whitespace"),
	participle.Unquote("String"),
)

// comment is one source comment, kept for doc comments and for fmt.
type comment struct {
	Pos  Position
	Text string // as written, including the // or /* */ markers
}

func (c comment) isDoc() bool {
	return strings.HasPrefix(c.Text, "///") && !strings.HasPrefix(c.Text, "////")
}

func toPosition(p lexer.Position) Position {
	return Position{Filename: p.Filename, Offset: p.Offset, Line: p.Line, Column: p.Column}
}

// parseFile parses one source file. On a syntax error it reports one
// diagnostic and returns a nil AST: the grammar is small enough that the
// first syntax error is almost always the one that matters, and semantic
// checks on a half-parsed file would only add noise.
func parseFile(dg *diagnoser, filename string, src []byte) (*astFile, []comment) {
	if !utf8.Valid(src) {
		off := firstInvalidUTF8(src)
		dg.errorf(positionAt(filename, src, off), "invalid UTF-8 encoding (schema files are UTF-8 text)")
		return nil, nil
	}
	comments, ok := scanComments(dg, filename, src)
	if !ok {
		return nil, nil
	}
	file, err := tschParser.ParseBytes(filename, src)
	if err != nil {
		reportSyntaxError(dg, filename, src, err)
		return nil, nil
	}
	return file, comments
}

// scanComments lexes the file once to collect comments with positions and to
// turn lexer failures into precise diagnostics.
func scanComments(dg *diagnoser, filename string, src []byte) ([]comment, bool) {
	lex, err := tschDefinition{}.LexBytes(filename, src)
	if err != nil {
		dg.errorf(positionAt(filename, src, 0), "%v", err)
		return nil, false
	}
	commentType := tokComment
	var out []comment
	for {
		tok, err := lex.Next()
		if err != nil {
			reportSyntaxError(dg, filename, src, err)
			return nil, false
		}
		if tok.EOF() {
			return out, true
		}
		if tok.Type == commentType {
			out = append(out, comment{Pos: toPosition(tok.Pos), Text: tok.Value})
		}
	}
}

func reportSyntaxError(dg *diagnoser, filename string, src []byte, err error) {
	var perr participle.Error
	if !errors.As(err, &perr) {
		dg.errorf(positionAt(filename, src, 0), "%v", err)
		return
	}
	pos := toPosition(perr.Position())
	if pos.Filename == "" {
		pos.Filename = filename
	}
	msg := perr.Message()
	var lerr *lexer.Error
	if errors.As(err, &lerr) {
		rest := src[min(pos.Offset, len(src)):]
		switch {
		case len(rest) >= 2 && rest[0] == '/' && rest[1] == '*':
			msg = "unterminated block comment"
		case len(rest) >= 1 && rest[0] == '"':
			msg = "unterminated string literal"
		case len(rest) >= 1:
			if better, ok := refineLexError(src, pos.Offset); ok {
				msg = better
				break
			}
			r, _ := utf8.DecodeRune(rest)
			msg = "unexpected character " + quoteRune(r)
		}
	} else {
		msg = grammarNames.Replace(strings.ReplaceAll(msg, `unexpected token "<EOF>"`, "unexpected end of file"))
		if better, text, ok := refineParseError(filename, src, err); ok {
			pos, msg = better, text
		}
		if !startsWithPackage(src) {
			msg = "a schema file starts with a package clause: package NAME;"
			pos = positionAt(filename, src, firstTokenOffset(src))
		}
	}
	dg.errorf(pos, "%s", msg)
}

func quoteRune(r rune) string {
	if r < 0x20 || r == 0x7f || r == utf8.RuneError {
		return "U+" + hex4(r)
	}
	return "'" + string(r) + "'"
}

func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	b := []byte{digits[(r>>12)&15], digits[(r>>8)&15], digits[(r>>4)&15], digits[r&15]}
	return string(b)
}

func firstInvalidUTF8(src []byte) int {
	for off := 0; off < len(src); {
		r, n := utf8.DecodeRune(src[off:])
		if r == utf8.RuneError && n <= 1 {
			return off
		}
		off += n
	}
	return len(src)
}

// positionAt computes the line and column of a byte offset.
func positionAt(filename string, src []byte, off int) Position {
	off = max(0, min(off, len(src)))
	line, col := 1, 1
	for i := 0; i < off; {
		r, n := utf8.DecodeRune(src[i:])
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	return Position{Filename: filename, Offset: off, Line: line, Column: col}
}

// startsWithPackage reports whether the first token after blanks and
// comments is the word package.
func startsWithPackage(src []byte) bool {
	off := firstTokenOffset(src)
	rest := src[off:]
	return len(rest) >= 7 && string(rest[:7]) == "package" && (len(rest) == 7 || !isIdentByte(rest[7]))
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// firstTokenOffset skips blanks and comments.
func firstTokenOffset(src []byte) int {
	i := 0
	for i < len(src) {
		switch {
		case src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r' || src[i] == '\f':
			i++
		case i+1 < len(src) && src[i] == '/' && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case i+1 < len(src) && src[i] == '/' && src[i+1] == '*':
			end := strings.Index(string(src[i+2:]), "*/")
			if end < 0 {
				return i
			}
			i += end + 4
		default:
			return i
		}
	}
	return i
}

// grammarNames turns the parser's production names into words.
var grammarNames = strings.NewReplacer(
	"expected (<int> | AstName)", "expected an integer or a constant name",
	"expected AstName", "expected a name",
	"expected AstType", "expected a type",
	"expected AstValue", "expected an integer or a constant name",
	"expected AstDim", "expected an array length",
	"expected AstAnnotation", "expected an annotation",
	"expected AstMember", "expected a member",
	"expected AstField", "expected a field",
	"expected AstDecl", "expected a declaration",
)
