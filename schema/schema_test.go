package schema_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./schema -update")
	assert.Equal(t, string(want), string(got), "%s drifted; run go test ./schema -update if intended", path)
}

// TestDiagnostics loads every invalid schema under testdata/errors and
// compares the printed diagnostics (message, source line, caret) with the
// .err file next to it.
func TestDiagnostics(t *testing.T) {
	inputs, err := filepath.Glob("testdata/errors/*.tsch")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(inputs), 20)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".tsch")
		t.Run(name, func(t *testing.T) {
			_, err := schema.Load(in)
			require.Error(t, err)
			var ds schema.Diagnostics
			require.ErrorAs(t, err, &ds)
			var buf bytes.Buffer
			ds.Print(&buf)
			for _, d := range ds {
				assert.Regexp(t, `^[^:]+:\d+:\d+: error: `, d.Error())
			}
			golden(t, strings.TrimSuffix(in, ".tsch")+".err", buf.Bytes())
		})
	}
}

// TestGoldenLayouts locks the layout of every example in golden/, and of
// the corner cases in golden/corners.
func TestGoldenLayouts(t *testing.T) {
	examples, err := filepath.Glob("../examples/*.tsch")
	require.NoError(t, err)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	for _, f := range s.Files {
		golden(t, filepath.Join("../golden", f.Stem()+".layout.json"), schema.NewLayoutDoc(f).MarshalIndent())
	}
	corners, err := schema.Load(filepath.Join("schematest", schematest.CornersFile))
	require.NoError(t, err)
	golden(t, "../golden/corners/corners.layout.json", schema.NewLayoutDoc(corners.Files[0]).MarshalIndent())
}

// TestSeedMessage pins the contract's seed message: 64 bytes at 0/8/16.
func TestSeedMessage(t *testing.T) {
	s, err := schema.Load("../examples/Message.tsch")
	require.NoError(t, err)
	m := s.Files[0].Messages()[0]
	assert.Equal(t, "Message", m.Name)
	assert.Equal(t, "market", s.Files[0].Package)
	assert.Equal(t, uint32(1), m.ID)
	assert.Equal(t, 64, m.Size)
	assert.Equal(t, 8, m.Align)
	var offsets []int
	for _, f := range m.Fields {
		offsets = append(offsets, f.Offset)
	}
	assert.Equal(t, []int{0, 8, 16}, offsets)
	assert.Equal(t, "[48]u8", m.Fields[2].Type.String())
	assert.Equal(t, "message", s.Files[0].Stem())
}

func load(t *testing.T, src string) (*schema.Schema, error) {
	t.Helper()
	return schema.LoadSource(filepath.Join(t.TempDir(), "x.tsch"), []byte(src))
}

func TestLayoutRules(t *testing.T) {
	s, err := load(t, `package p;
struct A { a: u8; b: u64; c: u16; }
@align(32) struct B { a: u8; }
struct C { a: u8; b: B; c: [3]A; d: [2][3]u16; }
`)
	require.NoError(t, err)
	st := s.Files[0].Structs
	a, b, c := st[0], st[1], st[2]
	assert.Equal(t, 24, a.Size)
	assert.Equal(t, []int{0, 8, 16}, []int{a.Fields[0].Offset, a.Fields[1].Offset, a.Fields[2].Offset})
	assert.Equal(t, 32, b.Size)
	assert.Equal(t, 32, b.Align)
	assert.Equal(t, 1, b.NaturalAlign)
	assert.Equal(t, []int{0, 32, 64, 136}, []int{c.Fields[0].Offset, c.Fields[1].Offset, c.Fields[2].Offset, c.Fields[3].Offset})
	assert.Equal(t, 160, c.Size)
	assert.Equal(t, "[2][3]u16", c.Fields[3].Type.String())
	// Slots cover every byte exactly once.
	end := 0
	for _, sl := range c.Slots() {
		assert.Equal(t, end, sl.Offset)
		end += sl.Size
	}
	assert.Equal(t, c.Size, end)
}

func TestContextualKeywordsAndDocs(t *testing.T) {
	s, err := load(t, `package p;
/// A doc
/// on two lines.
@id(1)
message M {
    /// The flags.
    flags: u8;
    message: u8; // a trailing comment is not a doc
    package: u8;
    @deprecated
    struct: u8;
}
`)
	require.NoError(t, err)
	m := s.Files[0].Structs[0]
	assert.Equal(t, schema.Doc{"A doc", "on two lines."}, m.Doc)
	assert.Equal(t, schema.Doc{"The flags."}, m.Fields[0].Doc)
	assert.Empty(t, m.Fields[1].Doc)
	assert.Empty(t, m.Fields[2].Doc)
	assert.True(t, m.Fields[3].Deprecated)
}

func TestFingerprint(t *testing.T) {
	base := "package p;\n@id(1)\nmessage M { a: u32; b: u32; }\n"
	fp := func(src string) uint64 {
		s, err := load(t, src)
		require.NoError(t, err)
		return s.Files[0].Structs[0].Fingerprint
	}
	f0 := fp(base)
	assert.Equal(t, f0, fp("package p;\n// comments and spacing do not matter\n@id(1) message M {a:u32;b:u32;}\n"))
	assert.Equal(t, f0, fp("package p;\n/// docs do not matter\n@id(1)\nmessage M { @deprecated a: u32; b: u32; }\n"))
	for name, src := range map[string]string{
		"reordered":  "package p;\n@id(1)\nmessage M { b: u32; a: u32; }\n",
		"renamed":    "package p;\n@id(1)\nmessage M { a: u32; c: u32; }\n",
		"retyped":    "package p;\n@id(1)\nmessage M { a: u32; b: i32; }\n",
		"new id":     "package p;\n@id(2)\nmessage M { a: u32; b: u32; }\n",
		"package":    "package q;\n@id(1)\nmessage M { a: u32; b: u32; }\n",
		"aligned":    "package p;\n@id(1) @align(16)\nmessage M { a: u32; b: u32; }\n",
		"field more": "package p;\n@id(1)\nmessage M { a: u32; b: u32; c: u8; }\n",
	} {
		assert.NotEqual(t, f0, fp(src), name)
	}
	// A change deep inside a nested struct changes the outer fingerprint.
	nested := func(t2 string) uint64 {
		return fp("package p;\nstruct L { x: " + t2 + "; }\n@id(1)\nmessage M { l: [2]L; }\n")
	}
	assert.NotEqual(t, nested("u32"), nested("i32"))
}

func TestCompare(t *testing.T) {
	doc := func(src string) *schema.LayoutDoc {
		s, err := load(t, src)
		require.NoError(t, err)
		return schema.NewLayoutDoc(s.Files[0])
	}
	old := doc("package p;\nenum E: u8 { A = 1; }\n@id(1)\nmessage M { a: u32; b: u32; }\n")
	assert.Empty(t, schema.Compare(old, old))

	changes := schema.Compare(old, doc("package p;\nenum E: u8 { A = 1; B = 2; }\n@id(1)\nmessage M { a: u32; b: u32; }\n@id(2)\nmessage N { x: u8; }\n"))
	require.Len(t, changes, 2)
	for _, c := range changes {
		assert.False(t, c.Breaking, c.String())
	}
	changes = schema.Compare(old, doc("package p;\nenum E: u8 { A = 1; }\n@id(1)\nmessage M { b: u32; a: u32; }\n"))
	var breaking []string
	for _, c := range changes {
		if c.Breaking {
			breaking = append(breaking, c.What)
		}
	}
	assert.Contains(t, breaking, "message M: field a moved from offset 0 to 4")
}

// TestPathologicalInputs: huge or deeply nested inputs fail fast with a
// diagnostic, never a panic or a stack overflow.
func TestPathologicalInputs(t *testing.T) {
	cases := map[string]string{
		"10MB line":        "package p;\nstruct A { x: u8; }" + strings.Repeat(" ", 10<<20) + "@",
		"10k nested array": "package p;\nstruct A { x: " + strings.Repeat("[1]", 10000) + "u8; }\n",
		"deep bad nesting": "package p;\nstruct A { x: " + strings.Repeat("[", 100000) + "\n",
		"binary garbage":   "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00",
		"empty":            "",
		"only package":     "package p;",
		"huge literal":     "package p;\nstruct A { x: [" + strings.Repeat("9", 5000) + "]u8; }\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, src)
			if name == "10k nested array" || name == "only package" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var ds schema.Diagnostics
			require.ErrorAs(t, err, &ds)
			var buf bytes.Buffer
			ds.Print(&buf)
			assert.Less(t, buf.Len(), 4096, "diagnostics stay readable: %s", buf.String()[:min(buf.Len(), 300)])
		})
	}
	// A million fields lay out in well under a second.
	var b strings.Builder
	b.WriteString("package p;\nstruct A {\n")
	for i := range 200000 {
		b.WriteString("    f")
		b.WriteString(strings.Repeat("x", i%3))
		b.WriteString(itoa(i))
		b.WriteString(": u8;\n")
	}
	b.WriteString("}\n")
	s, err := load(t, b.String())
	require.NoError(t, err)
	assert.Equal(t, 200000, s.Files[0].Structs[0].Size)
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestFingerprintSpec pins docs/FINGERPRINT.md: the canonical text of the
// seed message and its hash (checkable with `sha256sum | cut -c1-16`).
func TestFingerprintSpec(t *testing.T) {
	s, err := schema.Load("../examples/Message.tsch")
	require.NoError(t, err)
	m := s.Files[0].Structs[0]
	assert.Equal(t, "tachyon-layout/1\n"+
		"message market.Message id=1 size=64 align=8\n"+
		"field seq u64 offset=0 size=8\n"+
		"field timestamp_ns u64 offset=8 size=8\n"+
		"field payload [48]u8 offset=16 size=48\n", m.Canonical)
	assert.Equal(t, uint64(0x1b43e6c9e14a376c), m.Fingerprint)

	s, err = schema.Load("../examples/book.tsch")
	require.NoError(t, err)
	for _, st := range s.Files[0].Structs {
		if st.Name == "Tape" {
			// Nested types follow the root once each, breadth first.
			assert.Contains(t, st.Canonical, "field trades [4]market.Trade offset=8 size=64\n")
			assert.Contains(t, st.Canonical, "\nstruct market.Book size=192 align=64\n")
			assert.Contains(t, st.Canonical, "\nenum market.Side u8\n")
			assert.Equal(t, 1, strings.Count(st.Canonical, "struct market.Level "))
		}
	}
}
