package ring

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// streamCase is one policy/subscriber mix of a sequence-verified stream.
type streamCase struct {
	name  string
	opts  Options
	subs  []SubscribeOptions
	modes []subMode
	claim bool // publish with Claim/Commit instead of Publish
}

var streamCases = []streamCase{
	{"block/2 unlimited", Options{Capacity: 256, Batch: 16, Policy: Block},
		[]SubscribeOptions{{}, {}}, []subMode{modeRecv, modeBatch}, true},
	{"block/unlimited+lossy", Options{Capacity: 256, Batch: 8, Policy: Block},
		[]SubscribeOptions{{}, {MaxLag: 64}}, []subMode{modeBatch, modeRecv}, false},
	{"drop_newest/unlimited+lossy", Options{Capacity: 128, Policy: DropNewest},
		[]SubscribeOptions{{}, {MaxLag: 128}}, []subMode{modeRecv, modeBorrow}, false},
	{"drop_oldest/2 lossy", Options{Capacity: 256, Batch: 4, Policy: DropOldest},
		[]SubscribeOptions{{}, {MaxLag: 32}}, []subMode{modeRecv, modeBatch}, false},
}

// lossless reports whether a subscriber must receive everything.
func lossless(p Policy, o SubscribeOptions) bool { return p != DropOldest && o.MaxLag == 0 }

// TestHeapStreams runs every policy in-process over a heap buffer, where the
// race detector can see the protocol's memory accesses.
func TestHeapStreams(t *testing.T) {
	n := streamN() / 10
	if raceEnabled {
		n = streamN()
	}
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			pub, r, err := newHeapRing[Tick](tc.name, tc.opts)
			require.NoError(t, err)
			results := make([]subResult, len(tc.subs))
			var wg sync.WaitGroup
			for i, so := range tc.subs {
				sub, err := r.attach(so)
				require.NoError(t, err)
				wg.Go(func() {
					results[i] = verify(sub, tc.modes[i], 0, func() uint64 { return n })
					_ = sub.Close()
				})
			}
			rejected := publishTicks(t, pub, n, tc.claim)
			require.NoError(t, pub.Close())
			wg.Wait()
			for i, res := range results {
				assertResult(t, fmt.Sprintf("subscriber %d", i), res, n, lossless(tc.opts.Policy, tc.subs[i]))
			}
			if tc.opts.Policy != DropNewest {
				require.Zero(t, rejected)
			}
			t.Logf("n=%d rejected=%d results=%+v", n, rejected, results)
		})
	}
}

// TestProcessStreams runs every policy with the subscribers in separate
// processes over a /dev/shm segment: >= 10 M sequence-verified messages each.
func TestProcessStreams(t *testing.T) {
	n := streamN()
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			name := ringName(t)
			pub, err := Create[Tick](name, tc.opts)
			require.NoError(t, err)
			kids := make([]*child, len(tc.subs))
			for i, so := range tc.subs {
				kids[i] = startChild(t, "sub", map[string]string{
					"RING": name, "MAXLAG": strconv.Itoa(so.MaxLag), "MODE": string(tc.modes[i]), "N": strconv.FormatUint(n, 10),
				})
				kids[i].expect(t, "ready")
			}
			rejected := publishTicks(t, pub, n, tc.claim)
			require.NoError(t, pub.Close())
			for i, k := range kids {
				res := k.result(t)
				assertResult(t, fmt.Sprintf("subscriber %d", i), res, n, lossless(tc.opts.Policy, tc.subs[i]))
				t.Logf("subscriber %d (max lag %d, %s): %+v", i, tc.subs[i].MaxLag, tc.modes[i], res)
			}
			t.Logf("n=%d rejected=%d", n, rejected)
		})
	}
}
