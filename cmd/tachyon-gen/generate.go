package main

import (
	"bytes"
	"go/token"
	"os"
	"path/filepath"
	"strings"

	"github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/gen/go"
	"github.com/tachyon-io/tachyon/gen/python"
	"github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/schema"
)

// backend is one output language of generate: its --LANG-out flag, and how
// it names and renders a file.
type backend struct {
	lang     string // for messages: "Go"
	flag     string // the output directory flag: "go-out"
	help     string // the flag's help text
	fileName func(*schema.File) string
	generate func(*schema.File) ([]byte, error)
	dir      string // the flag's value
}

func runGenerate(env *cliEnv, args []string) int {
	fs := newFlags(env, "generate", `Generate code for every message, struct, enum, flags and constant of the
schema files and of the files they import. Per input X.tsch the outputs are
DIR/x.tsch.go, DIR/x_tsch.py, DIR/x.tsch.hpp and DIR/x_tsch.rs (a Rust module:
mod x_tsch;). Files whose bytes would not change are left untouched. Output
is deterministic.

The Go package clause is the schema's package name (with a trailing _ when
that is a Go keyword) unless --go-package names another, as a directory
whose other files declare another package needs.`)
	goPackage := fs.String("go-package", "", "Go package `NAME` of the --go-out files (default: the schema's package)")
	backends := []*backend{
		{lang: "Go", flag: "go-out", help: "write Go `DIR`/<stem>.tsch.go", fileName: gengo.FileName,
			generate: func(f *schema.File) ([]byte, error) { return gengo.Options{Package: *goPackage}.Generate(f) }},
		{lang: "Python", flag: "py-out", help: "write Python `DIR`/<stem>_tsch.py", fileName: genpy.FileName, generate: genpy.Generate},
		{lang: "C++", flag: "cpp-out", help: "write C++ `DIR`/<stem>.tsch.hpp", fileName: gencpp.FileName, generate: gencpp.Generate},
		{lang: "Rust", flag: "rust-out", help: "write Rust modules `DIR`/<stem>_tsch.rs", fileName: genrust.FileName, generate: genrust.Generate},
	}
	for _, b := range backends {
		fs.StringVar(&b.dir, b.flag, "", b.help)
	}
	files, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	var selected []*backend
	for _, b := range backends {
		if b.dir != "" {
			selected = append(selected, b)
		}
	}
	if len(selected) == 0 || len(files) == 0 {
		var outs []string
		for _, b := range backends {
			outs = append(outs, "--"+b.flag)
		}
		return fs.usageError("need at least one of %s and one FILE.tsch", joinOr(outs))
	}
	if *goPackage != "" {
		if backends[0].dir == "" {
			return fs.usageError("--go-package names the package of the --go-out files: add --go-out DIR")
		}
		if !token.IsIdentifier(*goPackage) {
			return fs.usageError("--go-package %q is not a Go package name (an identifier, not a keyword)", *goPackage)
		}
	}
	s, ok := env.load(files)
	if !ok {
		return exitError
	}
	for _, b := range selected {
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			return env.errorf("%s output: %v", b.lang, err)
		}
		for _, f := range s.All {
			src, err := b.generate(f)
			if err != nil {
				return env.errorf("%s: %s backend: %v", f.Path, b.lang, err)
			}
			path := filepath.Join(b.dir, b.fileName(f))
			if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, src) {
				continue // unchanged: keep the timestamp, so builds stay incremental
			}
			if err := os.WriteFile(path, src, 0o644); err != nil {
				return env.errorf("%s output: %v", b.lang, err)
			}
		}
	}
	return exitOK
}

// joinOr renders a, b, c as "a, b or c".
func joinOr(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
