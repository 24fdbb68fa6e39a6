package schema

import (
	"io"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// Token types of the IDL. The scanner below replaces participle's regexp
// lexer (lexer.MustSimple), which spent ~4 µs per token; the rules are the
// same:
//
//	Comment     //[^\n]*  |  /* ... */
//	String      "(\\.|[^"\\\n])*"
//	Int         0[xX][0-9a-fA-F_]+ | 0[bB][01_]+ | [0-9][0-9_]*
//	Ident       [A-Za-z_][A-Za-z0-9_]*
//	Punct       one of - @ { } [ ] ( ) ; : = ,
//	Whitespace  [ \t\r\n\f]+
const (
	tokComment lexer.TokenType = iota + 1
	tokString
	tokInt
	tokIdent
	tokPunct
	tokWhitespace
)

// tschLexer is the participle lexer definition of the IDL.
var tschLexer lexer.Definition = tschDefinition{}

type tschDefinition struct{}

var tschSymbols = map[string]lexer.TokenType{
	"EOF":        lexer.EOF,
	"Comment":    tokComment,
	"String":     tokString,
	"Int":        tokInt,
	"Ident":      tokIdent,
	"Punct":      tokPunct,
	"Whitespace": tokWhitespace,
}

func (tschDefinition) Symbols() map[string]lexer.TokenType { return tschSymbols }

func (d tschDefinition) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return d.LexBytes(filename, src)
}

func (tschDefinition) LexBytes(filename string, src []byte) (lexer.Lexer, error) {
	return &scanner{src: src, pos: lexer.Position{Filename: filename, Line: 1, Column: 1}}, nil
}

func (d tschDefinition) LexString(filename string, src string) (lexer.Lexer, error) {
	return d.LexBytes(filename, []byte(src))
}

// scanner produces one token per Next call.
type scanner struct {
	src []byte
	pos lexer.Position
}

func isLetter(b byte) bool { return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }
func isDigit(b byte) bool  { return b >= '0' && b <= '9' }
func isHex(b byte) bool    { return isDigit(b) || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' }
func isSpace(b byte) bool  { return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\f' }

func (s *scanner) Next() (lexer.Token, error) {
	start := s.pos
	off := start.Offset
	src := s.src
	if off >= len(src) {
		return lexer.EOFToken(start), nil
	}
	end := off
	typ := tokPunct
	c := src[off]
	switch {
	case isSpace(c):
		typ = tokWhitespace
		for end < len(src) && isSpace(src[end]) {
			end++
		}
	case c == '/' && off+1 < len(src) && src[off+1] == '/':
		typ = tokComment
		for end < len(src) && src[end] != '\n' {
			end++
		}
	case c == '/' && off+1 < len(src) && src[off+1] == '*':
		typ = tokComment
		end = off + 2
		for {
			if end+1 >= len(src) {
				return lexer.Token{}, &lexer.Error{Msg: "unterminated block comment", Pos: start}
			}
			if src[end] == '*' && src[end+1] == '/' {
				end += 2
				break
			}
			end++
		}
	case c == '"':
		typ = tokString
		end = off + 1
		for {
			if end >= len(src) || src[end] == '\n' {
				return lexer.Token{}, &lexer.Error{Msg: "unterminated string literal", Pos: start}
			}
			if src[end] == '\\' {
				if end+1 >= len(src) || src[end+1] == '\n' {
					return lexer.Token{}, &lexer.Error{Msg: "unterminated string literal", Pos: start}
				}
				_, n := utf8.DecodeRune(src[end+1:])
				end += 1 + n
				continue
			}
			end++
			if src[end-1] == '"' {
				break
			}
		}
	case isDigit(c):
		typ = tokInt
		end = off + 1
		if c == '0' && end+1 < len(src) && (src[end] == 'x' || src[end] == 'X') && (isHex(src[end+1]) || src[end+1] == '_') {
			end++
			for end < len(src) && (isHex(src[end]) || src[end] == '_') {
				end++
			}
		} else if c == '0' && end+1 < len(src) && (src[end] == 'b' || src[end] == 'B') && (src[end+1] == '0' || src[end+1] == '1' || src[end+1] == '_') {
			end++
			for end < len(src) && (src[end] == '0' || src[end] == '1' || src[end] == '_') {
				end++
			}
		} else {
			for end < len(src) && (isDigit(src[end]) || src[end] == '_') {
				end++
			}
		}
	case isLetter(c):
		typ = tokIdent
		end = off + 1
		for end < len(src) && (isLetter(src[end]) || isDigit(src[end])) {
			end++
		}
	default:
		switch c {
		case '-', '@', '{', '}', '[', ']', '(', ')', ';', ':', '=', ',':
			end = off + 1
		default:
			return lexer.Token{}, &lexer.Error{Msg: "invalid input text", Pos: start}
		}
	}
	text := src[off:end]
	s.advance(text)
	return lexer.Token{Type: typ, Value: string(text), Pos: start}, nil
}

// advance moves the position past text, counting lines and runes.
func (s *scanner) advance(text []byte) {
	s.pos.Offset += len(text)
	for i := 0; i < len(text); {
		if text[i] == '\n' {
			s.pos.Line++
			s.pos.Column = 1
			i++
			continue
		}
		if text[i] < utf8.RuneSelf {
			i++
		} else {
			_, n := utf8.DecodeRune(text[i:])
			i += n
		}
		s.pos.Column++
	}
}
