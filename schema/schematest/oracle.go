package schematest

import (
	"fmt"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

// StructsOf lists every struct and message of files, in order.
func StructsOf(files []*schema.File) []*schema.Struct {
	var out []*schema.Struct
	for _, f := range files {
		out = append(out, f.Structs...)
	}
	return out
}

// ModelLayout is what every backend's layout program must print: per struct
// `package.Name size=S align=A`, then per field `package.Name.I offset=O`,
// fields named by their index.
func ModelLayout(files []*schema.File) string {
	var b strings.Builder
	for _, s := range StructsOf(files) {
		fmt.Fprintf(&b, "%s.%s size=%d align=%d\n", s.File.Package, s.Name, s.Size, s.Align)
		for i, f := range s.Fields {
			fmt.Fprintf(&b, "%s.%s.%d offset=%d\n", s.File.Package, s.Name, i, f.Offset)
		}
	}
	return b.String()
}

// COracle renders a C program with one plain struct per schema struct:
// fields in order, named by index, natural C types, no explicit padding,
// __attribute__((aligned(N))) for @align. gcc lays it out by the C ABI
// alone, independently of the layout model; the program prints that layout
// in ModelLayout's format.
func COracle(files []*schema.File) string {
	var b strings.Builder
	b.WriteString("#include <stdalign.h>\n#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n\n")
	structs := StructsOf(files)
	for _, s := range structs {
		attr := ""
		if s.AlignAttr != 0 {
			attr = fmt.Sprintf("__attribute__((aligned(%d))) ", s.AlignAttr)
		}
		fmt.Fprintf(&b, "struct %s%s {\n", attr, cName(s))
		for i, f := range s.Fields {
			dims := ""
			for _, n := range f.Type.Dims() {
				dims += fmt.Sprintf("[%d]", n)
			}
			fmt.Fprintf(&b, "    %s f%d%s;\n", cType(f.Type.Innermost()), i, dims)
		}
		b.WriteString("};\n\n")
	}
	b.WriteString("int main(void) {\n")
	for _, s := range structs {
		name := s.File.Package + "." + s.Name
		fmt.Fprintf(&b, "    printf(\"%s size=%%zu align=%%zu\\n\", sizeof(struct %s), alignof(struct %s));\n", name, cName(s), cName(s))
		for i := range s.Fields {
			fmt.Fprintf(&b, "    printf(\"%s.%d offset=%%zu\\n\", offsetof(struct %s, f%d));\n", name, i, cName(s), i)
		}
	}
	b.WriteString("    return 0;\n}\n")
	return b.String()
}

// GoCodecTable renders the parts of a Go oracle program over the Go
// backend's code, in a module named oracle with one package per schema
// package: the import lines of files' packages, and one table entry per
// struct of structs, {"package.Name", size, func() codec { return
// new(package.Name) }}.
func GoCodecTable(files []*schema.File, structs []*schema.Struct) (imports, entries string) {
	var imp, ent strings.Builder
	seen := map[string]bool{}
	for _, f := range files {
		if !seen[f.Package] {
			seen[f.Package] = true
			fmt.Fprintf(&imp, "\t%q\n", "oracle/"+f.Package)
		}
	}
	for _, s := range structs {
		fmt.Fprintf(&ent, "\t{%q, %d, func() codec { return new(%s.%s) }},\n", s.File.Package+"."+s.Name, s.Size, s.File.Package, s.Name)
	}
	return imp.String(), ent.String()
}

func cName(s *schema.Struct) string { return s.File.Package + "_" + s.Name }

func cType(t *schema.Type) string {
	p := t.Primitive
	switch t.Kind {
	case schema.KindStruct:
		return "struct " + cName(t.Struct)
	case schema.KindEnum:
		p = t.Enum.Underlying
	case schema.KindFlags:
		p = t.Flags.Underlying
	}
	switch p {
	case schema.Bool:
		return "bool"
	case schema.Char:
		return "char"
	case schema.F32:
		return "float"
	case schema.F64:
		return "double"
	}
	signed := map[bool]string{true: "int", false: "uint"}[p.IsSigned()]
	return fmt.Sprintf("%s%d_t", signed, p.Size()*8)
}
