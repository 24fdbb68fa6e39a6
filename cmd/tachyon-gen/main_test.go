package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cli runs the command in-process and returns its exit code and streams.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndHelp(t *testing.T) {
	code, _, stderr := cli(t)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "Usage:")

	code, stdout, _ := cli(t, "help")
	assert.Equal(t, exitOK, code)
	for _, line := range strings.Split(stdout, "\n") {
		assert.LessOrEqual(t, len(line), 100, "help line too long: %q", line)
	}
	for _, c := range commands {
		// Each command on its own line of the table: name, then summary.
		assert.Regexp(t, `(?m)^  `+c.name+` +`+regexp.QuoteMeta(c.summary)+`$`, stdout)
	}

	code, _, stderr = cli(t, "frobnicate")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)

	code, _, _ = cli(t, "layout", "--no-such-flag", "x.tsch")
	assert.Equal(t, exitUsage, code)
	code, _, stderr = cli(t, "generate", "../../examples/Message.tsch")
	assert.Equal(t, exitUsage, code, "generate needs an output flag")
	assert.Contains(t, stderr, "need at least one of --go-out, --py-out, --cpp-out or --rust-out")

	code, stdout, _ = cli(t, "version")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "tachyon-layout/1")
}

// TestCommandHelp: `help CMD` and `CMD --help` print the usage once, on
// stdout, and the usage lines name every flag the command accepts.
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}} {
				code, stdout, stderr := cli(t, args...)
				assert.Equal(t, exitOK, code, args)
				assert.Empty(t, stderr, args)
				assert.Equal(t, 1, strings.Count(stdout, "Usage:"), "%v printed the usage %d times:\n%s", args, strings.Count(stdout, "Usage:"), stdout)
				assert.True(t, strings.HasPrefix(stdout, "Usage: tachyon-gen "+c.name), args)
			}
			usage := strings.Join(c.usage, "\n")
			_, stdout, _ := cli(t, c.name, "--help")
			for _, m := range regexp.MustCompile(`(?m)^  --?([a-z-]+)`).FindAllStringSubmatch(stdout, -1) {
				assert.Regexp(t, `-`+regexp.QuoteMeta(m[1])+`\b`, usage, "the usage of %s does not show its flag %s", c.name, m[1])
			}
		})
	}
	// A bad flag: the flag package's message, then the usage once, on stderr.
	code, stdout, stderr := cli(t, "stat", "--bogus")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, stdout)
	assert.Equal(t, 1, strings.Count(stderr, "Usage:"), stderr)
	assert.Contains(t, stderr, "flag provided but not defined: -bogus")
}

func TestSchemaErrorsExitOne(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tsch")
	require.NoError(t, os.WriteFile(bad, []byte("package p;\nstruct A {\n\tx: Nope;\n\ty: [0]u8;\n}\n"), 0o644))
	code, stdout, stderr := cli(t, "layout", bad)
	assert.Equal(t, exitError, code)
	assert.Empty(t, stdout)
	assert.Equal(t, bad+":3:5: error: unknown type Nope\n\tx: Nope;\n\t   ^\n"+
		bad+":4:6: error: array length must be positive, got 0\n\ty: [0]u8;\n\t    ^\n2 errors\n", stderr)

	missing := filepath.Join(dir, "missing.tsch")
	code, _, stderr = cli(t, "layout", missing)
	assert.Equal(t, exitError, code)
	assert.Equal(t, missing+": error: cannot read schema: no such file\n", stderr, "no FILE:0:0 for a file that cannot be read")
}

func TestLayoutJSONContract(t *testing.T) {
	code, stdout, _ := cli(t, "layout", "--json", "../../examples/Message.tsch")
	require.Equal(t, exitOK, code)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &doc))
	assert.Equal(t, "market", doc["package"])
	msg := doc["messages"].([]any)[0].(map[string]any)
	assert.Equal(t, "Message", msg["name"])
	assert.Equal(t, "message", msg["kind"])
	assert.EqualValues(t, 1, msg["id"])
	assert.EqualValues(t, 64, msg["size"])
	assert.EqualValues(t, 8, msg["align"])
	assert.Regexp(t, `^0x[0-9a-f]{16}$`, msg["fingerprint"])
	fields := msg["fields"].([]any)
	assert.Equal(t, map[string]any{"name": "payload", "type": "[48]u8", "offset": float64(16), "size": float64(48)}, fields[2])
	for _, key := range []string{"structs", "enums", "flags", "consts"} {
		assert.Contains(t, doc, key)
	}
	golden, err := os.ReadFile("../../golden/message.layout.json")
	require.NoError(t, err)
	assert.Equal(t, string(golden), stdout, "layout --json is the golden format")
}

func TestLayoutTableShowsHoles(t *testing.T) {
	code, stdout, _ := cli(t, "layout", "../../examples/book.tsch")
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "message market.Book  id=2  size=192 align=64")
	assert.Regexp(t, `182\s+2\s+/\* padding: 2 byte hole \*/`, stdout)
	assert.Contains(t, stdout, "legacy (deprecated)")
	assert.Contains(t, stdout, "/* size: 192, members: 7, holes: 2, padding bytes: 6 */")
}

func TestCheckReportsBreakingAndCompatible(t *testing.T) {
	code, stdout, _ := cli(t, "check", "--golden", "../../golden", "../../examples/Message.tsch", "../../examples/book.tsch")
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "layout matches")

	dir := t.TempDir()
	changed := filepath.Join(dir, "Message.tsch")
	require.NoError(t, os.WriteFile(changed, []byte(`package market;
@id(1)
message Message {
    timestamp_ns: u64;
    seq: u64;
    payload: [48]u8;
}
@id(9)
message Extra { x: u8; }
`), 0o644))
	code, _, stderr := cli(t, "check", "--golden", "../../golden", changed)
	assert.Equal(t, exitBreaking, code)
	assert.Contains(t, stderr, "BREAKING: message Message: field seq moved from offset 0 to 8")
	assert.Contains(t, stderr, "compatible: message Extra added")
	assert.Contains(t, stderr, "to accept: tachyon-gen check --golden ../../golden --update "+changed)
	code, _, _ = cli(t, "check", "--golden", "../../golden", "--allow-compatible", changed)
	assert.Equal(t, exitBreaking, code, "--allow-compatible does not allow a breaking change")
}

// TestCheckGoldenLifecycle is the CI flow of the README: lock the layouts
// with --update, then a compatible change (exit 3, or 0 with
// --allow-compatible), then a breaking one (exit 4).
func TestCheckGoldenLifecycle(t *testing.T) {
	dir := t.TempDir()
	schemaPath, golden := filepath.Join(dir, "Tick.tsch"), filepath.Join(dir, "layouts")
	write := func(src string) { require.NoError(t, os.WriteFile(schemaPath, []byte("package ticks;\n"+src), 0o644)) }
	write("@id(1) message Tick { seq: u64; px: f64; }\n")

	code, _, stderr := cli(t, "check", "--golden", golden, schemaPath)
	assert.Equal(t, exitError, code)
	assert.Equal(t, schemaPath+": no golden layout "+filepath.Join(golden, "tick.layout.json")+
		"\n  to create it: tachyon-gen check --golden "+golden+" --update "+schemaPath+"\n", stderr)

	code, stdout, _ := cli(t, "check", "--golden", golden, "--update", schemaPath)
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "wrote "+filepath.Join(golden, "tick.layout.json"))
	code, stdout, _ = cli(t, "check", "--golden", golden, "--update", schemaPath)
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "is up to date")
	code, _, _ = cli(t, "check", "--golden", golden, schemaPath)
	assert.Equal(t, exitOK, code)

	write("@id(1) message Tick { seq: u64; px: f64; }\n@id(2) message Halt { seq: u64; }\n")
	code, _, stderr = cli(t, "check", "--golden", golden, schemaPath)
	assert.Equal(t, exitCompatible, code, stderr)
	assert.Contains(t, stderr, "(0 breaking, 1 compatible):")
	code, _, stderr = cli(t, "check", "--golden", golden, "--allow-compatible", schemaPath)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stderr, "allowed by --allow-compatible")

	write("@id(1) message Tick { seq: u64; px: f32; }\n@id(2) message Halt { seq: u64; }\n")
	code, _, stderr = cli(t, "check", "--golden", golden, "--allow-compatible", schemaPath)
	assert.Equal(t, exitBreaking, code)
	assert.Contains(t, stderr, "BREAKING")

	code, stdout, _ = cli(t, "check", "--golden", golden, "--update", schemaPath)
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "refreshed")
	assert.Contains(t, stdout, "BREAKING", "--update says what it accepted")
	code, _, _ = cli(t, "check", "--golden", golden, schemaPath)
	assert.Equal(t, exitOK, code)

	code, _, _ = cli(t, "check", "--golden", golden, "--update", "--allow-compatible", schemaPath)
	assert.Equal(t, exitUsage, code)
}

func TestFmt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.tsch")
	require.NoError(t, os.WriteFile(path, []byte("package p; // hi\nstruct A{x:u8;}\n"), 0o600))
	code, stdout, _ := cli(t, "fmt", "-l", path)
	assert.Equal(t, exitError, code)
	assert.Equal(t, path+"\n", stdout)
	code, _, _ = cli(t, "fmt", "-w", path)
	require.Equal(t, exitOK, code)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "package p; // hi\n\nstruct A {\n    x: u8;\n}\n", string(data))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "fmt -w keeps the file mode")

	examples, _ := filepath.Glob("../../examples/*.tsch")
	code, stdout, _ = cli(t, append([]string{"fmt", "-l"}, examples...)...)
	assert.Equal(t, exitOK, code, "examples are canonically formatted: %s", stdout)
}

// TestGenerateAllBackends runs generate end to end, checks the output names
// of DESIGN.md §4 and that a second run rewrites nothing.
func TestGenerateAllBackends(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cli(t, "generate", "--go-out", filepath.Join(dir, "go"), "--py-out", filepath.Join(dir, "py"),
		"--cpp-out", filepath.Join(dir, "cpp"), "--rust-out", filepath.Join(dir, "rust"),
		"../../examples/book.tsch", "../../examples/Message.tsch")
	require.Equal(t, exitOK, code, stderr)
	for _, name := range []string{"go/book.tsch.go", "go/common.tsch.go", "go/message.tsch.go",
		"py/book_tsch.py", "py/common_tsch.py", "py/message_tsch.py",
		"cpp/book.tsch.hpp", "cpp/common.tsch.hpp", "cpp/message.tsch.hpp",
		"rust/book_tsch.rs", "rust/common_tsch.rs", "rust/message_tsch.rs"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err, name)
		first := strings.SplitN(string(data), "\n", 2)[0]
		assert.Contains(t, first, "Code generated by tachyon-gen. DO NOT EDIT.", name)
	}
	golden, err := os.ReadFile("../../golden/go/book.tsch.go")
	require.NoError(t, err)
	got, _ := os.ReadFile(filepath.Join(dir, "go/book.tsch.go"))
	assert.Equal(t, string(golden), string(got))
}

// TestGoGenerateExample runs the go:generate line of examples/market for
// real. generate only rewrites files whose bytes change, so on a fresh tree
// this is a no-op, and the checked-in output must equal the goldens.
func TestGoGenerateExample(t *testing.T) {
	cmd := exec.Command("go", "generate", "./examples/market")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range []string{"message.tsch.go", "book.tsch.go", "common.tsch.go"} {
		want, err := os.ReadFile(filepath.Join("../../golden/go", name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join("../../examples/market", name))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), name)
	}
}

// TestGenerateGoPackage: --go-package names the package clause, so that
// the output can live in a directory whose package is not the schema's.
func TestGenerateGoPackage(t *testing.T) {
	mod := t.TempDir()
	pkg := filepath.Join(mod, "telemetry")
	require.NoError(t, os.MkdirAll(pkg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/app\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "doc.go"), []byte("// Package telemetry holds the app's messages.\npackage telemetry\n"), 0o644))
	code, _, stderr := cli(t, "generate", "--go-out", pkg, "--go-package", "telemetry", "../../examples/book.tsch")
	require.Equal(t, exitOK, code, stderr)
	for _, name := range []string{"book.tsch.go", "common.tsch.go"} {
		data, err := os.ReadFile(filepath.Join(pkg, name))
		require.NoError(t, err)
		assert.Contains(t, string(data), "\npackage telemetry\n", name)
	}
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	code, _, stderr = cli(t, "generate", "--go-out", pkg, "--go-package", "tele-metry", "../../examples/book.tsch")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `--go-package "tele-metry" is not a Go package name`)
	code, _, stderr = cli(t, "generate", "--py-out", pkg, "--go-package", "telemetry", "../../examples/book.tsch")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "add --go-out DIR")
}
