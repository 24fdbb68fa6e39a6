package gengo_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	gengo "github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

// TestRandomSchemasCompileAndRoundTrip generates Go for many random schemas
// into one throwaway module, then compiles and runs a program that checks,
// for every struct and message:
//   - the Go compiler's field offsets, size and alignment (reflect) equal the
//     layout model (the compile-time assertions must agree too, or the
//     program does not build);
//   - MarshalBinary of a randomly filled value equals the raw bytes of the
//     value in memory (little-endian host), and UnmarshalBinary of those
//     bytes gives the value back;
//   - the zero-copy FromBytes view reads the same value.
func TestRandomSchemasCompileAndRoundTrip(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module oracle\n\ngo 1.26\n"), 0o644))

	var imports, checks strings.Builder
	corners, err := schema.LoadSource(schematest.CornersFile, []byte(schematest.Corners))
	require.NoError(t, err)
	files := []*schema.File{corners.Files[0]}
	for i := range n {
		pkg := fmt.Sprintf("rnd%03d", i)
		src := schematest.Random(rand.New(rand.NewPCG(uint64(i), 7)), schematest.Options{Package: pkg})
		s, err := schema.LoadSource(pkg+".tsch", []byte(src))
		require.NoError(t, err, src)
		files = append(files, s.Files[0])
	}
	for _, f := range files {
		pkg := f.Package
		code, err := gengo.Generate(f)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, pkg), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, pkg, gengo.FileName(f)), code, 0o644))
		fmt.Fprintf(&imports, "\t%q\n", "oracle/"+pkg)
		for _, st := range f.Structs {
			fmt.Fprintf(&checks, "\tcheck[%s.%s](%q, %d, %d, %d, %s, %s.%sFromBytes)\n",
				pkg, st.Name, pkg+"."+st.Name, st.Size, st.NaturalAlign, st.Align, offsetsLiteral(st), pkg, st.Name)
		}
	}
	main := strings.NewReplacer("//IMPORTS\n", imports.String(), "\t//CHECKS\n", checks.String(), "NSCHEMAS", fmt.Sprint(len(files))).Replace(oracleMain)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644))

	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), fmt.Sprintf("checked %d schemas", len(files)))
}

// offsetsLiteral renders the model's named-field offsets as a Go map literal.
func offsetsLiteral(s *schema.Struct) string {
	var parts []string
	for _, f := range s.Fields {
		parts = append(parts, fmt.Sprintf("%d", f.Offset))
	}
	return "[]uintptr{" + strings.Join(parts, ", ") + "}"
}

const oracleMain = `package main

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"unsafe"

//IMPORTS
)

var rng = rand.New(rand.NewPCG(1, 2))

type message interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

func fail(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
	os.Exit(1)
}

// fill sets every exported field of v to a random value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i))
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.Uint64()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64())
	case reflect.Float32, reflect.Float64:
		v.SetFloat(math.Float64frombits(rng.Uint64()>>2) * float64(rng.IntN(3)-1))
	}
}

func check[T any, PT interface {
	*T
	message
}](name string, size, align, viewAlign uintptr, offsets []uintptr, view func([]byte) (*T, error)) {
	typ := reflect.TypeFor[T]()
	if typ.Size() != size || typ.Align() != int(align) {
		fail("%s: Go size %d align %d, model size %d align %d", name, typ.Size(), typ.Align(), size, align)
	}
	k := 0
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Name == "_" {
			continue
		}
		if f.Offset != offsets[k] {
			fail("%s.%s: Go offset %d, model %d", name, f.Name, f.Offset, offsets[k])
		}
		k++
	}
	if k != len(offsets) {
		fail("%s: %d Go fields, model has %d", name, k, len(offsets))
	}
	for range 3 {
		var x T
		fill(reflect.ValueOf(&x).Elem())
		wire, err := PT(&x).MarshalBinary()
		if err != nil {
			fail("%s: marshal: %v", name, err)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&x)), size)
		if !bytes.Equal(wire, raw) {
			fail("%s: MarshalBinary differs from the bytes in memory:\n% x\n% x", name, wire, raw)
		}
		var y T
		if err := PT(&y).UnmarshalBinary(wire); err != nil {
			fail("%s: unmarshal: %v", name, err)
		}
		if !reflect.DeepEqual(x, y) {
			fail("%s: round trip changed the value:\n%+v\n%+v", name, x, y)
		}
		buf := make([]byte, size+4096)
		start := (viewAlign - uintptr(unsafe.Pointer(&buf[0]))%viewAlign) % viewAlign
		copy(buf[start:], wire)
		if _, err := view(buf[start+1:]); viewAlign > 1 && err == nil {
			fail("%s: misaligned view accepted", name)
		}
		z, err := view(buf[start:])
		if err != nil {
			fail("%s: view: %v", name, err)
		}
		if !reflect.DeepEqual(x, *z) {
			fail("%s: view reads a different value", name)
		}
		if err := PT(&y).UnmarshalBinary(wire[1:]); err == nil {
			fail("%s: short buffer accepted", name)
		}
	}
}

func main() {
	//CHECKS
	fmt.Println("checked", NSCHEMAS, "schemas")
}
`
