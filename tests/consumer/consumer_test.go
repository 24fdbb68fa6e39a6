package consumer

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// root is the checkout: what the README's commands point at.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// offlineGo is the environment of every go command run for a consumer: the
// module cache only, no workspace of the checkout's.
var offlineGo = []string{"GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOFLAGS="}

// project copies testdata/<name> and the shared schema into a new temporary
// directory, outside the checkout, and returns it.
func project(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))))
	schema, err := os.ReadFile(filepath.Join("testdata", "telemetry.tsch"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "telemetry.tsch"), schema, 0o644))
	require.False(t, strings.HasPrefix(dir, root+string(filepath.Separator)), "%s is inside the checkout", dir)
	return dir
}

// stepTimeout bounds one command of a consumer build, so that a hang fails
// the test naming the command instead of running into go test's timeout.
const stepTimeout = 5 * time.Minute

// sh runs a command in dir with extra environment, failing the test with
// its output, and returns the output.
func sh(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	code, out := status(t, dir, env, name, args...)
	require.Zero(t, code, "%s %s (in %s) exited %d:\n%s", name, strings.Join(args, " "), dir, code, out)
	return out
}

// status runs a command and returns its exit status and output.
func status(t *testing.T, dir string, env []string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the output open
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "%s %s (in %s) did not finish in %v:\n%s", name, strings.Join(args, " "), dir, stepTimeout, out)
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%s: %s", name, out)
		return exit.ExitCode(), string(out)
	}
	return 0, string(out)
}

// ringName is a ring name no other test uses; the cleanup removes the
// segment if a failure left it behind.
func ringName(t *testing.T, kind string) string {
	name := fmt.Sprintf("tachyon-consumer-%s-%d", kind, os.Getpid())
	t.Cleanup(func() { os.Remove(filepath.Join("/dev/shm", name)) })
	return name
}

// TestGoModule follows README.md's Go recipe in a module of its own.
func TestGoModule(t *testing.T) {
	app := project(t, "gomod")
	sh(t, app, offlineGo, "go", "mod", "init", "example.com/app")
	sh(t, app, offlineGo, "go", "mod", "edit",
		"-replace", "github.com/tachyon-io/tachyon="+root,
		"-require", "github.com/tachyon-io/tachyon@v0.0.0",
		"-tool", "github.com/tachyon-io/tachyon/cmd/tachyon-gen")
	sh(t, app, offlineGo, "go", "mod", "tidy")
	sh(t, app, offlineGo, "go", "generate", "./...")
	require.FileExists(t, filepath.Join(app, "telemetry", "telemetry.tsch.go"))
	sh(t, app, offlineGo, "go", "build", "./...")
	sh(t, app, offlineGo, "go", "vet", "./...")

	bin := t.TempDir()
	sh(t, app, offlineGo, "go", "build", "-o", bin, "./cmd/...")
	ring := ringName(t, "go")
	const count = "100000"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 2)
	errs := make([]error, 2)
	for i, prog := range []string{"sub", "pub"} { // the subscriber waits for the ring
		cmd := exec.CommandContext(ctx, filepath.Join(bin, prog), "-ring", ring, "-count", count)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		require.NoError(t, cmd.Start())
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()
	require.NoError(t, errs[0], "sub: %s", outs[0].String())
	require.NoError(t, errs[1], "pub: %s", outs[1].String())
	require.Equal(t, "received "+count+" readings in order\n", outs[0].String())
	require.Equal(t, "published "+count+"\n", outs[1].String())
}

// tachyonGen installs tachyon-gen as README.md says for a clone (go install
// ./cmd/tachyon-gen) into a directory of its own, and returns it.
func tachyonGen(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	sh(t, root, append(offlineGo, "GOBIN="+bin), "go", "install", "./cmd/tachyon-gen")
	return filepath.Join(bin, "tachyon-gen")
}

// TestPythonVenv installs the client into a fresh venv with a plain pip
// install from the checkout, type-checks a consumer with mypy --strict and
// runs it.
func TestPythonVenv(t *testing.T) {
	wheels := filepath.Join(root, "build", "wheels")
	if _, err := os.Stat(wheels); err != nil {
		t.Fatalf("no wheelhouse at %s: run `make wheels` (make test does)", wheels)
	}
	devVenv := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(devVenv); err != nil {
		t.Fatalf("the project venv provides mypy: run `make venv` (make test does)")
	}
	app := project(t, "python")
	venv := filepath.Join(t.TempDir(), "venv")
	sh(t, app, nil, "python3", "-m", "venv", venv)
	python := filepath.Join(venv, "bin", "python")
	// `pip install runtime/python`, offline: the same command with the
	// wheels it would download already at hand.
	pipOffline := []string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + wheels, "PIP_DISABLE_PIP_VERSION_CHECK=1"}
	sh(t, app, pipOffline, python, "-m", "pip", "install", "--quiet", filepath.Join(root, "runtime", "python"))
	sh(t, app, nil, tachyonGen(t), "generate", "--py-out", ".", "telemetry.tsch")

	// mypy of the project venv, resolving imports in the fresh venv (as an
	// editor pointed at it would): tachyon and numpy as installed there.
	out := sh(t, app, []string{"MYPYPATH="}, devVenv, "-m", "mypy", "--strict", "--python-executable", python,
		"--cache-dir", filepath.Join(t.TempDir(), "mypy"), "consumer.py", "telemetry_tsch.py")
	require.Contains(t, out, "Success: no issues found in 2 source files")
	out = sh(t, app, nil, python, "-c", "import tachyon, sys; print(tachyon.__file__)")
	require.True(t, strings.HasPrefix(out, venv), "tachyon imported from %s, not the venv", out)

	out = sh(t, app, nil, python, "consumer.py", ringName(t, "py"))
	require.Equal(t, "received 200 readings in order; first from s0\n", out)

	// The editable form of the docs works too, without extra flags.
	sh(t, app, pipOffline, python, "-m", "pip", "install", "--quiet", "-e", filepath.Join(root, "runtime", "python"))
	out = sh(t, app, nil, python, "-c", "import tachyon; print(tachyon.__file__)")
	require.Equal(t, filepath.Join(root, "runtime", "python", "tachyon", "__init__.py")+"\n", out)
}

// strictFlags are what the consumer CMake projects build with.
const strictFlags = "-Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Werror"

// TestCMakeInstalled installs Tachyon with cmake --install into a prefix and
// builds a project that finds it with find_package(tachyon CONFIG
// REQUIRED), on g++ and clang++; the app streams readings over a ring.
func TestCMakeInstalled(t *testing.T) {
	needTools(t, "cmake", "g++", "clang++")
	build, prefix := t.TempDir(), filepath.Join(t.TempDir(), "prefix")
	sh(t, root, offlineGo, "cmake", "-S", root, "-B", build, "-DCMAKE_BUILD_TYPE=Release")
	sh(t, root, offlineGo, "cmake", "--build", build)
	sh(t, root, nil, "cmake", "--install", build, "--prefix", prefix)
	for _, path := range []string{"bin/tachyon-gen", "include/tachyon/ring.hpp", "lib/cmake/tachyon/tachyonConfig.cmake", "lib/cmake/tachyon/TachyonGenerate.cmake"} {
		require.FileExists(t, filepath.Join(prefix, path))
	}
	app := project(t, "cmake")
	for _, cxx := range []string{"g++", "clang++"} {
		t.Run(cxx, func(t *testing.T) {
			out := t.TempDir()
			// No Go and no checkout on the consumer's side: tachyon_generate
			// must run the installed tachyon-gen.
			sh(t, app, []string{"PATH=" + pathWithout(t, "go")}, "cmake", "-S", app, "-B", out,
				"-DCMAKE_CXX_COMPILER="+cxx, "-DCMAKE_PREFIX_PATH="+prefix)
			sh(t, app, nil, "cmake", "--build", out)
			got := sh(t, app, nil, filepath.Join(out, "app"), ringName(t, "cmake-"+strings.TrimRight(cxx, "+")), "20000")
			require.Equal(t, "received 20000 readings in order (type id 7)\n", got)
		})
	}
	require.Contains(t, string(readFile(t, filepath.Join(app, "CMakeLists.txt"))), strictFlags)
}

// TestCMakeFetchContent builds the same app with Tachyon brought in by
// FetchContent, pointed at the checkout.
func TestCMakeFetchContent(t *testing.T) {
	needTools(t, "cmake", "g++")
	app := project(t, "cmake-fetchcontent")
	require.NoError(t, os.WriteFile(filepath.Join(app, "main.cpp"), readFile(t, "testdata/cmake/main.cpp"), 0o644))
	out := t.TempDir()
	sh(t, app, offlineGo, "cmake", "-S", app, "-B", out, "-DCMAKE_CXX_COMPILER=g++", "-DFETCHCONTENT_SOURCE_DIR_TACHYON="+root)
	sh(t, app, offlineGo, "cmake", "--build", out)
	got := sh(t, app, nil, filepath.Join(out, "app"), ringName(t, "fetch"), "20000")
	require.Equal(t, "received 20000 readings in order (type id 7)\n", got)
	// A project that adds Tachyon does not install Tachyon with itself.
	require.NotContains(t, string(readFile(t, filepath.Join(out, "_deps", "tachyon-build", "cmake_install.cmake"))), "tachyonConfig.cmake")
}

// TestGoldenLayoutsInCI runs the CI step of README.md: lock the layouts,
// then a compatible change passes and a breaking one fails, with check's
// documented exit codes.
func TestGoldenLayoutsInCI(t *testing.T) {
	gen := tachyonGen(t)
	app := project(t, "ci")
	require.NoError(t, os.MkdirAll(filepath.Join(app, "schemas"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(app, "telemetry.tsch"), filepath.Join(app, "schemas", "telemetry.tsch")))
	path := []string{"PATH=" + filepath.Dir(gen) + string(os.PathListSeparator) + os.Getenv("PATH")}
	step := func() (int, string) { return status(t, app, path, "sh", "check-layouts.sh") }
	edit := func(old, new string) {
		p := filepath.Join(app, "schemas", "telemetry.tsch")
		src := string(readFile(t, p))
		require.Contains(t, src, old)
		require.NoError(t, os.WriteFile(p, []byte(strings.Replace(src, old, new, 1)), 0o644))
	}

	code, out := step()
	require.Equal(t, 1, code, "no golden yet: %s", out)
	require.Contains(t, out, "to create it: tachyon-gen check --golden layouts --update schemas/telemetry.tsch")
	sh(t, app, nil, gen, "check", "--golden", "layouts", "--update", "schemas/telemetry.tsch")
	code, out = step()
	require.Equal(t, 0, code, out)

	edit("    KELVIN = 2;\n", "    KELVIN = 2;\n    FAHRENHEIT = 3;\n") // compatible
	code, out = step()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "compatible: enum Unit: member FAHRENHEIT = 3 added")
	code, _ = status(t, app, nil, gen, "check", "--golden", "layouts", "schemas/telemetry.tsch")
	require.Equal(t, 3, code, "compatible drift without --allow-compatible")

	edit("    value: f64;\n", "    value: f32;\n") // breaking
	code, out = step()
	require.Equal(t, 4, code, out)
	require.Contains(t, out, "BREAKING")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install it (.ci/run installs cmake and clang from Debian)", tool)
		}
	}
}

// pathWithout returns $PATH without the directories holding program.
func pathWithout(t *testing.T, program string) string {
	var keep []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if info, err := os.Stat(filepath.Join(dir, program)); err == nil && info.Mode().Type()&fs.ModeType == 0 {
			continue
		}
		keep = append(keep, dir)
	}
	return strings.Join(keep, string(os.PathListSeparator))
}
