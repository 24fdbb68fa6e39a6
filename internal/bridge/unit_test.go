package bridge

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// seqSink records what a sequencer commits.
type seqSink struct {
	got  []uint64 // source sequences committed, in order
	gaps [][2]uint64
}

func newSeq(limit int) (*sequencer, *seqSink) {
	k := &seqSink{}
	s := &sequencer{limit: limit}
	s.commit = func(f *frame, skip uint64) (uint64, error) {
		for q := f.first + skip; q < f.end(); q++ {
			k.got = append(k.got, q)
		}
		return f.count - skip, nil
	}
	s.drop = func(*frame) {}
	s.gap = func(_, from, to uint64) { k.gaps = append(k.gaps, [2]uint64{from, to}) }
	return s, k
}

func fr(epoch, window, first, count uint64) *frame {
	return &frame{ring: "r", epoch: epoch, window: window, first: first, count: count}
}

func seqRange(a, b uint64) []uint64 {
	var s []uint64
	for q := a; q < b; q++ {
		s = append(s, q)
	}
	return s
}

// TestSequencerCases: the orders JetStream can deliver in, one by one.
func TestSequencerCases(t *testing.T) {
	t.Run("in order, with duplicates and overlaps", func(t *testing.T) {
		s, k := newSeq(16)
		for _, f := range []*frame{fr(1, 0, 0, 4), fr(1, 0, 4, 4), fr(1, 0, 0, 4), fr(1, 0, 2, 8), fr(1, 8, 8, 4)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, seqRange(0, 12), k.got)
		assert.EqualValues(t, 4+6+2, s.dups) // [0,4) again, 2..7 of [2,10), 8..9 of [8,12)
		assert.Zero(t, s.gaps)
	})
	t.Run("a retried frame after a later one of its window", func(t *testing.T) {
		s, k := newSeq(16)
		for _, f := range []*frame{fr(1, 0, 0, 4), fr(1, 0, 8, 4), fr(1, 0, 12, 4), fr(1, 0, 4, 4), fr(1, 16, 16, 1)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, seqRange(0, 17), k.got)
		assert.Zero(t, s.gaps)
		assert.EqualValues(t, 2, s.reordered)
	})
	t.Run("a gap before the window is final", func(t *testing.T) {
		s, k := newSeq(16)
		for _, f := range []*frame{fr(1, 0, 0, 4), fr(1, 10, 10, 2)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, append(seqRange(0, 4), 10, 11), k.got)
		assert.EqualValues(t, 6, s.gaps)
		assert.Equal(t, [][2]uint64{{4, 10}}, k.gaps)
	})
	t.Run("held frames whose gap a later window makes final", func(t *testing.T) {
		s, k := newSeq(16)
		for _, f := range []*frame{fr(1, 0, 0, 2), fr(1, 0, 4, 2), fr(1, 8, 8, 2)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, []uint64{0, 1, 4, 5, 8, 9}, k.got)
		assert.Equal(t, [][2]uint64{{2, 4}, {6, 8}}, k.gaps)
	})
	t.Run("too much held", func(t *testing.T) {
		s, k := newSeq(2)
		for _, f := range []*frame{fr(1, 0, 0, 1), fr(1, 0, 5, 1), fr(1, 0, 6, 1), fr(1, 0, 7, 1)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, []uint64{0, 5, 6, 7}, k.got)
		assert.EqualValues(t, 4, s.gaps)
	})
	t.Run("a new epoch, an older one, the end marker", func(t *testing.T) {
		s, k := newSeq(16)
		offers := []*frame{fr(5, 0, 0, 3), fr(7, 0, 0, 2), fr(5, 0, 3, 3), fr(7, 0, 2, 1)}
		end := fr(7, 0, 5, 0)
		end.closed = true
		offers = append(offers, end)
		var closed bool
		for _, f := range offers {
			c, err := s.offer(f)
			require.NoError(t, err)
			closed = closed || c
		}
		assert.True(t, closed)
		assert.Equal(t, []uint64{0, 1, 2, 0, 1, 2}, k.got)
		assert.EqualValues(t, 3, s.dups, "the old epoch's late frame")
		assert.Equal(t, [][2]uint64{{3, 5}}, k.gaps, "the end marker says 3 and 4 were published")
	})
	t.Run("a first frame from the middle of its window waits for the rest", func(t *testing.T) {
		s, k := newSeq(16)
		for _, f := range []*frame{fr(1, 100, 104, 4), fr(1, 100, 100, 4)} {
			_, err := s.offer(f)
			require.NoError(t, err)
		}
		assert.Equal(t, seqRange(100, 108), k.got)
	})
}

// TestSequencerRandom: windows published as the out side does — each frame
// may fail and be published again after the rest of its window, any frame
// may be delivered again later, windows in order — give every sequence
// exactly once, in order.
func TestSequencerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		s, k := newSeq(1 << 20)
		const n = 2000
		var delivered []*frame
		for w := uint64(0); w < n; {
			wlen := min(uint64(1+rng.IntN(64)), n-w)
			pack := uint64(1 + rng.IntN(8))
			var frames []*frame
			for q := w; q < w+wlen; q += pack {
				frames = append(frames, fr(1, w, q, min(pack, w+wlen-q)))
			}
			// Attempt after attempt: a random subset fails and is sent again.
			for len(frames) > 0 {
				var failed []*frame
				for _, f := range frames {
					if rng.IntN(4) == 0 {
						failed = append(failed, f)
					} else {
						delivered = append(delivered, f)
					}
				}
				frames = failed
			}
			// Redeliveries of anything already delivered.
			for range rng.IntN(3) {
				delivered = append(delivered, delivered[rng.IntN(len(delivered))])
			}
			w += wlen
		}
		for _, f := range delivered {
			c := *f
			_, err := s.offer(&c)
			require.NoError(t, err)
		}
		require.Equal(t, seqRange(0, n), k.got, "trial %d", trial)
		require.Zero(t, s.gaps, "trial %d", trial)
	}
}

// TestRunRecord: what a restarted in side resumes at.
func TestRunRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	r, err := loadRecord(path)
	require.NoError(t, err)
	assert.Nil(t, r)
	rec := runRecord{RingName: "b", RingCreated: 42, Index: 10, Start: position{Ring: "a", Epoch: 7, Next: 100}, Known: true}
	require.NoError(t, rec.save(path))
	r, err = loadRecord(path)
	require.NoError(t, err)
	assert.Equal(t, rec, *r)
	for _, c := range []struct {
		committed int64
		next      uint64
		exact     bool
	}{{15, 105, true}, {10, 100, true}, {3, 100, true}, {-1, 100, false}} {
		p, exact := r.resume(c.committed)
		assert.Equal(t, c.next, p.Next, "committed %d", c.committed)
		assert.Equal(t, c.exact, exact)
	}
	r.Clean = true
	p, exact := r.resume(-1)
	assert.True(t, exact)
	assert.EqualValues(t, 100, p.Next)
	require.NoError(t, writeFile(path, "{"))
	_, err = loadRecord(path)
	assert.ErrorContains(t, err, "remove it to start without deduplication state")
}

// TestDecodeFrame: what the in side refuses, with why.
func TestDecodeFrame(t *testing.T) {
	id := ring.Identity{Fingerprint: 0x1b43e6c9e14a376c, TypeID: 1, Size: 64, Align: 8}
	e := newEncoder("s", "ticks", 99, id, "market.Message", 4)
	e.reset()
	data := make([]byte, 128)
	m := e.encode(0, data, 10, 2, 8)
	assert.Equal(t, nats.Header{HdrMsgID: {"ticks:99:10+2"}, HdrSeq: {"ring=ticks epoch=99 seq=10 count=2 window=8"},
		HdrMessage: {"fingerprint=0x1b43e6c9e14a376c type=1 size=64 align=8 name=market.Message"}}, m.Header)
	var f frame
	require.NoError(t, decodeFrame(&f, m.Header, m.Data))
	assert.Equal(t, frame{ring: "ticks", epoch: 99, first: 10, count: 2, window: 8, id: id, name: "market.Message", data: data}, f)
	assert.ErrorContains(t, decodeFrame(&f, m.Header, data[:100]), "100 data bytes, want count 2 x size 64 = 128")
	assert.ErrorContains(t, decodeFrame(&f, nats.Header{}, nil), "not a tachyon-bridge message")
	bad := func(key, v string) error {
		h := nats.Header{}
		for k, v := range m.Header {
			h[k] = slices.Clone(v)
		}
		h.Set(key, v)
		return decodeFrame(&f, h, data)
	}
	assert.ErrorContains(t, bad(HdrMessage, "fingerprint=12 type=1 size=64 align=8"), `Tachyon-Message fingerprint="12" is not 0x-prefixed hex`)
	assert.ErrorContains(t, bad(HdrMessage, "fingerprint=0x1 size=64 align=8"), "needs fingerprint, type, size and align")
	assert.ErrorContains(t, bad(HdrSeq, "ring=ticks epoch=99 seq=10 count=2 window=11"), "window 11 is after seq 10")
	assert.ErrorContains(t, bad(HdrSeq, "ring=ticks seq=10 count=2 window=8"), "needs ring, epoch and seq")
	assert.ErrorContains(t, bad(HdrSeq, "ring=ticks epoch=x seq=10"), `Tachyon-Seq epoch="x" is not a number`)

	c := e.closedMsg("s", 50)
	require.NoError(t, decodeFrame(&f, c.Header, nil))
	assert.True(t, f.closed)
	assert.EqualValues(t, 50, f.first)
	assert.Equal(t, "ticks:99:closed", c.Header.Get(HdrMsgID))
}

// TestEncoderAllocs: filling a window's NATS messages allocates nothing
// (the ring side of a publish; nats.go's own work is measured in make bench).
func TestEncoderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	id := ring.Identity{Fingerprint: 1, TypeID: 1, Size: 64, Align: 8}
	e := newEncoder("s", "ticks", 99, id, "", 256)
	data := make([]byte, 64*256)
	seq := uint64(1 << 40)
	allocs := testing.AllocsPerRun(1000, func() {
		e.reset()
		for i := range 256 {
			e.encode(i, data[i*64:(i+1)*64], seq, 1, seq)
			seq++
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, "ticks:99:"+itoa(seq-1)+"+1", e.msgs[255].Header.Get(HdrMsgID))
	assert.Equal(t, "ring=ticks epoch=99 seq="+itoa(seq-256)+" count=1 window="+itoa(seq-256), e.msgs[0].Header.Get(HdrSeq))
}

// TestDecodeAllocs: decoding a frame allocates nothing.
func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := newEncoder("s", "ticks", 99, ring.Identity{Fingerprint: 1, TypeID: 1, Size: 64, Align: 8}, "market.Message", 1)
	e.reset()
	m := e.encode(0, make([]byte, 64), 10, 1, 10)
	var f frame
	allocs := testing.AllocsPerRun(1000, func() {
		if err := decodeFrame(&f, m.Header, m.Data); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

// TestSubjects: stream subject filters.
func TestSubjects(t *testing.T) {
	for _, c := range []struct {
		sub, filter string
		ok          bool
	}{
		{"tachyon.market.Message", "tachyon.>", true},
		{"tachyon.market.Message", "tachyon.*.Message", true},
		{"tachyon.market.Message", "tachyon.market.Message", true},
		{"tachyon.market.Message", "tachyon.*", false},
		{"tachyon", "tachyon.>", false},
		{">", "tachyon.>", false},
		{"tachyon.>", "tachyon.>", true},
		{"tachyon.*", "tachyon.>", true},
		{"tachyon.>", "tachyon.*", false},
		{">", ">", true},
	} {
		assert.Equal(t, c.ok, subjectWithin(c.sub, c.filter), "%s in %s", c.sub, c.filter)
	}
	assert.Equal(t, "tachyon.market.Message", DefaultSubject("market.Message", 1))
	assert.Equal(t, "tachyon.id.7", DefaultSubject("", 7))
}

// TestLoadLayout: identities from `tachyon-gen layout --json` documents.
func TestLoadLayout(t *testing.T) {
	msgs, err := LoadLayout("../../golden/message.layout.json")
	require.NoError(t, err)
	m, err := FindMessage(msgs, "Message", "x")
	require.NoError(t, err)
	assert.Equal(t, Message{Name: "market.Message", Identity: ring.Identity{Fingerprint: 0x1b43e6c9e14a376c, TypeID: 1, Size: 64, Align: 8}}, m)
	_, err = FindMessage(msgs, "Quote", "x")
	assert.ErrorContains(t, err, `x: no message "Quote" (it has market.Message)`)
	got, ok := MessageByFingerprint(msgs, 0x1b43e6c9e14a376c)
	assert.True(t, ok)
	assert.Equal(t, m, got)
	dir := t.TempDir()
	require.NoError(t, writeFile(filepath.Join(dir, "bad.json"), "{"))
	_, err = LoadLayout(filepath.Join(dir, "bad.json"))
	assert.ErrorContains(t, err, "not a layout document (tachyon-gen layout --json)")
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
