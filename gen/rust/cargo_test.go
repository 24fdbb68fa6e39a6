package genrust_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// repoRoot is the checkout this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return root
}

// crate is a throwaway Cargo project outside the checkout, depending on
// runtime/rust by path as a user's crate does. Every crate of the tests
// shares one target directory, build/cargo (the workspace's), so the
// dependencies compile once; a crate's own artifacts are removed when its
// test ends.
type crate struct {
	t    *testing.T
	dir  string
	name string
	env  []string
}

// newCrate writes Cargo.toml (tachyon-ring with the given extra dependency
// keys, e.g. `default-features = false`) and a copy of lock (relative to
// the checkout, a Cargo.lock that `make rust-deps` fetched), so that an
// --offline build finds exactly the fetched versions.
func newCrate(t *testing.T, name, edition, ringKeys, lock string) *crate {
	t.Helper()
	cargo := lookTool(t, "cargo")
	root := repoRoot(t)
	dir := t.TempDir()
	if keep := os.Getenv("TACHYON_RUST_CRATE_DIR"); keep != "" {
		dir = filepath.Join(keep, name) // keep the crate, to debug a failure
	}
	c := &crate{t: t, dir: dir, name: name, env: append(os.Environ(),
		"CARGO_TARGET_DIR="+filepath.Join(root, "build", "cargo"), "CARGO_TERM_COLOR=never")}
	manifest := "[package]\nname = \"" + name + "\"\nversion = \"0.0.0\"\nedition = \"" + edition + "\"\npublish = false\n\n" +
		"[dependencies]\ntachyon-ring = { path = \"" + filepath.Join(root, "runtime", "rust") + "\"" + ringKeys + " }\n\n" +
		"# Its own workspace: not a member of one above it.\n[workspace]\n"
	c.write("Cargo.toml", manifest)
	locked, err := os.ReadFile(filepath.Join(root, lock))
	require.NoError(t, err)
	c.write("Cargo.lock", string(locked))
	t.Cleanup(func() {
		cmd := exec.Command(cargo, "clean", "--offline", "--quiet", "-p", name)
		cmd.Dir, cmd.Env = c.dir, c.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("cargo clean -p %s: %v\n%s", name, err, out)
		}
	})
	return c
}

func (c *crate) write(rel, content string) {
	c.t.Helper()
	path := filepath.Join(c.dir, rel)
	require.NoError(c.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(c.t, os.WriteFile(path, []byte(content), 0o644))
}

func (c *crate) read(rel string) string {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.dir, rel))
	require.NoError(c.t, err)
	return string(data)
}

// cargo runs `nice cargo ARGS --offline` in the crate and returns its
// combined output; a missing dependency gets the hint to fetch them.
func (c *crate) cargo(env []string, args ...string) (string, error) {
	c.t.Helper()
	// --offline goes before any `--` that passes arguments on to a tool.
	flagEnd := len(args)
	for i, a := range args {
		if a == "--" {
			flagEnd = i
			break
		}
	}
	args = append(args[:flagEnd:flagEnd], append([]string{"--offline"}, args[flagEnd:]...)...)
	cmd := exec.Command("nice", append([]string{"cargo"}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = append(c.env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	c.t.Logf("cargo %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil && (strings.Contains(string(out), "failed to download") || strings.Contains(string(out), "no matching package")) {
		out = append(out, "\n(the crates of Cargo.lock are not in Cargo's cache: run `make rust-deps`, which runs cargo fetch)\n"...)
	}
	return string(out), err
}

// mustCargo is cargo that fails the test on an error.
func (c *crate) mustCargo(env []string, args ...string) string {
	c.t.Helper()
	out, err := c.cargo(env, args...)
	require.NoError(c.t, err, "cargo %s in %s:\n%s", strings.Join(args, " "), c.dir, out)
	return out
}
