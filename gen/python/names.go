package genpy

import "github.com/tachyon-io/tachyon/schema"

// pythonReserved holds Python's keywords, soft keywords and builtins (3.10
// to 3.13): a schema name equal to one is escaped everywhere.
var pythonReserved = setOf(
	"ArithmeticError", "AssertionError", "AttributeError", "BaseException",
	"BaseExceptionGroup", "BlockingIOError", "BrokenPipeError", "BufferError",
	"BytesWarning", "ChildProcessError", "ConnectionAbortedError",
	"ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
	"DeprecationWarning", "EOFError", "Ellipsis", "EncodingWarning",
	"EnvironmentError", "Exception", "ExceptionGroup", "False",
	"FileExistsError", "FileNotFoundError", "FloatingPointError",
	"FutureWarning", "GeneratorExit", "IOError", "ImportError", "ImportWarning",
	"IndentationError", "IndexError", "InterruptedError", "IsADirectoryError",
	"KeyError", "KeyboardInterrupt", "LookupError", "MemoryError",
	"ModuleNotFoundError", "NameError", "None", "NotADirectoryError",
	"NotImplemented", "NotImplementedError", "OSError", "OverflowError",
	"PendingDeprecationWarning", "PermissionError", "ProcessLookupError",
	"PythonFinalizationError", "RecursionError", "ReferenceError",
	"ResourceWarning", "RuntimeError", "RuntimeWarning", "StopAsyncIteration",
	"StopIteration", "SyntaxError", "SyntaxWarning", "SystemError",
	"SystemExit", "TabError", "TimeoutError", "True", "TypeError",
	"UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError",
	"UnicodeError", "UnicodeTranslateError", "UnicodeWarning", "UserWarning",
	"ValueError", "Warning", "ZeroDivisionError",
	"abs", "aiter", "all", "and", "anext", "any", "as", "ascii", "assert",
	"async", "await", "bin", "bool", "break", "breakpoint", "bytearray",
	"bytes", "callable", "case", "chr", "class", "classmethod", "compile",
	"complex", "continue", "copyright", "credits", "def", "del", "delattr",
	"dict", "dir", "divmod", "elif", "else", "enumerate", "eval", "except",
	"exec", "exit", "filter", "finally", "float", "for", "format", "from",
	"frozenset", "getattr", "global", "globals", "hasattr", "hash", "help",
	"hex", "id", "if", "import", "in", "input", "int", "is", "isinstance",
	"issubclass", "iter", "lambda", "len", "license", "list", "locals", "map",
	"match", "max", "memoryview", "min", "next", "nonlocal", "not", "object",
	"oct", "open", "or", "ord", "pass", "pow", "print", "property", "quit",
	"raise", "range", "repr", "return", "reversed", "round", "set", "setattr",
	"slice", "sorted", "staticmethod", "str", "sum", "super", "try", "tuple",
	"type", "vars", "while", "with", "yield", "zip",
)

// moduleNames are the public names a generated module binds by importing
// them; helpers are private (_name) and cannot collide with schema names.
var moduleNames = setOf(
	"annotations", "enum", "struct", "dataclass", "np", "npt",
	"TYPE_CHECKING", "Any", "ClassVar", "Final", "Callable", "Sequence",
	"ReadableBuffer", "WriteableBuffer",
)

// recordAPI are the names a record class defines besides its fields, and
// the parameter names of its methods.
var recordAPI = setOf(
	"pack", "pack_into", "unpack", "unpack_from", "decode_batch",
	"SIZE", "ALIGN", "STRUCT", "DTYPE", "TYPE_ID", "FINGERPRINT", "self", "cls",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// escape appends an underscore to name if any of the sets holds it.
func escape(name string, sets ...map[string]bool) string {
	for _, s := range sets {
		if s[name] {
			return name + "_"
		}
	}
	return name
}

// declName is the Python name of a top-level declaration.
func declName(d schema.Decl) string {
	return escape(d.DeclName(), pythonReserved, moduleNames)
}

// fieldName is the Python attribute name of a struct field.
func fieldName(f *schema.Field) string {
	return escape(f.Name, pythonReserved, moduleNames, recordAPI)
}

// memberName is the Python name of an enum value or a flag bit.
func memberName(m *schema.Member) string {
	return escape(m.Name, pythonReserved)
}

// moduleName is the Python module generated for f.
func moduleName(f *schema.File) string { return f.Stem() + "_tsch" }
