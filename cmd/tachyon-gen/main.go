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

	"github.com/tachyon-io/tachyon/schema"
)

// Exit codes (DESIGN.md §4).
const (
	exitOK    = 0
	exitError = 1 // schema or user error, diagnostics on stderr
	exitUsage = 2
	// check only: the layouts drifted from the golden files.
	exitCompatible = 3 // compatible changes only (0 with --allow-compatible)
	exitBreaking   = 4 // at least one breaking change
)

// version is set at link time by `-ldflags "-X main.version=..."`.
var version = "0.1.0-dev"

type command struct {
	name    string
	summary string
	usage   []string // one line per form of the command, without "tachyon-gen "
	run     func(env *cliEnv, args []string) int
}

var commands []*command

func init() {
	commands = []*command{
		{"generate", "generate Go, Python, C++ and Rust code", []string{
			"generate [--go-out DIR [--go-package NAME]] [--py-out DIR] [--cpp-out DIR] [--rust-out DIR] FILE.tsch...",
		}, runGenerate},
		{"layout", "print message layouts (pahole-style table or JSON)", []string{
			"layout [--json] FILE.tsch...",
		}, runLayout},
		{"check", "compare layouts with golden files; report breaking changes", []string{
			"check --golden DIR [--allow-compatible] FILE.tsch...",
			"check --golden DIR --update FILE.tsch...",
		}, runCheck},
		{"fmt", "format schema files canonically", []string{
			"fmt [-l] [-w] FILE.tsch...",
		}, runFmt},
		{"stat", "show a ring's producer and subscriber counters", []string{
			"stat [--watch] [--interval D] RING",
			"stat --list",
			"stat --reap RING",
		}, runStat},
		{"version", "print the version", []string{"version"}, runVersion},
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
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  tachyon-gen COMMAND [ARGUMENTS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	fmt.Fprintln(w)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tachyon-gen help COMMAND' or 'tachyon-gen COMMAND --help' for a command's usage.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 schema or user error, 2 usage error;")
	fmt.Fprintln(w, "check also exits 3 for compatible drift only and 4 for breaking drift.")
}

// flagSet is a command's flags and its usage text.
type flagSet struct {
	*flag.FlagSet
	env         *cliEnv
	cmd         *command
	description string
}

// newFlags returns the flag set of a command. Its usage is printed once: to
// stdout for --help, to stderr after a bad flag or missing arguments.
func newFlags(env *cliEnv, name, description string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: env, cmd: lookup(name), description: description}
	fs.SetOutput(env.stderr)
	// The flag package prints the usage itself on -h and on a bad flag;
	// parse prints it instead, once, on the right stream.
	fs.FlagSet.Usage = func() {}
	return fs
}

// usage prints the command's usage to w.
func (fs *flagSet) usage(w io.Writer) {
	for i, u := range fs.cmd.usage {
		prefix := "Usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%stachyon-gen %s\n", prefix, u)
	}
	fmt.Fprintf(w, "\n%s\n", fs.description)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		// As flag.PrintDefaults, with the -- the usage lines use.
		arg, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if arg != "" {
			line += " " + arg
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" {
			help += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, help)
	})
}

// usageError prints msg (if any) and the usage to stderr and returns the
// usage exit code.
func (fs *flagSet) usageError(format string, args ...any) int {
	if format != "" {
		fmt.Fprintf(fs.env.stderr, "tachyon-gen %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	}
	fs.usage(fs.env.stderr)
	return exitUsage
}

// parse parses flags that may appear before, between or after the
// positional arguments. It returns the positional arguments, or an exit code
// and false.
func (fs *flagSet) parse(args []string) ([]string, int, bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.usage(fs.env.stdout)
				return nil, exitOK, false
			}
			fmt.Fprintln(fs.env.stderr) // after the flag package's "flag provided but not defined: -x"
			fs.usage(fs.env.stderr)
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
	fs := newFlags(env, "version", "Print the version of tachyon-gen and of the layout fingerprint format.")
	rest, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return fs.usageError("unexpected argument %q", rest[0])
	}
	fmt.Fprintf(env.stdout, "tachyon-gen %s (fingerprint format %s)\n", version, schema.FingerprintVersion)
	return exitOK
}
