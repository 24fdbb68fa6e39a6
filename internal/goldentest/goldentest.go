// Package goldentest is the golden-file test every backend runs: generate
// each example, compare it with its locked copy under golden/, and check
// that generating twice gives the same bytes. `go test ./gen/... -update`
// rewrites the golden files.
package goldentest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Backend is what a backend's golden test needs of it.
type Backend struct {
	Lang     string // "Go", "Python", "C++": for messages
	Dir      string // the golden directory, relative to the test's package
	Generate func(*schema.File) ([]byte, error)
	FileName func(*schema.File) string
	// Check, if set, runs extra checks on each file's output.
	Check func(t *testing.T, f *schema.File, got []byte)
}

// Run checks every example in ../../examples against b's golden files in
// b.Dir, and the corner-case schema (schematest.CornersFile) against
// golden/corners/<base of b.Dir>.
func Run(t *testing.T, b Backend) {
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	corners, err := schema.Load(filepath.Join("../../schema/schematest", schematest.CornersFile))
	require.NoError(t, err)
	cornersDir := filepath.Join(filepath.Dir(b.Dir), "corners", filepath.Base(b.Dir))
	for _, set := range []struct {
		dir   string
		files []*schema.File
	}{{b.Dir, s.All}, {cornersDir, corners.All}} {
		run(t, b, set.dir, set.files)
	}
}

func run(t *testing.T, b Backend, dir string, files []*schema.File) {
	for _, f := range files {
		t.Run(f.Stem(), func(t *testing.T) {
			got, err := b.Generate(f)
			require.NoError(t, err)
			path := filepath.Join(dir, b.FileName(f))
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "missing golden %s; run go test ./gen/... -run Golden -update", path)
			require.Equal(t, string(want), string(got), "generated %s drifted from %s; run go test ./gen/... -run Golden -update if intended", b.Lang, path)
			if b.Check != nil {
				b.Check(t, f, got)
			}
			again, err := b.Generate(f)
			require.NoError(t, err)
			require.Equal(t, got, again, "output must be deterministic")
		})
	}
}
