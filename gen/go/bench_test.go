package gengo_test

import (
	"fmt"
	"strings"
	"testing"

	gengo "github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/schema"
)

// bigSchema returns a schema with n messages of mixed fields.
func bigSchema(n int) []byte {
	var b strings.Builder
	b.WriteString("package big;\n\nenum Side: u8 { BID = 1; ASK = 2; }\nstruct Level { price: i64; qty: u32; side: Side; }\n\n")
	for i := range n {
		fmt.Fprintf(&b, "/// Message %d.\n@id(%d)\nmessage M%d {\n    seq: u64;\n    ts: u64;\n    levels: [4]Level;\n    venue: [8]char;\n    heat: [2][3]f32;\n    flag: bool;\n}\n\n", i, i+1, i)
	}
	return []byte(b.String())
}

// BenchmarkGenerate parses, lays out and generates the Go of a 1 000-message
// schema (target: well under 0.5 s per op).
func BenchmarkGenerate(b *testing.B) {
	src := bigSchema(1000)
	for b.Loop() {
		s, err := schema.LoadSource("big.tsch", src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := gengo.Generate(s.Files[0]); err != nil {
			b.Fatal(err)
		}
	}
}
