package schema

import "github.com/alecthomas/participle/v2/lexer"

// The AST mirrors the IDL grammar one to one. Semantic meaning (types,
// layout) lives in the model built from it; the AST only records what was
// written and where.

type astFile struct {
	Pos     lexer.Position
	Package *astPackage  `parser:"@@"`
	Imports []*astImport `parser:"@@*"`
	Decls   []*astDecl   `parser:"@@*"`
	EndPos  lexer.Position
}

type astPackage struct {
	Pos    lexer.Position
	EndPos lexer.Position
	Name   *astName `parser:"'package' @@ ';'"`
}

type astImport struct {
	Pos    lexer.Position
	EndPos lexer.Position
	Path   string `parser:"'import' @String ';'"`
}

type astDecl struct {
	Pos         lexer.Position
	EndPos      lexer.Position
	Annotations []*astAnnotation `parser:"@@*"`
	Const       *astConst        `parser:"( @@"`
	Enum        *astEnum         `parser:"| @@"`
	Flags       *astFlags        `parser:"| @@"`
	Struct      *astStruct       `parser:"| @@ )"`
}

type astAnnotation struct {
	Pos  lexer.Position
	Name *astName    `parser:"'@' @@"`
	Args []*astValue `parser:"( '(' ( @@ ( ',' @@ )* )? ')' )?"`
}

type astConst struct {
	Pos    lexer.Position
	Name   *astName  `parser:"'const' @@ ':'"`
	Type   *astType  `parser:"@@ '='"`
	Value  *astValue `parser:"@@ ';'"`
	EndPos lexer.Position
}

type astEnum struct {
	Pos     lexer.Position
	Name    *astName     `parser:"'enum' @@ ':'"`
	Type    *astType     `parser:"@@ '{'"`
	Members []*astMember `parser:"@@* '}'"`
	EndPos  lexer.Position
}

type astFlags struct {
	Pos     lexer.Position
	Name    *astName     `parser:"'flags' @@ ':'"`
	Type    *astType     `parser:"@@ '{'"`
	Members []*astMember `parser:"@@* '}'"`
	EndPos  lexer.Position
}

type astMember struct {
	Pos         lexer.Position
	Annotations []*astAnnotation `parser:"@@*"`
	Name        *astName         `parser:"@@ '='"`
	Value       *astValue        `parser:"@@ ';'"`
	EndPos      lexer.Position
}

type astStruct struct {
	Pos    lexer.Position
	Kind   string      `parser:"@( 'struct' | 'message' )"`
	Name   *astName    `parser:"@@ '{'"`
	Fields []*astField `parser:"@@* '}'"`
	EndPos lexer.Position
}

type astField struct {
	Pos         lexer.Position
	Annotations []*astAnnotation `parser:"@@*"`
	Name        *astName         `parser:"@@"`
	Colon       bool             `parser:"@':'?"`
	Type        *astType         `parser:"@@ ';'"`
	EndPos      lexer.Position
}

// astType is `[N][M]Elem`. Dimensions are a list, not a recursion, so that
// ten thousand nested arrays cost a slice, not a deep call stack.
type astType struct {
	Pos  lexer.Position
	Dims []*astDim `parser:"@@*"`
	Name *astName  `parser:"@@"`
}

type astDim struct {
	Pos lexer.Position
	Len *astValue `parser:"'[' @@ ']'"`
}

// astValue is an integer literal (optionally negative) or a constant name.
type astValue struct {
	Pos   lexer.Position
	Neg   bool     `parser:"@'-'?"`
	Int   string   `parser:"( @Int"`
	Ident *astName `parser:"| @@ )"`
}

// astName is an identifier with its own position, so that diagnostics about
// a name point at the name rather than at the keyword before it.
type astName struct {
	Pos   lexer.Position
	Value string `parser:"@Ident"`
}
