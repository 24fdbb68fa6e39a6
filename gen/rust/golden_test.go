package genrust_test

import (
	"testing"

	genrust "github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/internal/goldentest"
)

// TestGolden regenerates the Rust module of every example and compares it
// with golden/rust (`go test ./gen/... -run Golden -update` accepts a change);
// each module must be a rustfmt fixed point.
func TestGolden(t *testing.T) {
	goldentest.Run(t, goldentest.Backend{Lang: "Rust", Dir: "../../golden/rust", Generate: genrust.Generate, FileName: genrust.FileName, Check: checkRustfmt})
}
