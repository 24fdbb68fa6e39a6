package schema_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

func TestFormatGolden(t *testing.T) {
	src := `// header comment

package  p ;   // trailing on package
import "../examples/common.tsch";
/// Doc of N.
const N : u32=4;
/* block
   comment */
@id(1)   @align( 16 )
message M{ a:u8; // trailing a

   /// doc of b
   @deprecated b : [N][2]Side ;
  // dangling at the end
}
enum E:i8{X=-1;Y=0x2;}
// file trailer
`
	got, err := schema.Format("x.tsch", []byte(src))
	require.NoError(t, err)
	want := `// header comment

package p; // trailing on package

import "../examples/common.tsch";

/// Doc of N.
const N: u32 = 4;

/* block
   comment */
@id(1) @align(16)
message M {
    a: u8; // trailing a

    /// doc of b
    @deprecated
    b: [N][2]Side;
    // dangling at the end
}

enum E: i8 {
    X = -1;
    Y = 0x2;
}
// file trailer
`
	assert.Equal(t, want, string(got))
	again, err := schema.Format("x.tsch", got)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(again), "formatting is idempotent")
}

// TestFormatPreservesLayout formats the examples and random schemas and
// checks that the result is a fixed point with identical layouts and
// fingerprints, and that no comment is lost.
func TestFormatPreservesLayout(t *testing.T) {
	inputs := map[string][]byte{}
	examples, _ := filepath.Glob("../examples/*.tsch")
	for _, p := range examples {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		inputs[p] = data
	}
	for i := range 50 {
		inputs[fmt.Sprintf("rnd%d.tsch", i)] = []byte(schematest.Random(rand.New(rand.NewPCG(uint64(i), 5)), schematest.Options{}))
	}
	for name, src := range inputs {
		out, err := schema.Format(name, src)
		require.NoError(t, err, name)
		again, err := schema.Format(name, out)
		require.NoError(t, err)
		require.Equal(t, string(out), string(again), "%s: not idempotent", name)
		assert.Equal(t, strings.Count(string(src), "//")+strings.Count(string(src), "/*"),
			strings.Count(string(out), "//")+strings.Count(string(out), "/*"), "%s: comments lost", name)

		dir := filepath.Dir(name)
		before, err := schema.LoadSource(name, src)
		require.NoError(t, err)
		after, err := schema.LoadSource(filepath.Join(dir, "formatted_"+filepath.Base(name)), out)
		require.NoError(t, err, "%s\n%s", name, out)
		b, a := before.Files[0].Structs, after.Files[0].Structs
		require.Len(t, a, len(b))
		for i := range b {
			assert.Equal(t, b[i].Fingerprint, a[i].Fingerprint, "%s: %s", name, b[i].Name)
			assert.Equal(t, b[i].Fields[0].Doc, a[i].Fields[0].Doc)
		}
	}
}
