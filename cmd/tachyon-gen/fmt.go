package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/tachyon-io/tachyon/schema"
)

func runFmt(env *cliEnv, args []string) int {
	fs := newFlags(env, "fmt", `Format schema files canonically, keeping every comment. Without -l or -w,
print the formatted files to standard output. As with gofmt, -l lists the
files whose formatting differs (exit 1 if any, unless -w rewrites them).`)
	write := fs.Bool("w", false, "rewrite files in place")
	list := fs.Bool("l", false, "list files whose formatting differs")
	files, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		return fs.usageError("need at least one FILE.tsch")
	}
	status := exitOK
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			env.errorf("fmt: %v", err)
			status = exitError
			continue
		}
		out, err := schema.Format(path, src)
		if err != nil {
			var ds schema.Diagnostics
			if errors.As(err, &ds) {
				ds.Print(env.stderr)
			} else {
				env.errorf("fmt: %s: %v", path, err)
			}
			status = exitError
			continue
		}
		changed := !bytes.Equal(src, out)
		if !*list && !*write {
			env.stdout.Write(out)
			continue
		}
		if *list && changed {
			fmt.Fprintln(env.stdout, path)
			if !*write {
				status = exitError
			}
		}
		if *write && changed {
			info, err := os.Stat(path)
			if err == nil {
				err = os.WriteFile(path, out, info.Mode().Perm())
			}
			if err != nil {
				env.errorf("fmt: %v", err)
				status = exitError
			}
		}
	}
	return status
}
