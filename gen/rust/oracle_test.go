package genrust_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	gengo "github.com/tachyon-io/tachyon/gen/go"
	genrust "github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

// oracleFiles are the schemas of the oracle: the examples, the Rust corners
// of testdata/hostile.tsch (keywords, names of what generated code uses,
// extreme values and ids, one-byte and single-field messages, @align(4096),
// the 1 MiB limit, nested arrays of structs), every backend's corners
// (schematest.Corners) and n random schemas.
func oracleFiles(t *testing.T, n int) []*schema.File {
	t.Helper()
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	s, err := schema.Load(append(examples, "testdata/hostile.tsch")...)
	require.NoError(t, err)
	files := append([]*schema.File(nil), s.All...)
	corners, err := schema.LoadSource(schematest.CornersFile, []byte(schematest.Corners))
	require.NoError(t, err)
	files = append(files, corners.Files[0])
	for i := range n {
		pkg := fmt.Sprintf("rnd%03d", i)
		src := schematest.Random(rand.New(rand.NewPCG(uint64(i), 13)), schematest.Options{Package: pkg})
		s, err := schema.LoadSource(pkg+".tsch", []byte(src))
		require.NoError(t, err, src)
		files = append(files, s.Files[0])
	}
	return files
}

// TestRandomSchemasAgainstRustc is the Rust backend's oracle. Over the
// examples, testdata/hostile.tsch, schematest.Corners and 200 random schemas (40 with -short),
// all modules of one crate built by one cargo run, it checks:
//   - the modules compile warning-free (their const asserts hold) and are
//     rustfmt's output;
//   - rustc's size_of, align_of and offset_of! of every struct and field,
//     printed by the compiled program, equal the layout model, and equal
//     gcc's layout of the same structs written as plain C (both listings
//     are compared line by line and every difference is reported);
//   - every message's tachyon_ring::Message constants are the model's;
//   - byte identity with Go: the same values, drawn alike in both
//     languages, encode to the same bytes with Rust's as_bytes and Go's
//     MarshalBinary, and each side decodes the other's bytes to the same
//     values (Rust also through a zero-copy view).
func TestRandomSchemasAgainstRustc(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	gcc, err := exec.LookPath("gcc")
	require.NoError(t, err, "gcc is required for the layout oracle (Debian: apt-get install gcc)")
	files := oracleFiles(t, n)

	c := newCrate(t, "tachyon-rust-oracle", "2021", ", default-features = false", "Cargo.lock")
	// Debug info would cost a fifth of the build and is not looked at; an
	// incremental cache of a crate built once is pure overhead.
	c.write("Cargo.toml", c.read("Cargo.toml")+"\n[profile.dev]\ndebug = false\nincremental = false\n")
	var sources []string
	for _, f := range files {
		src, err := genrust.Generate(f)
		require.NoError(t, err)
		c.write(filepath.Join("src", genrust.FileName(f)), string(src))
		sources = append(sources, filepath.Join(c.dir, "src", genrust.FileName(f)))
	}
	c.write("src/main.rs", rustOracle(files))

	dir := t.TempDir()
	for _, f := range files {
		src, err := gengo.Generate(f)
		require.NoError(t, err)
		writeFile(t, filepath.Join(dir, "gomod", f.Package, gengo.FileName(f)), src)
	}
	writeFile(t, filepath.Join(dir, "gomod", "go.mod"), []byte("module oracle\n\ngo 1.26\n"))
	writeFile(t, filepath.Join(dir, "gomod", "main.go"), []byte(goOracle(files)))
	writeFile(t, filepath.Join(dir, "oracle.c"), []byte(schematest.COracle(files)))

	// The three builds run at once: cargo dominates.
	goBuild := exec.Command("go", "build", "-o", "../go-oracle", ".")
	goBuild.Dir = filepath.Join(dir, "gomod")
	goBuild.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	cBuild := exec.Command(gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "oracle.c", "-o", "c-oracle")
	cBuild.Dir = dir
	var wg sync.WaitGroup
	var goOut, cOut []byte
	var goErr, cErr error
	wg.Go(func() { goOut, goErr = goBuild.CombinedOutput() })
	wg.Go(func() { cOut, cErr = cBuild.CombinedOutput() })
	cargoOut, cargoErr := c.cargo(nil, "build", "--quiet")
	wg.Wait()
	require.NoError(t, cargoErr, "cargo build of the generated modules:\n%s", cargoOut)
	require.NoError(t, goErr, "go build: %s", goOut)
	require.NoError(t, cErr, "gcc: %s", cOut)
	rustExe := filepath.Join(repoRoot(t), "build", "cargo", "debug", "tachyon-rust-oracle")

	run := func(exe string, args ...string) string {
		cmd := exec.Command(exe, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s %v: %s", filepath.Base(exe), args, stderr.String())
		return string(out)
	}

	t.Run("rustfmt", func(t *testing.T) {
		rustfmt := lookTool(t, "rustfmt")
		for _, edition := range []string{"2021", "2024"} {
			out, err := exec.Command(rustfmt, append([]string{"--check", "--edition", edition}, sources...)...).CombinedOutput()
			require.NoError(t, err, "generated modules are not rustfmt-formatted (edition %s):\n%s", edition, out)
		}
	})
	model := schematest.ModelLayout(files)
	rustLayout := run(rustExe, "layout")
	gccLayout := run(filepath.Join(dir, "c-oracle"))
	t.Run("rustc-vs-gcc", func(t *testing.T) {
		requireSameLines(t, "gcc offsetof", gccLayout, "rustc offset_of!", strings.TrimSuffix(rustLayout, messageIdentities(files)))
	})
	t.Run("rustc-vs-model", func(t *testing.T) {
		requireSameLines(t, "layout model", model+messageIdentities(files), "rustc", rustLayout)
	})
	t.Run("gcc-vs-model", func(t *testing.T) {
		requireSameLines(t, "layout model", model, "gcc", gccLayout)
	})

	goExe := filepath.Join(dir, "go-oracle")
	goWrote := run(goExe, "write", "go.bin")
	rustWrote := run(rustExe, "write", "rust.bin")
	t.Run("same-bytes", func(t *testing.T) {
		requireSameLines(t, "Go's values", goWrote, "Rust's values", rustWrote)
		goBytes, err := os.ReadFile(filepath.Join(dir, "go.bin"))
		require.NoError(t, err)
		rustBytes, err := os.ReadFile(filepath.Join(dir, "rust.bin"))
		require.NoError(t, err)
		require.Equal(t, len(goBytes), len(rustBytes))
		if i := firstDiff(goBytes, rustBytes); i >= 0 {
			t.Fatalf("Rust's as_bytes and Go's MarshalBinary differ first at byte %d of %d: Go %#02x, Rust %#02x", i, len(goBytes), goBytes[i], rustBytes[i])
		}
	})
	t.Run("go-to-rust", func(t *testing.T) {
		requireSameLines(t, "Go wrote", goWrote, "Rust read", run(rustExe, "read", "go.bin"))
	})
	t.Run("rust-to-go", func(t *testing.T) {
		requireSameLines(t, "Rust wrote", rustWrote, "Go read", run(goExe, "read", "rust.bin"))
	})
}

// requireSameLines compares two listings line by line and reports the first
// differences, each with both values.
func requireSameLines(t *testing.T, wantName, want, gotName, got string) {
	t.Helper()
	if want == got {
		return
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var diffs []string
	for i := 0; i < max(len(w), len(g)) && len(diffs) < 20; i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			diffs = append(diffs, fmt.Sprintf("line %d:\n  %s: %.200s\n  %s: %.200s", i+1, wantName, a, gotName, b))
		}
	}
	t.Fatalf("%s and %s differ (%d and %d lines):\n%s", wantName, gotName, len(w), len(g), strings.Join(diffs, "\n"))
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o644))
}
