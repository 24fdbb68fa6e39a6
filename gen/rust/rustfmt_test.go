package genrust_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	genrust "github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/schema"
)

// checkRustfmt requires src to be rustfmt's output for src under the 2021
// and the 2024 style editions: a user's `cargo fmt` leaves generated modules
// alone whatever their crate's edition.
func checkRustfmt(t *testing.T, f *schema.File, src []byte) {
	t.Helper()
	rustfmt := lookTool(t, "rustfmt")
	path := filepath.Join(t.TempDir(), genrust.FileName(f))
	require.NoError(t, os.WriteFile(path, src, 0o644))
	for _, edition := range []string{"2021", "2024"} {
		out, err := exec.Command(rustfmt, "--check", "--edition", edition, path).CombinedOutput()
		require.NoError(t, err, "generated Rust for %s is not rustfmt-formatted (edition %s):\n%s", f.Path, edition, out)
	}
}

// lookTool finds a Rust tool or fails with how to install it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Rust with rustup (https://rustup.rs), which brings cargo, rustfmt and clippy", name)
	}
	return path
}

// TestRustfmtAtEveryNameLength generates a schema per name length from 1 to
// maxNameLength characters, every kind of name that length, and requires
// rustfmt to leave each module as it is: the generator's own line breaking
// (calls, signatures, assertions, constants) must be rustfmt's at every
// width, in both style editions. Longer names still compile; rustfmt would
// lay out some of their lines differently (and the 2021 and 2024 styles
// disagree on a string literal wider than a line, such as a NAME whose
// package.Name exceeds about 80 characters).
func TestRustfmtAtEveryNameLength(t *testing.T) {
	rustfmt := lookTool(t, "rustfmt")
	dir := t.TempDir()
	var paths []string
	const maxNameLength = 64
	for n := 1; n <= maxNameLength; n++ {
		name := func(first, rest string) string { return first + strings.Repeat(rest, n-1) }
		src := fmt.Sprintf(`package %[1]s;

/// A constant.
const %[2]s: u64 = 18446744073709551615;

enum %[3]s: i64 {
    %[4]s = -9223372036854775808;
}

flags %[5]s: u64 {
    %[6]s = 63;
}

struct %[7]s {
    %[8]s: u32;
    %[9]s: [12]char;
    e: %[3]s;
}

@id(1) @align(64)
message %[10]s {
    %[8]s: u64;
    inner: %[7]s;
    %[11]s: %[5]s;
    arr: [3]%[7]s;
}
`, fmt.Sprintf("p%d", n), name("C", "X"), name("E", "x"), name("V", "Y"), name("F", "x"), name("B", "Z"),
			name("S", "x"), name("f", "x"), name("t", "x"), name("M", "x"), name("g", "x"))
		s, err := schema.LoadSource(fmt.Sprintf("len%02d.tsch", n), []byte(src))
		require.NoError(t, err, src)
		out, err := genrust.Generate(s.Files[0])
		require.NoError(t, err)
		path := filepath.Join(dir, genrust.FileName(s.Files[0]))
		require.NoError(t, os.WriteFile(path, out, 0o644))
		paths = append(paths, path)
	}
	for _, edition := range []string{"2021", "2024"} {
		out, err := exec.Command(rustfmt, append([]string{"--check", "--edition", edition}, paths...)...).CombinedOutput()
		require.NoError(t, err, "rustfmt --edition %s would reformat:\n%s", edition, out)
	}
}
