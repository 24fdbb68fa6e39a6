package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Set is the four peers, built from one checkout.
type Set struct {
	Go, Cpp, Python, Rust Peer
	TachyonGen            string // the tachyon-gen that generated the C++ and Python message code
	PythonGen             string // the directory of that message_tsch.py (the Python peer's --gen-dir)
}

// Build builds tachyon-gen, the seed message's C++ and Python code, the Go
// peer, the C++ peer and the Rust peer (cargo, offline: `make rust-deps`
// fetches its crates once) from the checkout at root into dir, and locates
// the Python peer, which runs in root's venv (`make venv`). Tests build the
// peers this way so that they check the code in the checkout, not a stale
// binary.
func Build(root, dir string) (Set, error) {
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	python := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return Set{}, fmt.Errorf("the Python peer needs the project venv (%s): run `make venv` (make test does)", python)
	}
	s := Set{TachyonGen: filepath.Join(dir, "tachyon-gen"), PythonGen: filepath.Join(dir, "python")}
	gopeer, cpppeer, cppGen := filepath.Join(dir, "gopeer"), filepath.Join(dir, "cpppeer"), filepath.Join(dir, "cpp")
	rustpeer := filepath.Join(dir, "rustpeer")
	var wg sync.WaitGroup
	var goErr error
	wg.Go(func() { goErr = run("go", "build", "-o", gopeer, "./examples/pipeline/gopeer") })
	err := run("go", "build", "-o", s.TachyonGen, "./cmd/tachyon-gen")
	if err == nil {
		err = run(s.TachyonGen, "generate", "--py-out", s.PythonGen, "--cpp-out", cppGen, "examples/Message.tsch")
	}
	var rustErr error
	if err == nil {
		// The Rust peer's build script generates its message module with
		// this tachyon-gen. Cargo builds into the workspace's target
		// directory (build/cargo), so a rebuild is incremental.
		wg.Go(func() {
			cmd := exec.Command("cargo", "build", "--offline", "--locked", "--release", "-p", "rustpeer")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "TACHYON_GEN="+s.TachyonGen)
			if out, err := cmd.CombinedOutput(); err != nil {
				rustErr = fmt.Errorf("cargo build -p rustpeer (run `make rust-deps` once to fetch its crates): %v\n%s", err, out)
				return
			}
			rustErr = copyFile(filepath.Join(root, "build", "cargo", "release", "rustpeer"), rustpeer)
		})
		err = run("g++", "-std=c++20", "-O2", "-Wall", "-Wextra", "-Werror", "-Iruntime/cpp/include",
			"-I"+cppGen, "examples/pipeline/cpppeer.cpp", "-o", cpppeer)
	}
	wg.Wait()
	if err != nil {
		return Set{}, err
	}
	if goErr != nil {
		return Set{}, goErr
	}
	if rustErr != nil {
		return Set{}, rustErr
	}
	s.Go = Peer{Lang: "go", Argv: []string{gopeer}}
	s.Cpp = Peer{Lang: "cpp", Argv: []string{cpppeer}}
	s.Rust = Peer{Lang: "rust", Argv: []string{rustpeer}}
	s.Python = Peer{Lang: "python", Argv: []string{python, filepath.Join(root, "examples", "pipeline", "pypeer.py"), "--gen-dir", s.PythonGen}}
	return s, nil
}

// copyFile copies an executable, so that the peer a test runs is a snapshot
// that a concurrent cargo build cannot replace under it.
func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
