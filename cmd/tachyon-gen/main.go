// Command tachyon-gen compiles .tsch schemas to Go, Python, C++ and Rust and
// inspects layouts and rings. Run `tachyon-gen help` for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

// Exit codes (DESIGN.md §4).
const (
	exitOK    = 0
	exitError = 1 // schema or user error, diagnostics on stderr
	exitUsage = 2
)

// version is set at link time by `-ldflags "-X main.version=..."`.
var version = "0.1.0-dev"

type command struct {
	name    string
	summary string
	usage   string
	run     func(env *cliEnv, args []string) int
}

var commands []*command

func init() {
	commands = []*command{
		{"generate", "generate Go, Python, C++ and Rust code", "generate [--go-out DIR] [--py-out DIR] [--cpp-out DIR] [--rust-out DIR] FILE.tsch...", runGenerate},
		{"layout", "print message layouts (pahole-style table or JSON)", "layout [--json] FILE.tsch...", runLayout},
		{"check", "compare layouts with golden files; report breaking changes", "check --golden DIR FILE.tsch...", runCheck},
		{"fmt", "format schema files canonically", "fmt [-w] FILE.tsch...", runFmt},
		{"stat", "show a ring's producer and subscriber counters", "stat [--watch] [--interval D] RING", runStat},
		{"version", "print the version", "version", runVersion},
	}
}

// cliEnv carries the process's streams so tests can run the CLI in-process.
type cliEnv struct {
	stdout, stderr io.Writer
}

func main() {
	// A compiler run is short and allocation-heavy (go/format reparses and
	// reprints every generated file): collecting half as often trades a
	// few MiB of heap for about a fifth of the wall time. GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// guard turns a panic (a bug in tachyon-gen, never a user error) into a one-
// line report and exit status 1 instead of a Go stack trace. Set
// TACHYON_DEBUG=1 to get the trace.
func guard(stderr io.Writer, code *int) {
	if os.Getenv("TACHYON_DEBUG") != "" {
		return
	}
	if r := recover(); r != nil {
		fmt.Fprintf(stderr, "tachyon-gen: internal error: %v\n(this is a bug in tachyon-gen; rerun with TACHYON_DEBUG=1 for a stack trace and report it)\n", r)
		*code = exitError
	}
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer guard(stderr, &code)
	env := &cliEnv{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return c.run(env, []string{"--help"})
			}
		}
		usage(stdout)
		return exitOK
	case "--version", "-version":
		return runVersion(env, nil)
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "tachyon-gen: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	return c.run(env, args[1:])
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tachyon-gen compiles .tsch schemas and inspects layouts and rings.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  tachyon-gen %-58s %s\n", c.usage, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tachyon-gen help COMMAND' or 'tachyon-gen COMMAND --help' for details.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 schema or user error, 2 usage error.")
}

// newFlags returns a flag set that prints the command's usage on --help and
// on a bad flag.
func newFlags(env *cliEnv, name, description string) *flag.FlagSet {
	c := lookup(name)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tachyon-gen %s\n\n%s\n", c.usage, description)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses flags that may appear before, between or after the
// positional arguments. It returns the positional arguments, or an exit code.
func parseFlags(env *cliEnv, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(env.stdout)
				fs.Usage()
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, 0, true
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), 0, true
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// load compiles the schema files, printing diagnostics on failure.
func (env *cliEnv) load(paths []string) (*schema.Schema, bool) {
	s, err := schema.Load(paths...)
	if err != nil {
		var ds schema.Diagnostics
		if errors.As(err, &ds) {
			ds.Print(env.stderr)
			if len(ds) > 1 {
				fmt.Fprintf(env.stderr, "%d errors\n", len(ds))
			}
		} else {
			fmt.Fprintf(env.stderr, "tachyon-gen: %v\n", err)
		}
		return nil, false
	}
	return s, true
}

func (env *cliEnv) errorf(format string, args ...any) int {
	fmt.Fprintf(env.stderr, "tachyon-gen: "+format+"\n", args...)
	return exitError
}

func runVersion(env *cliEnv, args []string) int {
	if len(args) > 0 && strings.TrimLeft(args[0], "-") == "help" {
		fmt.Fprintln(env.stdout, "Usage: tachyon-gen version\n\nPrint the version of tachyon-gen and of the layout fingerprint format.")
		return exitOK
	}
	fmt.Fprintf(env.stdout, "tachyon-gen %s (fingerprint format %s)\n", version, schema.FingerprintVersion)
	return exitOK
}
