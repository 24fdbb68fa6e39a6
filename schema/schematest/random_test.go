package schematest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// TestRandomSchemasReachTheCorners guards the draws the oracles rely on:
// over the seeds the tests use, each corner shape occurs.
func TestRandomSchemasReachTheCorners(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(300) {
		src := Random(rand.New(rand.NewPCG(seed, 1)), Options{})
		s, err := schema.LoadSource("rnd.tsch", []byte(src))
		require.NoError(t, err)
		f := s.Files[0]
		for _, e := range f.Enums {
			lo, hi := e.Underlying.Range()
			for _, m := range e.Members {
				if m.Value.Cmp(lo) == 0 && lo.Sign() < 0 || m.Value.Cmp(hi) == 0 {
					seen["extreme enum value"]++
				}
			}
		}
		for _, st := range f.Structs {
			oneByte := true
			for _, fld := range st.Fields {
				oneByte = oneByte && fld.Type.Innermost().Size == 1
			}
			if oneByte {
				seen["one-byte fields only"]++
			}
			if len(st.Fields) == 1 {
				seen["single field"]++
			}
			if st.ID == 4294967295 {
				seen["largest type id"]++
			}
			if st.Size > schema.MaxMessageSize-64 {
				seen["near the size limit"]++
			}
			if slices.Contains(hostileTypeNames, st.Name) || strings.HasSuffix(st.Name, "Size") || strings.Contains(st.Name, "V") {
				seen["name of a generated declaration"]++
			}
		}
	}
	for _, corner := range []string{"extreme enum value", "one-byte fields only", "single field", "largest type id", "near the size limit", "name of a generated declaration"} {
		require.Positive(t, seen[corner], "no random schema has: %s", corner)
	}
	t.Log(seen)
}
