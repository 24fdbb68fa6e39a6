// Command tsch-random writes seeded random valid schemas, for the Python and
// C++ oracle tests that live outside Go:
//
//	go run ./schema/schematest/tsch-random -seed 1 -n 200 -out DIR
//
// writes DIR/rnd_0000.tsch ... DIR/rnd_0199.tsch (package rnd_0000, ...) and
// the corner cases, DIR/corners.tsch (package corners).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/tachyon-io/tachyon/schema/schematest"
)

func main() {
	seed := flag.Uint64("seed", 1, "random seed")
	n := flag.Int("n", 200, "number of schemas")
	out := flag.String("out", "", "output directory (required)")
	flag.Parse()
	if *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "tsch-random:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*out, schematest.CornersFile), []byte(schematest.Corners), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "tsch-random:", err)
		os.Exit(1)
	}
	for i := range *n {
		rng := rand.New(rand.NewPCG(*seed, uint64(i)))
		name := fmt.Sprintf("rnd_%04d", i)
		src := schematest.Random(rng, schematest.Options{Package: name})
		if err := os.WriteFile(filepath.Join(*out, name+".tsch"), []byte(src), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "tsch-random:", err)
			os.Exit(1)
		}
	}
}
