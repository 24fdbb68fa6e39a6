package gengo_test

import (
	"go/format"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	gengo "github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/internal/goldentest"
	"github.com/tachyon-io/tachyon/schema"
)

// TestGolden regenerates the Go code of every example and compares it with
// golden/go (`go test ./gen/... -run Golden -update` accepts a change).
func TestGolden(t *testing.T) {
	goldentest.Run(t, goldentest.Backend{Lang: "Go", Dir: "../../golden/go", Generate: gengo.Generate, FileName: gengo.FileName, Check: checkGo})
}

// checkGo: the output is gofmt'd, and the go generate example's checked-in
// copy is fresh. (golden/corners/go is a package of this module: go vet
// ./... compiles and vets it.)
func checkGo(t *testing.T, f *schema.File, got []byte) {
	formatted, err := format.Source(got)
	require.NoError(t, err)
	require.Equal(t, string(formatted), string(got), "output must be gofmt'd")
	if f.Package != "market" {
		return
	}
	checkedIn, err := os.ReadFile(filepath.Join("../../examples/market", gengo.FileName(f)))
	require.NoError(t, err)
	require.Equal(t, string(got), string(checkedIn), "examples/market is stale: run go generate ./examples/market")
}
