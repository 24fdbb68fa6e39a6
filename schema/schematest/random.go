// Package schematest generates random valid schemas for oracle tests: every
// backend's layout is checked against an independent compiler (gcc, the Go
// compiler, ctypes, NumPy) over the same seeded schemas.
package schematest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Options tunes Random.
type Options struct {
	Package  string // default "rnd"
	Structs  int    // number of structs and messages; default 6
	MaxField int    // fields per struct, at most; default 8
}

// hostileNames are field names that are keywords, builtins or generated
// method names in Go, Python or C++: every backend must escape them.
var hostileNames = []string{
	"type", "class", "from", "int", "default", "def", "lambda", "len", "str",
	"range", "struct", "union", "new", "delete", "func", "chan", "go",
	"select", "map", "import", "return", "self", "size", "string", "pack",
	"unpack", "dtype", "marshal_binary", "fields", "none", "true", "int64",
	"float", "bytes", "print", "operator", "template", "virtual", "auto",
	"register", "signed", "unsigned", "namespace", "this", "flags", "message",
	"package", "enum", "const", "align", "id", "is", "not", "and", "or",
	"pass", "yield", "async", "await", "with", "as", "global", "var",
	"interface", "error", "any", "nil", "uint8", "byte", "rune",
	"bool", "char", "double", "long", "short", "static", "void", "volatile",
	"unpack_from", "pack_into", "decode_batch", "reset",
	// What the generators add: Go methods and locals, C++ helpers, Python
	// module imports and method parameters.
	"append_binary", "unmarshal_binary", "tachyon_fingerprint", "tachyon_type_id",
	"tachyon_size", "tachyon_align", "put", "get", "off", "to_string", "has",
	"np", "npt", "enum", "dataclass", "annotations", "buffer", "offset", "values",
}

// hostileTypeNames are PascalCase declaration names that the Python module
// imports or that are C++ macros.
var hostileTypeNames = []string{
	"Any", "ClassVar", "Final", "Callable", "Sequence", "ReadableBuffer",
	"WriteableBuffer", "NULL", "EOF", "BUFSIZ",
}

// Integer ranges as IDL literals, for enum members at the extremes.
var intRange = map[string][2]string{
	"u8": {"0", "255"}, "u16": {"0", "65535"}, "u32": {"0", "4294967295"},
	"u64": {"0", "18446744073709551615"},
	"i8":  {"-128", "127"}, "i16": {"-32768", "32767"}, "i32": {"-2147483648", "2147483647"},
	"i64": {"-9223372036854775808", "9223372036854775807"},
}

type typeInfo struct {
	name  string
	align int
	size  int
}

// Random returns the text of a valid schema drawn from rng.
func Random(rng *rand.Rand, opt Options) string {
	if opt.Package == "" {
		opt.Package = "rnd"
	}
	if opt.Structs == 0 {
		opt.Structs = 6
	}
	if opt.MaxField == 0 {
		opt.MaxField = 8
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s;\n\n", opt.Package)

	prims := []typeInfo{
		{"bool", 1, 1}, {"char", 1, 1}, {"u8", 1, 1}, {"i8", 1, 1},
		{"u16", 2, 2}, {"i16", 2, 2}, {"u32", 4, 4}, {"i32", 4, 4},
		{"f32", 4, 4}, {"u64", 8, 8}, {"i64", 8, 8}, {"f64", 8, 8},
	}
	ints := []typeInfo{prims[2], prims[3], prims[4], prims[5], prims[6], prims[7], prims[9], prims[10]}
	unsigned := []typeInfo{prims[2], prims[4], prims[6], prims[9]}
	types := append([]typeInfo(nil), prims...)

	fmt.Fprintf(&b, "const N%d: u32 = %d;\n\n", 0, 1+rng.IntN(4))
	consts := []string{"N0"}

	// generated holds Go names the generator adds at package level (enum
	// members, per-message constants): a struct named like one tests the
	// backends' escaping.
	var generated []string
	declared := map[string]bool{}
	for i := range 1 + rng.IntN(2) {
		u := ints[rng.IntN(len(ints))]
		name := fmt.Sprintf("E%d", i)
		declared[name] = true
		fmt.Fprintf(&b, "/// Enum %s.\nenum %s: %s {\n", name, name, u.name)
		values := []string{}
		if rng.IntN(3) == 0 { // the extremes of the type, and zero
			r := intRange[u.name]
			values = append(values, r[0], r[1])
			if r[0] != "0" {
				values = append(values, "0")
			}
		} else {
			for j := range 1 + rng.IntN(4) {
				values = append(values, fmt.Sprint(j))
			}
		}
		for j, v := range values {
			fmt.Fprintf(&b, "    V%d = %s;\n", j, v)
			generated = append(generated, fmt.Sprintf("%sV%d", name, j))
		}
		b.WriteString("}\n\n")
		types = append(types, typeInfo{name, u.align, u.size})
	}
	for i := range rng.IntN(2) + 1 {
		u := unsigned[rng.IntN(len(unsigned))]
		name := fmt.Sprintf("F%d", i)
		declared[name] = true
		fmt.Fprintf(&b, "flags %s: %s {\n", name, u.name)
		bits := rng.Perm(u.size * 8)
		if rng.IntN(3) == 0 { // the top bit first
			top := slices.Index(bits, u.size*8-1)
			bits[0], bits[top] = bits[top], bits[0]
		}
		bits = bits[:1+rng.IntN(3)]
		for j, bit := range bits {
			fmt.Fprintf(&b, "    B%d = %d;\n", j, bit)
		}
		b.WriteString("}\n\n")
		types = append(types, typeInfo{name, u.align, u.size})
	}

	id, topID := 1, uint32(4294967295)
	for i := range opt.Structs {
		isMsg := rng.IntN(2) == 0 || i == opt.Structs-1
		name := fmt.Sprintf("S%d", i)
		if isMsg {
			name = fmt.Sprintf("M%d", i)
		} else if rng.IntN(5) == 0 {
			// A struct named like a generated name or a Python import.
			pick := hostileTypeNames[rng.IntN(len(hostileTypeNames))]
			if len(generated) > 0 && rng.IntN(2) == 0 {
				pick = generated[rng.IntN(len(generated))]
			}
			if !declared[pick] {
				name = pick
			}
		}
		declared[name] = true
		nf := 1 + rng.IntN(opt.MaxField)
		// Some structs are made of one-byte fields only, which the Go
		// backend marshals without encoding/binary.
		candidates := types
		if rng.IntN(6) == 0 {
			candidates = nil
			for _, t := range types {
				if t.size == 1 {
					candidates = append(candidates, t)
				}
			}
		}
		used := map[string]bool{}
		var fields []string
		align, size := 1, 0
		for j := range nf {
			fname := fmt.Sprintf("f%d", j)
			if rng.IntN(4) == 0 {
				if h := hostileNames[rng.IntN(len(hostileNames))]; !used[h] {
					fname = h
				}
			}
			used[fname] = true
			t := candidates[rng.IntN(len(candidates))]
			spelled := t.name
			count := 1
			switch rng.IntN(6) {
			case 0:
				n := 1 + rng.IntN(5)
				spelled = fmt.Sprintf("[%d]%s", n, t.name)
				count = n
			case 1:
				n, m := 1+rng.IntN(3), 1+rng.IntN(4)
				spelled = fmt.Sprintf("[%d][%d]%s", n, m, t.name)
				count = n * m
			case 2:
				if t.size <= 16 {
					spelled = fmt.Sprintf("[%s]%s", consts[0], t.name)
					count = 4 // upper bound
				}
			case 3:
				n := 1 + rng.IntN(16)
				spelled = fmt.Sprintf("[%d]char", n)
				t, count = prims[1], n
				// A field named like one of the text helpers of this one.
				helper := []string{fname + "_string", "set_" + fname, fname + "_view"}[rng.IntN(3)]
				if rng.IntN(3) == 0 && !used[helper] && j+1 < nf {
					used[helper] = true
					fields = append(fields, fmt.Sprintf("    %s: %s;", fname, spelled), fmt.Sprintf("    %s: u8;", helper))
					size = (size+t.align-1)/t.align*t.align + t.size*count + 1
					continue
				}
			}
			size = (size+t.align-1)/t.align*t.align + t.size*count
			align = max(align, t.align)
			fields = append(fields, fmt.Sprintf("    %s: %s;", fname, spelled))
		}
		if isMsg && rng.IntN(80) == 0 {
			// Just under the 1 MiB limit once aligned: a leaf message.
			fields = []string{"    seq: u64;", fmt.Sprintf("    blob: [%d]u8;", 1<<20-8-rng.IntN(8))}
			align, size = 8, 1<<20
		}
		attrs := ""
		if isMsg {
			if rng.IntN(4) == 0 { // the largest ids
				attrs += fmt.Sprintf("@id(%d) ", topID)
				topID--
			} else {
				attrs += fmt.Sprintf("@id(%d) ", id)
				id++
			}
			generated = append(generated, name+"Size", name+"Align", name+"TypeID", name+"Fingerprint")
		}
		if rng.IntN(5) == 0 {
			a := []int{8, 16, 32, 64}[rng.IntN(4)]
			if a >= align {
				attrs += fmt.Sprintf("@align(%d) ", a)
				align = a
			}
		}
		if attrs != "" {
			b.WriteString(strings.TrimSpace(attrs) + "\n")
		}
		kind := "struct"
		if isMsg {
			kind = "message"
		}
		fmt.Fprintf(&b, "%s %s {\n%s\n}\n\n", kind, name, strings.Join(fields, "\n"))
		size = (size + align - 1) / align * align
		if size < 4096 {
			types = append(types, typeInfo{name, align, size})
		}
	}
	return b.String()
}
