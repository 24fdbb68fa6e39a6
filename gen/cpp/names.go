package gencpp

import (
	"regexp"

	"github.com/tachyon-io/tachyon/schema"
)

// reserved are the names a generated identifier must not take: C++
// keywords and alternative tokens, identifiers with a special meaning
// (final, override, import, module), the namespace std, and macros that the
// headers we include or a GNU-mode compiler define (NULL, errno, linux, ...).
var reserved = map[string]bool{}

func init() {
	for _, name := range []string{
		// Keywords (C++20).
		"alignas", "alignof", "asm", "auto", "bool", "break", "case", "catch",
		"char", "char8_t", "char16_t", "char32_t", "class", "concept", "const",
		"consteval", "constexpr", "constinit", "const_cast", "continue",
		"co_await", "co_return", "co_yield", "decltype", "default", "delete",
		"do", "double", "dynamic_cast", "else", "enum", "explicit", "export",
		"extern", "false", "float", "for", "friend", "goto", "if", "inline",
		"int", "long", "mutable", "namespace", "new", "noexcept", "nullptr",
		"operator", "private", "protected", "public", "register",
		"reinterpret_cast", "requires", "return", "short", "signed", "sizeof",
		"static", "static_assert", "static_cast", "struct", "switch",
		"template", "this", "thread_local", "throw", "true", "try", "typedef",
		"typeid", "typename", "union", "unsigned", "using", "virtual", "void",
		"volatile", "wchar_t", "while",
		// Alternative tokens.
		"and", "and_eq", "bitand", "bitor", "compl", "not", "not_eq", "or",
		"or_eq", "xor", "xor_eq",
		// Identifiers with special meaning, and the standard namespaces.
		"final", "override", "import", "module", "std", "posix",
		// Object-like macros of <cstddef>, <cstdint>, <climits>, <cstdio>,
		// <cerrno>, <cassert> and GNU-mode predefined macros.
		"NULL", "EOF", "BUFSIZ", "errno", "assert", "offsetof", "linux", "unix",
		"i386", "CHAR_BIT", "CHAR_MIN", "CHAR_MAX", "SCHAR_MIN", "SCHAR_MAX",
		"UCHAR_MAX", "SHRT_MIN", "SHRT_MAX", "USHRT_MAX", "INT_MIN", "INT_MAX",
		"UINT_MAX", "LONG_MIN", "LONG_MAX", "ULONG_MAX", "LLONG_MIN",
		"LLONG_MAX", "ULLONG_MAX", "MB_LEN_MAX", "SIZE_MAX", "PTRDIFF_MIN",
		"PTRDIFF_MAX", "WCHAR_MIN", "WCHAR_MAX", "WINT_MIN", "WINT_MAX",
		"SIG_ATOMIC_MIN", "SIG_ATOMIC_MAX", "EXIT_SUCCESS", "EXIT_FAILURE",
		"RAND_MAX",
	} {
		reserved[name] = true
	}
}

// stdintMacro matches the limit and constant macros of <cstdint>:
// INT8_MAX, UINT_LEAST16_MAX, INTMAX_MIN, UINT64_C, ...
var stdintMacro = regexp.MustCompile(`^U?INT(_FAST|_LEAST)?(8|16|32|64|MAX|PTR)_(MIN|MAX|C)$`)

// Ident is the C++ spelling of a schema identifier (package, declaration,
// field, member or constant): the IDL name itself or, when that is a C++
// keyword, alternative token, special identifier or common macro, the name
// with a trailing underscore (class -> class_). IDL identifiers never end in
// an underscore, so an escaped name cannot collide with another schema name.
func Ident(name string) string {
	if reserved[name] || stdintMacro.MatchString(name) {
		return name + "_"
	}
	return name
}

// textHelpers are the names of the accessors generated for a [N]char field:
// <name>_view() and set_<name>(). A helper whose name another member of the
// struct already takes gets a trailing underscore (once is enough: a field
// name ends in an underscore only when it is a keyword, and no keyword
// starts with set_ or ends in _view).
type textHelpers struct{ view, set string }

// memberNames derives the C++ names of a struct's fields and text helpers,
// once, so that every use agrees.
type memberNames struct {
	fields  map[*schema.Field]string
	helpers map[*schema.Field]textHelpers
	taken   map[string]bool
}

func newMemberNames(s *schema.Struct) *memberNames {
	n := &memberNames{
		fields:  map[*schema.Field]string{},
		helpers: map[*schema.Field]textHelpers{},
		taken:   map[string]bool{},
	}
	for _, f := range s.Fields {
		n.fields[f] = Ident(f.Name)
		n.taken[n.fields[f]] = true
	}
	free := func(name string) string {
		if n.taken[name] {
			name += "_"
		}
		n.taken[name] = true
		return name
	}
	for _, f := range s.Fields {
		if f.Type.IsText() {
			n.helpers[f] = textHelpers{view: free(f.Name + "_view"), set: free("set_" + f.Name)}
		}
	}
	return n
}

// local returns a name for a parameter or local variable of a generated
// member function that shadows no member of the struct.
func (n *memberNames) local(name string) string {
	if n.taken[name] {
		return name + "_"
	}
	return name
}
