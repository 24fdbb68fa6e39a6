package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Set is the three peers, built from one checkout.
type Set struct {
	Go, Cpp, Python Peer
	TachyonGen      string // the tachyon-gen that generated the C++ and Python message code
	PythonGen       string // the directory of that message_tsch.py (the Python peer's --gen-dir)
}

// Build builds tachyon-gen, the seed message's C++ and Python code, the Go
// peer and the C++ peer from the checkout at root into dir, and locates the
// Python peer, which runs in root's venv (`make venv`). Tests build the
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
	var wg sync.WaitGroup
	var goErr error
	wg.Go(func() { goErr = run("go", "build", "-o", gopeer, "./examples/pipeline/gopeer") })
	err := run("go", "build", "-o", s.TachyonGen, "./cmd/tachyon-gen")
	if err == nil {
		err = run(s.TachyonGen, "generate", "--py-out", s.PythonGen, "--cpp-out", cppGen, "examples/Message.tsch")
	}
	if err == nil {
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
	s.Go = Peer{Lang: "go", Argv: []string{gopeer}}
	s.Cpp = Peer{Lang: "cpp", Argv: []string{cpppeer}}
	s.Python = Peer{Lang: "python", Argv: []string{python, filepath.Join(root, "examples", "pipeline", "pypeer.py"), "--gen-dir", s.PythonGen}}
	return s, nil
}
