package gencpp_test

import (
	"fmt"
	"strings"

	gencpp "github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

// valuesPerType is how many random values of each struct the cross-language
// programs write and read.
const valuesPerType = 3

// maxValueSize bounds the structs whose values the cross-language programs
// exchange: every field value is printed as text, and a message near the
// 1 MiB limit would print millions of lines for what its layout check (which
// covers every struct) already proves.
const maxValueSize = 64 << 10

// valueStructs are the structs of at most maxValueSize bytes.
func valueStructs(structs []*schema.Struct) []*schema.Struct {
	var out []*schema.Struct
	for _, s := range structs {
		if s.Size <= maxValueSize {
			out = append(out, s)
		}
	}
	return out
}

// cppOracle renders the C++ oracle program. Modes:
//
//	layout      print sizeof, alignof and every offsetof (schematest.ModelLayout's format)
//	write FILE  fill valuesPerType random values of every struct, write their
//	            bytes to FILE, print every field value
//	read FILE   read values from FILE in the same order, print every field value
func cppOracle(files []*schema.File) string {
	var b strings.Builder
	b.WriteString(cppPrelude)
	for _, f := range files {
		fmt.Fprintf(&b, "#include %q\n", gencpp.FileName(f))
	}
	b.WriteString("\nnamespace {\n\n")
	b.WriteString(cppLeaves)
	b.WriteString(strings.ReplaceAll(cppArrays, "VALUES_PER_TYPE", fmt.Sprint(valuesPerType)))
	b.WriteString("\n}  // namespace\n")
	// fill and dump of a struct live in the struct's namespace, so that
	// argument-dependent lookup keeps every overload set small: one set
	// across all schemas makes overload resolution quadratic.
	structs, values := schematest.StructsOf(files), valueStructs(schematest.StructsOf(files))
	for _, s := range values {
		fmt.Fprintf(&b, "\nnamespace %s {\nvoid fill(%s& x, Rng& r);\nvoid dump(const %s& x, Out& o);\n}\n", gencpp.Ident(s.File.Package), gencpp.Ident(s.Name), gencpp.Ident(s.Name))
	}
	for _, s := range values {
		fmt.Fprintf(&b, "\nvoid %s::fill(%s& x, Rng& r) {\n", gencpp.Ident(s.File.Package), cppName(s))
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "    fill(x.%s, r);\n", gencpp.Ident(f.Name))
		}
		fmt.Fprintf(&b, "}\n\nvoid %s::dump(const %s& x, Out& o) {\n", gencpp.Ident(s.File.Package), cppName(s))
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "    dump(x.%s, o);\n", gencpp.Ident(f.Name))
		}
		b.WriteString("}\n")
	}
	b.WriteString("\nnamespace {\n")
	b.WriteString("\nvoid layout() {\n")
	for _, s := range structs {
		name := s.File.Package + "." + s.Name
		fmt.Fprintf(&b, "    std::printf(\"%s size=%%zu align=%%zu\\n\", sizeof(%s), alignof(%s));\n", name, cppName(s), cppName(s))
		for i, f := range s.Fields {
			fmt.Fprintf(&b, "    std::printf(\"%s.%d offset=%%zu\\n\", offsetof(%s, %s));\n", name, i, cppName(s), gencpp.Ident(f.Name))
		}
	}
	b.WriteString("}\n\nvoid write_all(std::FILE* out) {\n    Rng r{42};\n")
	for _, s := range values {
		fmt.Fprintf(&b, "    write_values<%s>(\"%s.%s\", out, r);\n", cppName(s), s.File.Package, s.Name)
	}
	b.WriteString("}\n\nbool read_all(std::FILE* in) {\n")
	for _, s := range values {
		fmt.Fprintf(&b, "    if (!read_values<%s>(\"%s.%s\", in)) return false;\n", cppName(s), s.File.Package, s.Name)
	}
	b.WriteString("    return true;\n}\n\n}  // namespace\n")
	b.WriteString(cppMain)
	return b.String()
}

func cppName(s *schema.Struct) string {
	return gencpp.Ident(s.File.Package) + "::" + gencpp.Ident(s.Name)
}

const cppPrelude = `#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <type_traits>

`

// cppLeaves fills and prints scalars. Values are printed as Go's side prints
// them: integers in decimal, char as its byte, floats as their bits (no NaN
// is generated, so the bits survive any conversion).
const cppLeaves = `struct Rng {
    std::uint64_t state;
    std::uint64_t next() noexcept {  // splitmix64
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
};

struct Out {
    std::FILE* file;
};

template <class T>
constexpr bool is_int_v = std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>;

void fill(bool& x, Rng& r) { x = (r.next() & 1u) != 0; }
void fill(char& x, Rng& r) { x = static_cast<char>(r.next()); }
void fill(float& x, Rng& r) { x = static_cast<float>(static_cast<std::int32_t>(r.next() >> 32)) / 64.0f; }
void fill(double& x, Rng& r) { x = static_cast<double>(static_cast<std::int64_t>(r.next())) / 1024.0; }
template <class T>
std::enable_if_t<is_int_v<T>> fill(T& x, Rng& r) { x = static_cast<T>(r.next()); }
template <class E>
std::enable_if_t<std::is_enum_v<E>> fill(E& x, Rng& r) { x = static_cast<E>(static_cast<std::underlying_type_t<E>>(r.next())); }

void dump(bool x, Out& o) { std::fprintf(o.file, "%d\n", x ? 1 : 0); }
void dump(char x, Out& o) { std::fprintf(o.file, "%u\n", static_cast<unsigned>(static_cast<unsigned char>(x))); }
void dump(float x, Out& o) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    std::fprintf(o.file, "f%08x\n", static_cast<unsigned>(u));
}
void dump(double x, Out& o) {
    std::uint64_t u;
    std::memcpy(&u, &x, sizeof u);
    std::fprintf(o.file, "d%016llx\n", static_cast<unsigned long long>(u));
}
template <class T>
std::enable_if_t<is_int_v<T>> dump(T x, Out& o) {
    if constexpr (std::is_signed_v<T>) {
        std::fprintf(o.file, "%lld\n", static_cast<long long>(x));
    } else {
        std::fprintf(o.file, "%llu\n", static_cast<unsigned long long>(x));
    }
}
template <class E>
std::enable_if_t<std::is_enum_v<E>> dump(E x, Out& o) { dump(static_cast<std::underlying_type_t<E>>(x), o); }

`

const cppArrays = `
template <class T, std::size_t N>
void fill(T (&a)[N], Rng& r) {
    for (auto& e : a) fill(e, r);
}
template <class T, std::size_t N>
void dump(const T (&a)[N], Out& o) {
    for (const auto& e : a) dump(e, o);
}

template <class T>
void write_values(const char* name, std::FILE* out, Rng& r) {
    for (int k = 0; k < VALUES_PER_TYPE; ++k) {
        T x{};  // value-initialized: padding is zero
        fill(x, r);
        std::fwrite(&x, sizeof x, 1, out);
        Out o{stdout};
        std::printf("%s\n", name);
        dump(x, o);
    }
}

template <class T>
bool read_values(const char* name, std::FILE* in) {
    for (int k = 0; k < VALUES_PER_TYPE; ++k) {
        unsigned char bytes[sizeof(T)];
        if (std::fread(bytes, sizeof bytes, 1, in) != 1) {
            std::fprintf(stderr, "%s: short read\n", name);
            return false;
        }
        T x;
        std::memcpy(&x, bytes, sizeof x);
        Out o{stdout};
        std::printf("%s\n", name);
        dump(x, o);
    }
    return true;
}
`

const cppMain = `
int main(int argc, char** argv) {
    const std::string_view mode = argc > 1 ? argv[1] : "";
    if (mode == "layout") {
        layout();
        return 0;
    }
    if (argc != 3 || (mode != "write" && mode != "read")) {
        std::fprintf(stderr, "usage: oracle layout | write FILE | read FILE\n");
        return 2;
    }
    std::FILE* file = std::fopen(argv[2], mode == "write" ? "wb" : "rb");
    if (file == nullptr) {
        std::perror(argv[2]);
        return 1;
    }
    bool ok = true;
    if (mode == "write") {
        write_all(file);
    } else {
        ok = read_all(file) && std::fgetc(file) == EOF;
    }
    return std::fclose(file) == 0 && ok ? 0 : 1;
}
`

// goOracle renders the Go half of the cross-language check, over the Go
// backend's code: `write FILE` fills random values and writes their
// MarshalBinary bytes, `read FILE` decodes them with UnmarshalBinary (and
// requires re-encoding to give the same bytes); both print every field value
// in the C++ oracle's format.
func goOracle(files []*schema.File) string {
	imports, entries := schematest.GoCodecTable(files, valueStructs(schematest.StructsOf(files)))
	return strings.NewReplacer("//IMPORTS\n", imports, "\t//ENTRIES\n", entries,
		"VALUES_PER_TYPE", fmt.Sprint(valuesPerType)).Replace(goMain)
}

const goMain = `package main

import (
	"bufio"
	"bytes"
	"encoding"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"

//IMPORTS
)

type codec interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

var types = []struct {
	name string
	size int
	new  func() codec
}{
	//ENTRIES
}

var rng = rand.New(rand.NewPCG(7, 7))

func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name != "_" {
				fill(v.Field(i))
			}
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i))
		}
	case reflect.Bool:
		v.SetBool(rng.Uint64()&1 == 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.Uint64()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64())
	case reflect.Float32:
		v.SetFloat(float64(int32(rng.Uint64()>>32)) / 64)
	case reflect.Float64:
		v.SetFloat(float64(int64(rng.Uint64())) / 1024)
	default:
		panic("unexpected kind " + v.Kind().String())
	}
}

func dump(w io.Writer, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name != "_" {
				dump(w, v.Field(i))
			}
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			dump(w, v.Index(i))
		}
	case reflect.Bool:
		b := 0
		if v.Bool() {
			b = 1
		}
		fmt.Fprintln(w, b)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		fmt.Fprintln(w, v.Int())
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		fmt.Fprintln(w, v.Uint())
	case reflect.Float32:
		fmt.Fprintf(w, "f%08x\n", math.Float32bits(float32(v.Float())))
	case reflect.Float64:
		fmt.Fprintf(w, "d%016x\n", math.Float64bits(v.Float()))
	default:
		panic("unexpected kind " + v.Kind().String())
	}
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "write" && os.Args[1] != "read") {
		fmt.Fprintln(os.Stderr, "usage: oracle write|read FILE")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if os.Args[1] == "write" {
		var file []byte
		for _, t := range types {
			for range VALUES_PER_TYPE {
				x := t.new()
				fill(reflect.ValueOf(x).Elem())
				b, err := x.MarshalBinary()
				if err != nil || len(b) != t.size {
					fmt.Fprintf(os.Stderr, "%s: marshal: %d bytes, %v\n", t.name, len(b), err)
					os.Exit(1)
				}
				file = append(file, b...)
				fmt.Fprintln(out, t.name)
				dump(out, reflect.ValueOf(x).Elem())
			}
		}
		if err := os.WriteFile(os.Args[2], file, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	file, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, t := range types {
		for range VALUES_PER_TYPE {
			if len(file) < t.size {
				fmt.Fprintf(os.Stderr, "%s: short file\n", t.name)
				os.Exit(1)
			}
			wire := file[:t.size]
			file = file[t.size:]
			x := t.new()
			if err := x.UnmarshalBinary(wire); err != nil {
				fmt.Fprintf(os.Stderr, "%s: unmarshal: %v\n", t.name, err)
				os.Exit(1)
			}
			again, _ := x.MarshalBinary()
			if !bytes.Equal(again, wire) {
				fmt.Fprintf(os.Stderr, "%s: re-encoding changed the bytes:\n% x\n% x\n", t.name, wire, again)
				os.Exit(1)
			}
			fmt.Fprintln(out, t.name)
			dump(out, reflect.ValueOf(x).Elem())
		}
	}
	if len(file) != 0 {
		fmt.Fprintf(os.Stderr, "%d bytes left over\n", len(file))
		os.Exit(1)
	}
}
`
