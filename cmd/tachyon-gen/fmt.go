package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/tachyon-io/tachyon/schema"
)

func runFmt(env *cliEnv, args []string) int {
	fs := newFlags(env, "fmt", `Format schema files canonically, keeping every comment. Without -w or -l,
print the formatted files to standard output.`)
	write := fs.Bool("w", false, "rewrite files in place")
	list := fs.Bool("l", false, "list files whose formatting differs; exit 1 if any")
	files, code, ok := parseFlags(env, fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fs.Usage()
		return exitUsage
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
		switch {
		case *list:
			if changed {
				fmt.Fprintln(env.stdout, path)
				status = exitError
			}
		case *write:
			if changed {
				info, err := os.Stat(path)
				if err == nil {
					err = os.WriteFile(path, out, info.Mode().Perm())
				}
				if err != nil {
					env.errorf("fmt: %v", err)
					status = exitError
				}
			}
		default:
			env.stdout.Write(out)
		}
	}
	return status
}
