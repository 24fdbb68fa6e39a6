package gencpp_test

import (
	"testing"

	gencpp "github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/internal/goldentest"
)

// TestGolden regenerates the C++ header of every example and compares it with
// golden/cpp (`go test ./gen/... -run Golden -update` accepts a change).
func TestGolden(t *testing.T) {
	goldentest.Run(t, goldentest.Backend{Lang: "C++", Dir: "../../golden/cpp", Generate: gencpp.Generate, FileName: gencpp.FileName})
}
