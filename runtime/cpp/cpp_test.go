// Package cpp_test builds the C++ ring client's tests, interop peer, fuzz
// target and benchmark floors from this checkout and runs them; it is how
// `make test` covers runtime/cpp:
//
//   - every header on its own, with g++ and clang++ and every warning the
//     README promises (-Wconversion -Wsign-conversion -Werror included);
//   - tests/ (every ring test) under ASan+UBSan, and its threaded tests under
//     TSan;
//   - the C++ peer under ASan+UBSan against the Go peer, both directions,
//     named and sealed (ABI.md §14), lossy drop_oldest runs, and the echo
//     verb as a relay;
//   - the libFuzzer attach target over the golden-vector seeds (clang);
//   - bench/floor_*.c, smoke-run for their JSON.
//
// Subtests run in parallel so that their compilers overlap; the programs
// they build then run one at a time, so that timing checks do not compete
// with each other.
package cpp_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// The compiler flags of each build.
var (
	cxxWarn = []string{"-std=c++20", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wsign-conversion", "-Werror"}
	asan    = []string{"-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"}
	tsan    = []string{"-O1", "-g", "-fsanitize=thread"}
	fuzzer  = []string{"-O1", "-g", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"}
	floorCC = []string{"-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"}
)

// sanitizerEnv makes a sanitizer report fatal and readable.
var sanitizerEnv = []string{
	"ASAN_OPTIONS=detect_leaks=1:strict_init_order=1",
	"UBSAN_OPTIONS=print_stacktrace=1",
	"TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1",
}

// repoRoot is the repository root, from this file's position.
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// artifact is one build product, built at most once per TestCPP.
type artifact struct {
	once  sync.Once
	path  string
	err   error
	build func() (string, error)
}

func (a *artifact) get() (string, error) {
	a.once.Do(func() { a.path, a.err = a.build() })
	return a.path, a.err
}

// builds are TestCPP's build products, all under its t.TempDir().
type builds struct {
	root, dir string
	runMu     sync.Mutex // held while a built program runs

	ringASan, ringTSan, header, cppPeer, goPeer, fuzz, pingpong, spsc artifact
}

func newBuilds(t *testing.T) *builds {
	b := &builds{root: repoRoot(t), dir: t.TempDir()}
	tests := func(compiler, name string, sanitize []string, sources ...string) func() (string, error) {
		return func() (string, error) {
			return b.cxx(compiler, name, append(append(append([]string{}, cxxWarn...), sanitize...), "-Iruntime/cpp/include"), sources...)
		}
	}
	b.ringASan.build = tests("g++", "ring_test_asan", asan, "ring_test.cpp", "hardening_test.cpp", "races_test.cpp",
		"sealed_test.cpp", "threaded_test.cpp", "main.cpp")
	// The TSan binary holds the threaded tests alone: the others fork, or
	// borrow a lapped slot in place (a race TSan would rightly report: the
	// seqlock detects it after the fact). clang's: GCC 12's TSan does not
	// see races through memcpy, so it could not tell an atomic seqlock copy
	// from a racy one (docs/DECISIONS.md).
	b.ringTSan.build = tests(tsanCompiler(), "ring_test_tsan", tsan, "threaded_test.cpp", "main.cpp")
	b.header.build = func() (string, error) {
		gen := filepath.Join(b.dir, "tachyon-gen")
		if err := b.run("go", "build", "-o", gen, "./cmd/tachyon-gen"); err != nil {
			return "", err
		}
		out := filepath.Join(b.dir, "gen")
		return out, b.run(gen, "generate", "--cpp-out", out, "examples/Message.tsch")
	}
	b.cppPeer.build = func() (string, error) {
		gen, err := b.header.get()
		if err != nil {
			return "", err
		}
		out := filepath.Join(b.dir, "cpppeer_asan")
		args := append(append(append([]string{}, cxxWarn...), asan...), "-Iruntime/cpp/include", "-I"+gen,
			"examples/pipeline/cpppeer.cpp", "-o", out)
		return out, b.run("g++", args...)
	}
	b.goPeer.build = func() (string, error) {
		out := filepath.Join(b.dir, "gopeer")
		return out, b.run("go", "build", "-o", out, "./examples/pipeline/gopeer")
	}
	b.fuzz.build = func() (string, error) {
		out := filepath.Join(b.dir, "attach_fuzz")
		args := append(append(append([]string{}, cxxWarn...), fuzzer...), "-Iruntime/cpp/include",
			"runtime/cpp/fuzz/attach_fuzz.cpp", "-o", out)
		return out, b.run("clang++", args...)
	}
	floor := func(name string) func() (string, error) {
		return func() (string, error) {
			out := filepath.Join(b.dir, name)
			return out, b.run("cc", append(append([]string{}, floorCC...), "runtime/cpp/bench/"+name+".c", "-o", out)...)
		}
	}
	b.pingpong.build = floor("floor_pingpong")
	b.spsc.build = floor("floor_spsc")
	return b
}

// tsanCompiler is clang++ where it is installed (CI installs it), else g++.
func tsanCompiler() string {
	if _, err := exec.LookPath("clang++"); err == nil {
		return "clang++"
	}
	return "g++"
}

// run runs a build command in the repository root.
func (b *builds) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// cxx compiles runtime/cpp/tests sources into objects in parallel (the
// machine may have few cores, but a compiler is single-threaded), then links.
func (b *builds) cxx(compiler, name string, flags []string, sources ...string) (string, error) {
	objs := make([]string, len(sources))
	errs := make([]error, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		objs[i] = filepath.Join(b.dir, name+"-"+strings.TrimSuffix(src, ".cpp")+".o")
		wg.Go(func() {
			errs[i] = b.run(compiler, append(append([]string{}, flags...), "-c", "runtime/cpp/tests/"+src, "-o", objs[i])...)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	out := filepath.Join(b.dir, name)
	return out, b.run(compiler, append(append(append([]string{}, flags...), objs...), "-o", out)...)
}

// need builds the artifacts (concurrently) and returns their paths, or
// fails the test; then it takes the run lock until the test ends.
func (b *builds) need(t *testing.T, as ...*artifact) []string {
	t.Helper()
	paths := make([]string, len(as))
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Go(func() { paths[i], errs[i] = a.get() })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	b.runMu.Lock()
	t.Cleanup(b.runMu.Unlock)
	return paths
}

// requireTool fails the test when a tool is missing; clang, which only the
// fuzz target needs, may be missing outside CI (CI installs it: .ci/run).
func requireTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if tool == "clang++" && os.Getenv("CI") != "true" {
		t.Skipf("%s not found: the libFuzzer target needs it (apt-get install clang); CI installs it", tool)
	}
	t.Fatalf("%s not found: install it (Debian: apt-get install g++ clang)", tool)
}

func TestCPP(t *testing.T) {
	b := newBuilds(t)
	requireTool(t, "g++")
	requireTool(t, "cc")
	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		requireTool(t, "clang++")
		testHeaders(t, b.root)
	})
	t.Run("ring_asan", func(t *testing.T) {
		t.Parallel()
		bin := b.need(t, &b.ringASan)[0]
		runCPPTests(t, b.root, bin, "--golden", filepath.Join(b.root, "golden", "abi"))
	})
	t.Run("ring_tsan", func(t *testing.T) {
		t.Parallel()
		bin := b.need(t, &b.ringTSan)[0]
		runCPPTests(t, b.root, bin, "threaded")
	})
	t.Run("interop", func(t *testing.T) {
		t.Parallel()
		p := b.need(t, &b.cppPeer, &b.goPeer)
		testInterop(t, peers.Peer{Lang: "cpp", Argv: []string{p[0]}, Env: sanitizerEnv}, peers.Peer{Lang: "go", Argv: []string{p[1]}})
	})
	t.Run("fuzz", func(t *testing.T) {
		t.Parallel()
		requireTool(t, "clang++")
		testFuzz(t, b)
	})
	t.Run("floors", func(t *testing.T) {
		t.Parallel()
		p := b.need(t, &b.pingpong, &b.spsc)
		testFloors(t, p[0], p[1])
	})
}

// testHeaders compiles each header of the client on its own with g++ (so
// each includes what it uses), and all of them with clang++, with the
// strictest warnings a user may build with. The compiles run side by side.
func testHeaders(t *testing.T, root string) {
	headers, err := filepath.Glob(filepath.Join(root, "runtime", "cpp", "include", "tachyon", "*.hpp"))
	require.NoError(t, err)
	require.NotEmpty(t, headers)
	dir := t.TempDir()
	type unit struct{ cxx, header string }
	units := []unit{{"clang++", "ring.hpp"}}
	for _, h := range headers {
		units = append(units, unit{"g++", filepath.Base(h)})
	}
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for _, u := range units {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			flags := append([]string{}, cxxWarn...)
			flags = append(flags, "-Wshadow", "-Wold-style-cast", "-Wcast-qual", "-fsyntax-only",
				"-I"+filepath.Join(root, "runtime", "cpp", "include"))
			if u.cxx == "g++" {
				flags = append(flags, "-Wuseless-cast")
			}
			src := filepath.Join(dir, u.cxx+"-"+u.header+".cpp")
			if err := os.WriteFile(src, []byte("#include <tachyon/"+u.header+">\nint main() {}\n"), 0o644); err != nil {
				t.Error(err)
				return
			}
			out, err := exec.Command(u.cxx, append(flags, src)...).CombinedOutput()
			assert.NoError(t, err, "%s %s:\n%s", u.cxx, u.header, out)
		})
	}
	wg.Wait()
}

// cppResult is one C++ test's outcome, from the harness's go-test-like output.
type cppResult struct {
	name   string
	passed bool
	output []string
}

// runCPPTests runs a C++ test binary and reports each of its tests as a Go
// subtest. A crash (a sanitizer report ends the process) fails the test
// that was running, with the report.
func runCPPTests(t *testing.T, dir, bin string, args ...string) {
	out, err := runSanitized(dir, bin, args...)
	var results []*cppResult
	var cur *cppResult
	var trailer []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== RUN   "):
			cur = &cppResult{name: strings.TrimPrefix(line, "=== RUN   ")}
			results = append(results, cur)
		case strings.HasPrefix(line, "--- PASS: "), strings.HasPrefix(line, "--- FAIL: "):
			if cur != nil {
				cur.passed = strings.HasPrefix(line, "--- PASS")
				cur.output = append(cur.output, line)
				cur = nil
			}
		case cur != nil:
			cur.output = append(cur.output, line)
		default:
			trailer = append(trailer, line)
		}
	}
	require.NotEmpty(t, results, "%s ran no test: %v\n%s", bin, err, out)
	for _, r := range results {
		t.Run(r.name, func(t *testing.T) {
			if !r.passed {
				t.Errorf("%s", strings.Join(r.output, "\n"))
			}
		})
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, strings.Join(trailer, "\n"))
	}
}

// runSanitized runs a sanitized binary. GCC 12's TSan cannot start under the
// larger mmap randomisation of recent kernels ("unexpected memory
// mapping"); such a run is repeated with address-space randomisation off.
func runSanitized(dir, bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sanitizerEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("unexpected memory mapping")) {
		if setarch, lerr := exec.LookPath("setarch"); lerr == nil {
			cmd = exec.Command(setarch, append([]string{machine(), "-R", bin}, args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), sanitizerEnv...)
			out, err = cmd.CombinedOutput()
		}
	}
	return out, err
}

// machine is uname -m, the architecture name setarch wants.
func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

// ringName is a fresh segment name; a peer that died may leave it behind.
func ringName(t *testing.T, tag string) string {
	name := fmt.Sprintf("t-cpp-go-%d-%s", os.Getpid(), tag)
	t.Cleanup(func() {
		if err := ring.Remove(name); err != nil && !errors.Is(err, ring.ErrNotFound) {
			t.Logf("remove %s: %v", name, err)
		}
	})
	return name
}

func testInterop(t *testing.T, cpp, goPeer peers.Peer) {
	const count = 200_000
	for _, tc := range []struct {
		name string
		run  peers.Run
	}{
		{"go_to_cpp", peers.Run{Pub: goPeer, Subs: []peers.Sub{{Peer: cpp}}}},
		{"cpp_to_go", peers.Run{Pub: cpp, Subs: []peers.Sub{{Peer: goPeer}}}},
		// Lossy: a C++ reader lapped by a Go writer (and the reverse) detects
		// every overwrite through the stamps; its drops are its gaps.
		{"go_to_cpp_drop_oldest", peers.Run{Pub: goPeer, Policy: "drop_oldest", Capacity: 256,
			Subs: []peers.Sub{{Peer: cpp, MaxLag: 16, SlowUs: 2}, {Peer: cpp}}}},
		{"cpp_to_go_drop_oldest", peers.Run{Pub: cpp, Policy: "drop_oldest", Capacity: 256,
			Subs: []peers.Sub{{Peer: goPeer, MaxLag: 16, SlowUs: 2}, {Peer: goPeer}}}},
		// Sealed (ABI.md §14): the publisher serves a sealed memfd on a Unix
		// socket, the subscriber dials it, checks its seals and registers.
		{"go_to_cpp_sealed", peers.Run{Pub: goPeer, Subs: []peers.Sub{{Peer: cpp}, {Peer: cpp, MaxLag: 16}}, Sealed: "ring.sock"}},
		{"cpp_to_go_sealed", peers.Run{Pub: cpp, Subs: []peers.Sub{{Peer: goPeer}, {Peer: goPeer, MaxLag: 16}}, Sealed: "ring.sock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := tc.run
			run.Ring, run.Count, run.Timeout = ringName(t, tc.name), count, 60*time.Second
			if run.Sealed != "" {
				run.Sealed = filepath.Join(t.TempDir(), run.Sealed)
			}
			res, err := peers.Execute(run)
			require.NoError(t, err)
			require.NoError(t, res.Check(run))
			for i, s := range res.Subs {
				if run.Policy == "drop_oldest" {
					if run.Subs[i].MaxLag > 0 {
						assert.Positive(t, s.Dropped, "%s slow lossy reader was never lapped", s.Lang)
					}
					continue
				}
				if run.Subs[i].MaxLag > 0 {
					continue // lossy: Check did the accounting
				}
				assert.Equal(t, int64(count), s.Received)
				assert.Equal(t, int64(0), s.First)
				assert.Equal(t, int64(count-1), s.Last)
			}
			t.Logf("%s: %+v", tc.name, res.Subs)
		})
	}
	t.Run("echo_relay", func(t *testing.T) { testEcho(t, cpp, goPeer) })
}

// testEcho: Go publishes on ping, the C++ echo republishes on pong, a Go
// subscriber on pong checks every message (PEERS.md "echo").
func testEcho(t *testing.T, cpp, goPeer peers.Peer) {
	const count = 50_000
	ping, pong := ringName(t, "ping"), ringName(t, "pong")
	start := func(p peers.Peer, args ...string) (*exec.Cmd, *bytes.Buffer) {
		var stdout bytes.Buffer
		argv := append(append([]string{}, p.Argv...), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), p.Env...)
		cmd.Stdout, cmd.Stderr = &stdout, &stdout
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd, &stdout
	}
	echo, echoOut := start(cpp, "echo", "--ping", ping, "--pong", pong, "--pin", "1", "--timeout-s", "30")
	sub, subOut := start(goPeer, "sub", "--ring", pong, "--timeout-s", "30")
	// The pong reader must be registered before the first ping: the echo
	// does not wait for readers.
	require.Eventually(t, func() bool {
		st, err := ring.Inspect(pong)
		return err == nil && len(st.Subscribers) > 0 && st.Subscribers[0].State == "active"
	}, 30*time.Second, time.Millisecond, "the Go subscriber never registered on %s", pong)
	pub, pubOut := start(goPeer, "pub", "--ring", ping, "--count", fmt.Sprint(count), "--batch", "1", "--timeout-s", "30")
	for _, c := range []struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}{{pub, pubOut}, {echo, echoOut}, {sub, subOut}} {
		require.NoError(t, c.cmd.Wait(), "%s: %s", c.cmd.Path, c.out)
	}
	var e, s map[string]any
	require.NoError(t, json.Unmarshal(lastLine(echoOut), &e), "echo: %s", echoOut)
	require.NoError(t, json.Unmarshal(lastLine(subOut), &s), "sub: %s", subOut)
	assert.Equal(t, "cpp", e["lang"])
	assert.Equal(t, "echo", e["role"])
	assert.Equal(t, ping, e["ring"])
	assert.EqualValues(t, count, e["echoed"])
	assert.Contains(t, e, "seconds")
	assert.EqualValues(t, count, s["received"])
	for _, k := range []string{"gaps", "torn", "reordered"} {
		assert.EqualValues(t, 0, s[k], k)
	}
}

func lastLine(b *bytes.Buffer) []byte {
	lines := bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n"))
	return lines[len(lines)-1]
}

// testFuzz checks that the seeds are still what attach_fuzz.cpp says they
// are, then fuzzes the attach path briefly.
func testFuzz(t *testing.T, b *builds) {
	seeds := filepath.Join(b.root, "runtime", "cpp", "fuzz", "corpus")
	golden := func(name string) []byte { return readHex(t, filepath.Join(b.root, "golden", "abi", name+".hex")) }
	// The Tick vector with entry 0 named "fuzz" (its key at table_offset +
	// 0x48; table_offset is the header word at 0x48).
	named := golden("tick_block_v2")
	binary.LittleEndian.PutUint64(named[binary.LittleEndian.Uint64(named[0x48:])+0x48:], ring.SubscriberKey("fuzz"))
	want := map[string][]byte{
		"tick_block_v2":       golden("tick_block_v2"),
		"book_drop_oldest_v2": golden("book_drop_oldest_v2"),
		"small_line_asym_v2":  golden("small_line_asym_v2"),
		"tick_block_v2_named": named,
	}
	entries, err := os.ReadDir(seeds)
	require.NoError(t, err)
	require.Len(t, entries, len(want), "the seeds are exactly the golden vectors (see attach_fuzz.cpp)")
	for name, want := range want {
		got, err := os.ReadFile(filepath.Join(seeds, name))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "fuzz seed %s is stale: regenerate it from golden/abi (see attach_fuzz.cpp)", name)
	}
	bin := b.need(t, &b.fuzz)[0]
	work := t.TempDir()
	corpus := filepath.Join(work, "corpus")
	require.NoError(t, os.Mkdir(corpus, 0o755))
	out, err := runSanitized(b.root, bin, "-runs=20000", "-max_total_time=30", "-max_len=8192",
		"-artifact_prefix="+work+"/", corpus, seeds)
	require.NoError(t, err, "%s", tail(out, 60))
	require.Contains(t, string(out), "Done ", "%s", tail(out, 20))
}

// readHex decodes a golden vector (OFFSET: bytes lines, # comments).
func readHex(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []byte
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		_, hexBytes, ok := strings.Cut(line, ":")
		require.True(t, ok, "%s: %q", path, line)
		for _, f := range strings.Fields(hexBytes) {
			var v byte
			_, err := fmt.Sscanf(f, "%02x", &v)
			require.NoError(t, err)
			out = append(out, v)
		}
	}
	return out
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// testFloors smoke-runs the benchmark floors with tiny counts: each prints
// its JSON line with the keys bench/ reads.
func testFloors(t *testing.T, pingpong, spsc string) {
	parse := func(bin string, args ...string) map[string]float64 {
		out, err := exec.Command(bin, args...).Output()
		require.NoError(t, err, "%s %v", bin, args)
		var m map[string]float64
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(out), &m), "%s printed %q", bin, out)
		return m
	}
	pp := parse(pingpong, "--iterations", "2000", "--warmup", "200")
	keys := []string{"floor_rtt_p50_ns", "floor_rtt_p90_ns", "floor_rtt_p99_ns", "floor_rtt_p999_ns", "floor_rtt_max_ns"}
	require.Len(t, pp, len(keys))
	for i, k := range keys {
		require.Contains(t, pp, k)
		assert.Positive(t, pp[k], k)
		if i > 0 {
			assert.LessOrEqual(t, pp[keys[i-1]], pp[k], "%s <= %s", keys[i-1], k)
		}
	}
	ring := parse(spsc, "--count", "200000", "--runs", "3")
	require.Len(t, ring, 1)
	assert.Positive(t, ring["floor_ring_msgs_per_s"])
	for _, bin := range []string{pingpong, spsc} {
		err := exec.Command(bin, "--bogus").Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%s --bogus", bin)
		assert.Equal(t, 2, exit.ExitCode(), "%s: a usage error exits 2", bin)
	}
	t.Logf("floors (smoke sizes): %v, %v", pp, ring)
}
