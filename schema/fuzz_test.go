package schema_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tachyon-io/tachyon/schema"
)

// FuzzParse feeds arbitrary bytes to the compiler: it must never panic, never
// take over a second, and every diagnostic must point inside the input.
// `make fuzz` runs it for FUZZTIME.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"../examples/*.tsch", "testdata/errors/*.tsch"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("package p;\n@id(1) message M { a: [2][3]u8; }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		const name = "fuzz.tsch" // never read from disk: LoadSource serves it
		start := time.Now()
		s, err := schema.LoadSource(name, src)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("compiling %d bytes took %v", len(src), d)
		}
		if err == nil {
			if s == nil || len(s.Files) != 1 {
				t.Fatal("no error and no schema")
			}
			return
		}
		ds, ok := err.(schema.Diagnostics)
		if !ok {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, d := range ds {
			if d.Pos.Filename != name {
				// Diagnostics in imported files point into those files.
				continue
			}
			if d.Pos.Offset < 0 || d.Pos.Offset > len(src) || d.Pos.Line < 1 || d.Pos.Column < 1 {
				t.Fatalf("diagnostic outside the input: %v (len %d)", d, len(src))
			}
			if lines := strings.Count(string(src), "\n") + 1; d.Pos.Line > lines {
				t.Fatalf("diagnostic line %d beyond %d lines", d.Pos.Line, lines)
			}
			if !utf8.ValidString(d.Msg) {
				t.Fatalf("diagnostic message is not UTF-8: %q", d.Msg)
			}
		}
	})
}
