package genrust_test

import (
	"os"
	"os/exec"
	"path/filepath"
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
