package schematest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
)

// TestRandomSchemasAreValid guards the generator itself: every schema it
// draws must compile, or the oracle tests would be testing nothing.
func TestRandomSchemasAreValid(t *testing.T) {
	for seed := range uint64(300) {
		src := Random(rand.New(rand.NewPCG(seed, 1)), Options{})
		s, err := schema.LoadSource(fmt.Sprintf("rnd%d.tsch", seed), []byte(src))
		require.NoError(t, err, "seed %d:\n%s", seed, src)
		require.NotEmpty(t, s.Files[0].Messages())
	}
}
