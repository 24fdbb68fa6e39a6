package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPeerPlotsRender draws the bench-peers plots from a fixture run: every
// file parses as what its name says, and the SVGs name the systems, escaped.
func TestPeerPlotsRender(t *testing.T) {
	doc := loadFixture[peersDoc](t, "make-bench-peers.json")
	prefix := filepath.Join(t.TempDir(), "bench-peers")
	files, err := savePeerPlots(doc, prefix)
	require.NoError(t, err)
	assert.Equal(t, []string{prefix + "-rtt.svg", prefix + "-rtt.png", prefix + "-throughput.svg", prefix + "-throughput.png"}, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, imageError(f, data))
		if strings.HasSuffix(f, ".svg") {
			assert.Contains(t, string(data), "Tachyon Go&lt;-&gt;Go", f)
			assert.Contains(t, string(data), "Aeron 1.51.0 IPC (Java)", f)
			assert.Contains(t, string(data), "Fixture CPU &lt;x&gt; &amp; y", f)
			assert.NotContains(t, string(data), "Rust&lt;-&gt;Rust", "%s: a system without figures has no row", f)
		}
	}
}

// TestPeersFromFile is `bench peers --from`: the table and the plots of a
// results file, measuring nothing.
func TestPeersFromFile(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	require.Equal(t, 0, peersMain([]string{"--from", filepath.Join("testdata", "make-bench-peers.json"), "--plots", prefix}))
	for _, f := range peerPlotFiles(prefix) {
		assert.FileExists(t, f)
	}
	assert.Equal(t, 1, peersMain([]string{"--from", filepath.Join("testdata", "missing.json")}))
}

func TestPeersTable(t *testing.T) {
	table := peersTable(loadFixture[peersDoc](t, "make-bench-peers.json"))
	assert.Contains(t, table, "| 64-byte messages | RTT p50 | RTT p50 ÷ floor beside it | RTT p99 | RTT p99.9 | one-way msgs/s |")
	assert.Contains(t, table, "| Tachyon Rust<->Rust | not measured: the Rust ring client does not exist yet |")
	// The protocol floor streams nothing; medians come with their spread.
	assert.Regexp(t, `\| C protocol floor: ABI v1 slots \| 1308 ns \(1292 ns-1323 ns\) \| .* \| - \|`, table)
	assert.Contains(t, table, "2026-01-02T03:04:05Z")
}

func TestSummarize(t *testing.T) {
	rtt := func(p50 float64) *rttStats { return &rttStats{P50: p50, P90: p50 + 1, P99: p50 + 2, P999: p50 + 3} }
	s := systemResult{Rounds: []peerRound{
		{RTT: rtt(300), MsgsPerS: 10e6},
		{RTT: rtt(100), Errors: []string{"stream: boom"}},
		{RTT: rtt(200), MsgsPerS: 30e6},
		{RTT: rtt(900), MsgsPerS: 20e6},
	}}
	summarize(&s)
	require.NotNil(t, s.Median)
	assert.Equal(t, figures{RTTP50: 250, RTTP99: 252, RTTP999: 253, MsgsPerS: 20e6}, *s.Median, "even count: the mean of the middle two")
	assert.Equal(t, figures{RTTP50: 100, RTTP99: 102, RTTP999: 103, MsgsPerS: 10e6}, *s.Min)
	assert.Equal(t, figures{RTTP50: 900, RTTP99: 902, RTTP999: 903, MsgsPerS: 30e6}, *s.Max)
	assert.Empty(t, s.Missing)

	failed := systemResult{Rounds: []peerRound{{Errors: []string{"round trip: no echo"}}, {Errors: []string{"later"}}}}
	summarize(&failed)
	assert.Nil(t, failed.Median)
	assert.Equal(t, "round trip: no echo", failed.Missing, "a system that never measured says why")
}

// TestMeasurePeersInterleaves runs fake systems: every round runs each
// measurable system once, starting one system later than the round before;
// a failure is kept with its round; an unbuildable system is never run.
func TestMeasurePeersInterleaves(t *testing.T) {
	var calls []string
	sys := func(key string, fail bool) system {
		return system{Key: key, Label: key,
			rtt: func(tag string, z peerSizes) (Latency, error) {
				calls = append(calls, key)
				assert.Contains(t, tag, key)
				return Latency{P50: 100, P90: 110, P99: 120, P999: 130}, nil
			},
			stream: func(string, peerSizes) (float64, error) {
				if fail {
					return 0, errors.New("no subscriber")
				}
				return 5e6, nil
			}}
	}
	defer func(w time.Duration) { busyWindow = w }(busyWindow)
	busyWindow = 10 * time.Millisecond
	absent := system{Key: "absent", Label: "absent", missing: "not built",
		rtt: func(string, peerSizes) (Latency, error) { t.Fatal("an unbuilt system ran"); return Latency{}, nil }}
	floors := []float64{50, 25, 50, 100, 50, 20, 50, 50, 50, 50, 50, 50} // one per round trip, in call order
	probes := 0
	probe := func() (float64, error) { probes++; return floors[probes-1], nil }
	doc := measurePeers([]system{sys("a", false), absent, sys("b", true), sys("c", false)}, 4, peerSizes{}, 0, probe)
	assert.Equal(t, [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}}, doc.Order)
	assert.Equal(t, []string{"a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"}, calls)
	require.Len(t, doc.Systems, 4)
	assert.Equal(t, "not built", doc.Systems[1].Missing)
	assert.Empty(t, doc.Systems[1].Rounds)
	b := doc.Systems[2]
	require.Len(t, b.Rounds, 4)
	assert.Equal(t, []string{"stream: no subscriber"}, b.Rounds[0].Errors)
	require.NotNil(t, b.Median)
	assert.Equal(t, 100.0, b.Median.RTTP50)
	assert.Equal(t, 12, probes, "the floor is probed before every system's round trips")
	assert.Equal(t, 25.0, b.Rounds[0].FloorP50, "b ran second in round 1")
	// b's floors: 25, 100, 50, 50 (calls 2, 4, 9, 11): ratios 4, 1, 2, 2.
	assert.Equal(t, 2.0, b.Median.RTTP50PerFloor)
	assert.Equal(t, 1.0, b.Min.RTTP50PerFloor)
	assert.Equal(t, 4.0, b.Max.RTTP50PerFloor)
	assert.Zero(t, b.Median.MsgsPerS, "no round streamed")
	assert.Equal(t, 5e6, doc.Systems[0].Median.MsgsPerS)
	assert.NotNil(t, doc.Machine["load_before"])
	assert.Len(t, doc.Busy, 4, "the CPU share others used, before each round")
}

func TestLatencyFrom(t *testing.T) {
	l, err := latencyFrom(map[string]float64{"rtt_p50_ns": 1, "rtt_p90_ns": 2, "rtt_p99_ns": 3, "rtt_p999_ns": 4, "rtt_max_ns": 5}, "rtt_")
	require.NoError(t, err)
	assert.Equal(t, Latency{P50: 1, P90: 2, P99: 3, P999: 4, Max: 5}, l)
	_, err = latencyFrom(map[string]float64{"floor_rtt_p50_ns": 1}, "rtt_")
	assert.ErrorContains(t, err, "no rtt_p50_ns")
	_, err = numbers([]byte("warming up\nnot json\n"))
	assert.ErrorContains(t, err, "not a JSON object")
	m, err := numbers([]byte("log line\n{\"msgs_per_s\": 12.5, \"lang\": \"rust\"}\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"msgs_per_s": 12.5}, m)
}

func TestVersions(t *testing.T) {
	assert.Regexp(t, `^\d+\.\d+\.\d+$`, lockedVersion(filepath.Join("peers", "rust", "Cargo.lock"), "iceoryx2"))
	assert.Regexp(t, `^\d+\.\d+\.\d+$`, lockedVersion(filepath.Join("peers", "rust", "Cargo.lock"), "tachyon-ipc"))
	assert.Regexp(t, `^\d+\.\d+\.\d+$`, pomVersion(filepath.Join("peers", "aeron", "pom.xml"), "aeron.version"))
	assert.Equal(t, "?", lockedVersion(filepath.Join("peers", "rust", "Cargo.lock"), "no-such-crate"))
}
