package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/gen/python"
	"github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/schema"
)

// backend is one output language.
type backend struct {
	name     string
	dir      *string
	fileName func(*schema.File) string
	generate func(*schema.File) ([]byte, error)
}

func runGenerate(env *cliEnv, args []string) int {
	fs := newFlags(env, "generate", `Generate code for every message, struct, enum, flags and constant of the
schema files and of the files they import. Per input X.tsch the outputs are
DIR/x.tsch.go, DIR/x_tsch.py, DIR/x.tsch.hpp and DIR/x_tsch.rs (a Rust module:
mod x_tsch;). Output is deterministic.`)
	var goOut, pyOut, cppOut, rustOut string
	fs.StringVar(&goOut, "go-out", "", "write Go `DIR`/<stem>.tsch.go")
	fs.StringVar(&pyOut, "py-out", "", "write Python `DIR`/<stem>_tsch.py")
	fs.StringVar(&cppOut, "cpp-out", "", "write C++ `DIR`/<stem>.tsch.hpp")
	fs.StringVar(&rustOut, "rust-out", "", "write Rust modules `DIR`/<stem>_tsch.rs")
	files, code, ok := parseFlags(env, fs, args)
	if !ok {
		return code
	}
	backends := []backend{
		{"Go", &goOut, gengo.FileName, gengo.Generate},
		{"Python", &pyOut, genpy.FileName, genpy.Generate},
		{"C++", &cppOut, gencpp.FileName, gencpp.Generate},
		{"Rust", &rustOut, genrust.FileName, genrust.Generate},
	}
	any := false
	for _, b := range backends {
		any = any || *b.dir != ""
	}
	if !any || len(files) == 0 {
		fs.Usage()
		fmt.Fprintln(env.stderr, "\ntachyon-gen generate: need at least one of --go-out, --py-out, --cpp-out, --rust-out and one FILE.tsch")
		return exitUsage
	}
	s, ok := env.load(files)
	if !ok {
		return exitError
	}
	for _, b := range backends {
		if *b.dir == "" {
			continue
		}
		if err := os.MkdirAll(*b.dir, 0o755); err != nil {
			return env.errorf("%s output: %v", b.name, err)
		}
		for _, f := range s.All {
			src, err := b.generate(f)
			if err != nil {
				return env.errorf("%s: %s backend: %v", f.Path, b.name, err)
			}
			path := filepath.Join(*b.dir, b.fileName(f))
			if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, src) {
				continue // unchanged: keep the timestamp, so builds stay incremental
			}
			if err := os.WriteFile(path, src, 0o644); err != nil {
				return env.errorf("%s output: %v", b.name, err)
			}
		}
	}
	return exitOK
}
