package main

// TestSmoke runs the whole harness with tiny sample sizes (`--smoke`): every
// step must produce its figures, and bench-results.json must carry every
// metric name issue 7 promises. It proves the harness works; the numbers of
// a smoke run mean nothing.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/pipeline/peers"
)

func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..")
}

func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every peer and runs every benchmark once: not in -short")
	}
	top := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string { return filepath.Join(dir, name) }
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = top
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	// Build everything the harness runs, in parallel where it can be.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	var ps peers.Set
	wg.Go(func() {
		var err error
		ps, err = peers.Build(top, dir)
		errs <- err
	})
	wg.Go(func() { errs <- run("go", "build", "-o", bin("bench"), "./bench") })
	wg.Go(func() { errs <- run("go", "build", "-o", bin("tachyon-bridge"), "./cmd/tachyon-bridge") })
	for _, floor := range []string{"floor_pingpong", "floor_spsc"} {
		wg.Go(func() {
			errs <- run("cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "runtime/cpp/bench/"+floor+".c", "-o", bin(floor))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	layout, err := exec.Command(ps.TachyonGen, "layout", "--json", filepath.Join(top, "examples", "Message.tsch")).Output()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin("layout.json"), layout, 0o644))

	results, svg := bin("results.json"), bin("latency.svg")
	cmd := exec.Command(bin("bench"), "--smoke", "--out", results, "--svg", svg,
		"--bridge", bin("tachyon-bridge"), "--layout", bin("layout.json"),
		"--floor-pingpong", bin("floor_pingpong"), "--floor-spsc", bin("floor_spsc"),
		"--gopeer", ps.Go.Argv[0], "--cpppeer", ps.Cpp.Argv[0], "--rustpeer", ps.Rust.Argv[0], "--tachyon-gen", ps.TachyonGen,
		"--python", ps.Python.Argv[0], "--python-gen", ps.PythonGen)
	cmd.Dir = top
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var doc struct {
		Machine map[string]any             `json:"machine"`
		Metrics map[string]json.RawMessage `json:"metrics"`
		Missing map[string]string          `json:"missing"`
		Targets []map[string]any           `json:"targets"`
	}
	data, err := os.ReadFile(results)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.Empty(t, doc.Missing, "every step must run")
	for _, name := range []string{"floor_rtt_p50_ns", "protocol_floor_rtt_p50_ns", "go_go_rtt_p50_ns", "go_go_rtt_p99_ns", "go_cpp_rtt_p50_ns",
		"uds_rtt_p50_ns", "pipe_rtt_p50_ns", "floor_ring_msgs_per_s", "go_go_msgs_per_s", "go_python_msgs_per_s",
		"mp_queue_msgs_per_s", "numpy_decode_msgs_per_s", "struct_loop_decode_msgs_per_s", "go_allocs_per_msg",
		"generate_1000_s", "bridge_r1_plain_async_msgs_per_s", "bridge_r1_unpacked_msgs_per_s", "bridge_r1_packed16_msgs_per_s",
		"bridge_r3_plain_async_msgs_per_s", "bridge_r3_unpacked_msgs_per_s", "bridge_r3_packed16_msgs_per_s",
		"bridge_r1_unpacked_latency_p50_ns", "bridge_r3_packed16_latency_p99_ns",
		"rust_rust_rtt_p50_ns", "rust_rust_msgs_per_s", "cpp_cpp_rtt_p50_ns", "cpp_cpp_msgs_per_s"} {
		var m Metric
		if assert.Contains(t, doc.Metrics, name) {
			require.NoError(t, json.Unmarshal(doc.Metrics[name], &m))
			assert.NotEmpty(t, m.Unit, name)
			if name != "go_allocs_per_msg" {
				assert.Positive(t, m.Value, name)
			}
		}
	}
	assert.NotEmpty(t, doc.Machine["cpu"])
	assert.GreaterOrEqual(t, len(doc.Targets), 7, "every target is evaluated")
	plot, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.NoError(t, imageError(svg, plot))
	assert.Contains(t, string(out), "target")

	// bench peers, the Tachyon side and the floors (the other systems need
	// make bench-peers' registry builds): every round measures each of them.
	peersOut := bin("peers.json")
	cmd = exec.Command(bin("bench"), "peers", "--smoke", "--rounds", "2", "--only", "^(floor|protocol_floor|tachyon_)",
		"--out", peersOut, "--plots", bin("peers"), "--floor-pingpong", bin("floor_pingpong"), "--floor-spsc", bin("floor_spsc"),
		"--gopeer", ps.Go.Argv[0], "--cpppeer", ps.Cpp.Argv[0], "--rustpeer", ps.Rust.Argv[0])
	cmd.Dir = top
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err = os.ReadFile(peersOut)
	require.NoError(t, err)
	var pd peersDoc
	require.NoError(t, json.Unmarshal(data, &pd))
	got := map[string]systemResult{}
	for _, s := range pd.Systems {
		got[s.Key] = s
	}
	for _, key := range []string{"floor", "protocol_floor", "tachyon_go_go", "tachyon_go_cpp", "tachyon_cpp_cpp", "tachyon_rust_rust"} {
		s := got[key]
		require.Len(t, s.Rounds, 2, key)
		for _, r := range s.Rounds {
			assert.Empty(t, r.Errors, key)
		}
		if assert.NotNil(t, s.Median, key) {
			assert.Positive(t, s.Median.RTTP50, key)
			if key != "protocol_floor" {
				assert.Positive(t, s.Median.MsgsPerS, key)
			}
		}
	}
	for _, f := range peerPlotFiles(bin("peers")) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, imageError(f, data))
	}
}
