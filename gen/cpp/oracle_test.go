package gencpp_test

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
	"time"

	"github.com/stretchr/testify/require"

	gencpp "github.com/tachyon-io/tachyon/gen/cpp"
	gengo "github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/schema"
	"github.com/tachyon-io/tachyon/schema/schematest"
)

// cxxFlags are the warnings every generated header must compile cleanly
// under: the contract's set, plus the stricter ones careful users enable.
var cxxFlags = []string{
	"-Wall", "-Wextra", "-Wpedantic", "-Werror",
	"-Wshadow", "-Wconversion", "-Wsign-conversion", "-Wold-style-cast",
}

// compilerConfigs are the C++ compilers and standards the headers must
// support.
var compilerConfigs = []struct{ cxx, std string }{
	{"g++", "c++17"}, {"g++", "c++20"}, {"clang++", "c++17"}, {"clang++", "c++20"},
}

// TestRandomSchemasAgainstCompilers is the C++ backend's oracle. Over the
// examples and 200 random schemas (40 with -short), all included in one
// translation unit, it checks:
//   - the headers compile warning-free on g++ and clang++, C++17 and C++20
//     (their static_asserts hold);
//   - the size, alignment and offsetof of every field that each compiled
//     program reports equal the layout model;
//   - a plain C struct per struct, with no explicit padding and
//     __attribute__((aligned(N))) for @align, compiled by gcc, has the
//     model's layout too: the independent oracle for the layout rules;
//   - bytes written by the C++ structs decode field for field with the Go
//     backend's UnmarshalBinary (and re-encode to the same bytes), and bytes
//     written by Go's MarshalBinary read field for field in C++.
func TestRandomSchemasAgainstCompilers(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	configs := compilerConfigs
	for _, c := range []string{"gcc", "g++", "clang++"} {
		if _, err := exec.LookPath(c); err != nil {
			if !testing.Short() {
				t.Fatalf("%s not found: install it (Debian: apt-get install g++ clang) or run with -short", c)
			}
			t.Logf("%s not found: skipping it (-short)", c)
			var kept = configs[:0:0]
			for _, cfg := range configs {
				if cfg.cxx != c {
					kept = append(kept, cfg)
				}
			}
			configs = kept
		}
	}

	dir := t.TempDir()
	if keep := os.Getenv("TACHYON_CPP_ORACLE_DIR"); keep != "" {
		dir = keep // keep the generated programs, to debug a failure
	}
	var files []*schema.File
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	files = append(files, s.All...)
	corners, err := schema.LoadSource(schematest.CornersFile, []byte(schematest.Corners))
	require.NoError(t, err)
	files = append(files, corners.Files[0])
	for i := range n {
		pkg := fmt.Sprintf("rnd%03d", i)
		src := schematest.Random(rand.New(rand.NewPCG(uint64(i), 11)), schematest.Options{Package: pkg})
		s, err := schema.LoadSource(pkg+".tsch", []byte(src))
		require.NoError(t, err, src)
		files = append(files, s.Files[0])
	}
	for _, f := range files {
		hdr, err := gencpp.Generate(f)
		require.NoError(t, err)
		writeFile(t, filepath.Join(dir, "include", gencpp.FileName(f)), hdr)
		code, err := gengo.Generate(f)
		require.NoError(t, err)
		writeFile(t, filepath.Join(dir, "gomod", f.Package, gengo.FileName(f)), code)
	}
	writeFile(t, filepath.Join(dir, "oracle.cpp"), []byte(cppOracle(files)))
	writeFile(t, filepath.Join(dir, "oracle.c"), []byte(schematest.COracle(files)))
	writeFile(t, filepath.Join(dir, "gomod", "go.mod"), []byte("module oracle\n\ngo 1.26\n"))
	writeFile(t, filepath.Join(dir, "gomod", "main.go"), []byte(goOracle(files)))
	want := schematest.ModelLayout(files)

	// Build every program concurrently: the compilers dominate the run time.
	type build struct {
		name string
		cmd  *exec.Cmd
		err  error
		out  []byte
		took time.Duration
	}
	var builds []*build
	for _, cfg := range configs {
		args := append([]string{"-std=" + cfg.std, "-O0", "-I", "include"}, cxxFlags...)
		args = append(args, "oracle.cpp", "-o", cfg.cxx+"-"+cfg.std)
		builds = append(builds, &build{name: cfg.cxx + " -std=" + cfg.std, cmd: exec.Command(cfg.cxx, args...)})
	}
	builds = append(builds,
		&build{name: "gcc (plain C structs)", cmd: exec.Command("gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "oracle.c", "-o", "c-oracle")},
		&build{name: "go (gen/go)", cmd: exec.Command("go", "build", "-o", "../go-oracle", ".")})
	var wg sync.WaitGroup
	for _, b := range builds {
		b.cmd.Dir = dir
		if strings.HasPrefix(b.name, "go ") {
			b.cmd.Dir = filepath.Join(dir, "gomod")
			b.cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		}
		wg.Go(func() {
			start := time.Now()
			b.out, b.err = b.cmd.CombinedOutput()
			b.took = time.Since(start)
		})
	}
	wg.Wait()
	for _, b := range builds {
		require.NoError(t, b.err, "%s: %s", b.name, b.out)
		t.Logf("built with %s in %v", b.name, b.took.Round(time.Millisecond))
	}

	run := func(prog string, args ...string) string {
		cmd := exec.Command(filepath.Join(dir, prog), args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s %v: %s", prog, args, stderr.String())
		return string(out)
	}

	t.Run("c-struct-layout", func(t *testing.T) {
		require.Equal(t, want, run("c-oracle"), "gcc's natural layout of the plain C structs differs from the model")
	})
	for _, cfg := range configs {
		prog := cfg.cxx + "-" + cfg.std
		t.Run(prog, func(t *testing.T) {
			require.Equal(t, want, run(prog, "layout"), "compiled C++ layout differs from the model")
		})
	}

	t.Run("cpp-to-go", func(t *testing.T) {
		wrote := run(configs[0].cxx+"-"+configs[0].std, "write", "cpp.bin")
		require.Equal(t, wrote, run("go-oracle", "read", "cpp.bin"), "Go decodes different values from the bytes C++ wrote")
		for _, cfg := range configs[1:] {
			require.Equal(t, wrote, run(cfg.cxx+"-"+cfg.std, "write", cfg.cxx+cfg.std+".bin"), "%s writes different values", cfg)
			written, err := os.ReadFile(filepath.Join(dir, cfg.cxx+cfg.std+".bin"))
			require.NoError(t, err)
			first, err := os.ReadFile(filepath.Join(dir, "cpp.bin"))
			require.NoError(t, err)
			require.True(t, bytes.Equal(first, written), "%s writes different bytes", cfg)
		}
	})
	t.Run("go-to-cpp", func(t *testing.T) {
		wrote := run("go-oracle", "write", "go.bin")
		for _, cfg := range configs {
			require.Equal(t, wrote, run(cfg.cxx+"-"+cfg.std, "read", "go.bin"), "%s reads different values from the bytes Go wrote", cfg)
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o644))
}
