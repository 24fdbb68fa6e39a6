package gencpp_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	gencpp "github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden regenerates the C++ header of every example and compares it
// with golden/cpp. Run `go test ./gen/cpp -run Golden -update` to accept a
// change.
func TestGolden(t *testing.T) {
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	for _, f := range s.All {
		t.Run(f.Stem(), func(t *testing.T) {
			got, err := gencpp.Generate(f)
			require.NoError(t, err)
			path := filepath.Join("../../golden/cpp", gencpp.FileName(f))
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "missing golden; run go test ./gen/cpp -run Golden -update")
			require.Equal(t, string(want), string(got), "generated C++ drifted from %s; run go test ./gen/cpp -run Golden -update if intended", path)

			again, err := gencpp.Generate(f)
			require.NoError(t, err)
			require.Equal(t, got, again, "output must be deterministic")
		})
	}
}
