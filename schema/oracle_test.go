package schema_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

// TestLayoutMatchesGCC is the independent oracle of the layout rules: for
// random schemas and the corner cases it writes the equivalent plain C structs (natural
// alignment, no explicit padding, __attribute__((aligned)) for @align),
// compiles them with gcc, and compares gcc's sizeof, _Alignof and offsetof
// with the layout model, for every struct, message and field.
func TestLayoutMatchesGCC(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc is required for the layout oracle (apt-get install gcc)")
	}
	n := 200
	if testing.Short() {
		n = 50
	}
	var c bytes.Buffer
	c.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdbool.h>\n\n")
	var main bytes.Buffer
	main.WriteString("int main(void) {\n")
	want := map[string]string{}
	var order []string
	files := []*schema.File{}
	corners, err := schema.LoadSource(schematest.CornersFile, []byte(schematest.Corners))
	require.NoError(t, err)
	files = append(files, corners.Files[0])
	for i := range n {
		pkg := fmt.Sprintf("r%03d", i)
		src := schematest.Random(rand.New(rand.NewPCG(uint64(i), 99)), schematest.Options{Package: pkg})
		s, err := schema.LoadSource(pkg+".tsch", []byte(src))
		require.NoError(t, err)
		files = append(files, s.Files[0])
	}
	for _, f := range files {
		pkg := f.Package
		for _, st := range f.Structs {
			cname := pkg + "_" + st.Name
			c.WriteString(cStruct(pkg, st))
			fmt.Fprintf(&main, "  printf(\"%s %%zu %%zu\\n\", sizeof(struct %s), _Alignof(struct %s));\n", cname, cname, cname)
			want[cname] = fmt.Sprintf("%s %d %d", cname, st.Size, st.Align)
			order = append(order, cname)
			for _, f := range st.Fields {
				key := cname + "." + f.Name
				fmt.Fprintf(&main, "  printf(\"%s %%zu\\n\", offsetof(struct %s, f_%s));\n", key, cname, f.Name)
				want[key] = fmt.Sprintf("%s %d", key, f.Offset)
				order = append(order, key)
			}
		}
	}
	main.WriteString("  return 0;\n}\n")
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "oracle.c")
	require.NoError(t, os.WriteFile(srcPath, append(c.Bytes(), main.Bytes()...), 0o644))
	bin := filepath.Join(dir, "oracle")
	out, err := exec.Command(gcc, "-std=c11", "-Wall", "-Werror", "-o", bin, srcPath).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin).Output()
	require.NoError(t, err)
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, _, _ := strings.Cut(sc.Text(), " ")
		got[key] = sc.Text()
	}
	require.Len(t, got, len(want))
	for _, key := range order {
		require.Equal(t, want[key], got[key], "gcc disagrees with the layout model")
	}
}

// cStruct renders a struct as plain C, leaving every offset to gcc.
func cStruct(pkg string, s *schema.Struct) string {
	var b strings.Builder
	fmt.Fprintf(&b, "struct %s_%s {\n", pkg, s.Name)
	for _, f := range s.Fields {
		dims := ""
		for _, n := range f.Type.Dims() {
			dims += fmt.Sprintf("[%d]", n)
		}
		fmt.Fprintf(&b, "  %s f_%s%s;\n", cType(pkg, f.Type.Innermost()), f.Name, dims)
	}
	b.WriteString("}")
	if s.AlignAttr != 0 {
		fmt.Fprintf(&b, " __attribute__((aligned(%d)))", s.AlignAttr)
	}
	b.WriteString(";\n\n")
	return b.String()
}

func cType(pkg string, t *schema.Type) string {
	p := t.Primitive
	switch t.Kind {
	case schema.KindStruct:
		return "struct " + pkg + "_" + t.Struct.Name
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
	name := p.String()
	if name[0] == 'u' {
		return "uint" + name[1:] + "_t"
	}
	return "int" + name[1:] + "_t"
}
