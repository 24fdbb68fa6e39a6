package ring

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden ABI vectors under golden/abi")

const goldenDir = "../../golden/abi"

// volatileOffsets lists the bytes of a segment that depend on the process or
// the clock; the golden vectors hold zeros there (golden/abi/README.md).
func volatileRanges(g *geometry) [][2]uint64 {
	r := [][2]uint64{
		{offCreatedNs, 8}, {offProdPID, 4}, {offProdStartTime, 8}, {offProdHeartbeat, 8},
	}
	for i := uint64(0); i < g.maxSubs; i++ {
		e := g.tableOff + i*EntrySize
		r = append(r, [2]uint64{e + entHeartbeat, 8}, [2]uint64{e + entPID, 4}, [2]uint64{e + entStartTime, 8})
	}
	return r
}

// hexDump renders b as "OFFSET: 16 hex bytes" lines after a comment header.
func hexDump(title string, b []byte) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n", title)
	fmt.Fprintf(&sb, "# %d bytes; volatile fields zeroed (see README.md)\n", len(b))
	for off := 0; off < len(b); off += 16 {
		fmt.Fprintf(&sb, "%04x:", off)
		for _, c := range b[off:min(off+16, len(b))] {
			fmt.Fprintf(&sb, " %02x", c)
		}
		sb.WriteByte('\n')
	}
	return []byte(sb.String())
}

// TestGoldenABI builds two rings with fixed parameters, drives them to a
// fixed state, and compares the whole segment, byte for byte, with the
// vectors the Python and C++ clients are checked against too.
func TestGoldenABI(t *testing.T) {
	cases := []struct {
		file  string
		title string
		build func(t *testing.T, name string) []byte
	}{
		{"tick_block_v2.hex", "ABI v2: Tick (64 B, align 8, id 1, fp 0x7ac49e0f1d2b3c4d), capacity 8, 2 entries, block, batch 2, liveness 2s, packed slots, strong fences; " +
			"one unlimited subscriber (entry 0) attached; messages 0,1,2 published (fill(seq)) and flushed; 1 received",
			func(t *testing.T, name string) []byte {
				pub, err := Create[Tick](name, Options{Capacity: 8, MaxSubscribers: 2, Batch: 2, LivenessTimeout: 2 * time.Second,
					SlotLayout: SlotPacked, Fences: FencesStrong})
				require.NoError(t, err)
				t.Cleanup(func() { _ = pub.Close() })
				sub, err := Attach[Tick](name, SubscribeOptions{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = sub.Close() })
				publishTicks(t, pub, 3, true)
				pub.Flush()
				var m Tick
				require.NoError(t, sub.Recv(context.Background(), &m))
				sub.c.flushStats()
				return append([]byte(nil), pub.s.mem...)
			}},
		{"book_drop_oldest_v2.hex", "ABI v2: Book (64 B, align 64, id 2, fp 0xb00c000000000002), capacity 4, 1 entry, drop_oldest, batch 1, liveness 1s, line slots, strong fences; " +
			"one subscriber with max_lag 2 attached; messages 0..5 published (Seq=i, Check=^i); 1 received (4, after skipping 0..3)",
			func(t *testing.T, name string) []byte {
				pub, err := Create[Book](name, Options{Capacity: 4, MaxSubscribers: 1, Policy: DropOldest, LivenessTimeout: time.Second,
					SlotLayout: SlotLine, Fences: FencesStrong})
				require.NoError(t, err)
				t.Cleanup(func() { _ = pub.Close() })
				sub, err := Attach[Book](name, SubscribeOptions{MaxLag: 2})
				require.NoError(t, err)
				t.Cleanup(func() { _ = sub.Close() })
				for i := uint64(0); i < 6; i++ {
					b, err := pub.Claim()
					require.NoError(t, err)
					b.Seq, b.Check = i, ^i
					require.NoError(t, pub.Commit())
				}
				var b Book
				require.NoError(t, sub.TryRecv(&b))
				require.Equal(t, uint64(4), b.Seq)
				sub.c.flushStats()
				return append([]byte(nil), pub.s.mem...)
			}},
		{"small_line_asym_v2.hex", "ABI v2: Small (16 B, align 8, id 3, fp 0x5a11000000000003), capacity 4, 1 entry, block, batch 1, liveness 1s, line slots (auto), asymmetric fences; " +
			"one unlimited subscriber that cannot issue membarrier (entry flag strong) attached; messages 0,1,2 published (Seq=i, Value=i*i); 2 received",
			func(t *testing.T, name string) []byte {
				pub, err := Create[Small](name, Options{Capacity: 4, MaxSubscribers: 1, LivenessTimeout: time.Second, forceAsym: true})
				require.NoError(t, err)
				t.Cleanup(func() { _ = pub.Close() })
				sub, err := Attach[Small](name, SubscribeOptions{noMembarrier: true})
				require.NoError(t, err)
				t.Cleanup(func() { _ = sub.Close() })
				for i := uint64(0); i < 3; i++ {
					require.NoError(t, pub.Publish(&Small{Seq: i, Value: i * i}))
				}
				var m Small
				for i := uint64(0); i < 2; i++ {
					require.NoError(t, sub.TryRecv(&m))
					require.Equal(t, i*i, m.Value)
				}
				sub.c.flushStats()
				return append([]byte(nil), pub.s.mem...)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			name := ringName(t)
			seg := tc.build(t, name)
			hdr, err := decodeHeader(seg[:HeaderSize])
			require.NoError(t, err)
			for _, r := range volatileRanges(&hdr.geo) {
				clear(seg[r[0] : r[0]+r[1]])
			}
			got := hexDump(tc.title, seg)
			path := filepath.Join(goldenDir, tc.file)
			if *update {
				require.NoError(t, os.MkdirAll(goldenDir, 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run TestGoldenABI -update")
			if !bytes.Equal(want, got) {
				t.Errorf("segment bytes differ from %s (rerun with -update if the ABI change is intended):\n%s", path, firstDiff(want, got))
			}
		})
	}
}

func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, w, g)
		}
	}
	return ""
}

// TestSlotAutoRule pins SlotAuto's rule, which every client repeats (the
// C++, Python and Rust tests hold the same table): line slots when a stamp
// and the message fit in two cache lines, packed beyond.
func TestSlotAutoRule(t *testing.T) {
	for _, c := range []struct {
		size, align uint64
		want        SlotLayout
	}{
		{8, 1, SlotLine}, {16, 8, SlotLine}, {56, 8, SlotLine}, {64, 8, SlotLine}, {120, 8, SlotLine},
		{128, 8, SlotPacked}, {120, 4, SlotLine}, {124, 4, SlotPacked}, {64, 64, SlotLine}, {128, 64, SlotPacked},
		{1024, 8, SlotPacked},
	} {
		assert.Equal(t, c.want, SlotAuto.Resolve(c.size, c.align), "%d B, align %d", c.size, c.align)
		assert.Equal(t, SlotPacked, SlotPacked.Resolve(c.size, c.align))
		assert.Equal(t, SlotLine, SlotLine.Resolve(c.size, c.align))
	}
}
