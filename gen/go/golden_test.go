package gengo_test

import (
	"flag"
	"go/format"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	gengo "github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden regenerates the Go code of every example and compares it with
// golden/go. Run `go test ./gen/go -update` to accept a change.
func TestGolden(t *testing.T) {
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	for _, f := range s.All {
		t.Run(f.Stem(), func(t *testing.T) {
			got, err := gengo.Generate(f)
			require.NoError(t, err)
			formatted, err := format.Source(got)
			require.NoError(t, err)
			require.Equal(t, string(formatted), string(got), "output must be gofmt'd")

			path := filepath.Join("../../golden/go", gengo.FileName(f))
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "missing golden; run go test ./gen/go -update")
			require.Equal(t, string(want), string(got), "generated Go drifted from %s; run go test ./gen/go -update if intended", path)

			// The go generate example checks its output in too: it must be fresh.
			checkedIn, err := os.ReadFile(filepath.Join("../../examples/market", gengo.FileName(f)))
			require.NoError(t, err)
			require.Equal(t, string(got), string(checkedIn), "examples/market is stale: run go generate ./examples/market")

			again, err := gengo.Generate(f)
			require.NoError(t, err)
			require.Equal(t, got, again, "output must be deterministic")
		})
	}
}
