package ring

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkGeometry measures what ABI v2's two choices cost, message size by
// message size: the slot layout (packed, as in v1, or one or more whole
// cache lines per slot) and the fences (strong: a locked instruction on the
// publish and release paths; asymmetric: none there, a membarrier when a
// side parks). Each case is a round trip between two processes pinned to
// CPUs 0 and 1 (Claim/Commit, the echo's Borrow/Claim/Commit, Recv back) and
// a one-way stream (Claim/Commit filling the whole message, batch 64, into
// a BorrowBatch sink that checks every seq). docs/DECISIONS.md records a
// run; `make bench-geometry` runs it.
//
//	go test -run '^$' -bench Geometry -benchtime 200000x ./runtime/ring
func BenchmarkGeometry(b *testing.B) {
	for _, size := range geoSizes {
		for _, layout := range []SlotLayout{SlotPacked, SlotLine} {
			for _, fences := range []Fences{FencesStrong, FencesAsymmetric} {
				if fences == FencesAsymmetric && !membarrierRegistered() {
					continue
				}
				name := fmt.Sprintf("size=%d/%s/%s", size, layout, fences)
				b.Run(name+"/rtt", func(b *testing.B) { geoRTT(b, size, layout, fences) })
				b.Run(name+"/stream", func(b *testing.B) { geoStream(b, size, layout, fences) })
			}
		}
	}
}

var geoSizes = []int{16, 32, 56, 64, 120, 256}

// Messages of each measured size: a seq and filler, as tachyon-gen would
// emit them.
type (
	geo16  struct{ Seq, Fill uint64 }
	geo32  struct{ Fill [4]uint64 }
	geo56  struct{ Fill [7]uint64 }
	geo64  struct{ Fill [8]uint64 }
	geo120 struct{ Fill [15]uint64 }
	geo256 struct{ Fill [32]uint64 }
)

func (geo16) TachyonFingerprint() uint64  { return 0x6e00_0000_0000_0016 }
func (geo16) TachyonTypeID() uint32       { return 16 }
func (geo16) TachyonSize() int            { return 16 }
func (geo16) TachyonAlign() int           { return 8 }
func (geo32) TachyonFingerprint() uint64  { return 0x6e00_0000_0000_0032 }
func (geo32) TachyonTypeID() uint32       { return 32 }
func (geo32) TachyonSize() int            { return 32 }
func (geo32) TachyonAlign() int           { return 8 }
func (geo56) TachyonFingerprint() uint64  { return 0x6e00_0000_0000_0056 }
func (geo56) TachyonTypeID() uint32       { return 56 }
func (geo56) TachyonSize() int            { return 56 }
func (geo56) TachyonAlign() int           { return 8 }
func (geo64) TachyonFingerprint() uint64  { return 0x6e00_0000_0000_0064 }
func (geo64) TachyonTypeID() uint32       { return 64 }
func (geo64) TachyonSize() int            { return 64 }
func (geo64) TachyonAlign() int           { return 8 }
func (geo120) TachyonFingerprint() uint64 { return 0x6e00_0000_0000_0120 }
func (geo120) TachyonTypeID() uint32      { return 120 }
func (geo120) TachyonSize() int           { return 120 }
func (geo120) TachyonAlign() int          { return 8 }
func (geo256) TachyonFingerprint() uint64 { return 0x6e00_0000_0000_0256 }
func (geo256) TachyonTypeID() uint32      { return 256 }
func (geo256) TachyonSize() int           { return 256 }
func (geo256) TachyonAlign() int          { return 8 }

func (m *geo16) set(seq uint64)  { m.Seq, m.Fill = seq, ^seq }
func (m *geo16) seq() uint64     { return m.Seq }
func (m *geo32) set(seq uint64)  { fillWords(m.Fill[:], seq) }
func (m *geo32) seq() uint64     { return m.Fill[0] }
func (m *geo56) set(seq uint64)  { fillWords(m.Fill[:], seq) }
func (m *geo56) seq() uint64     { return m.Fill[0] }
func (m *geo64) set(seq uint64)  { fillWords(m.Fill[:], seq) }
func (m *geo64) seq() uint64     { return m.Fill[0] }
func (m *geo120) set(seq uint64) { fillWords(m.Fill[:], seq) }
func (m *geo120) seq() uint64    { return m.Fill[0] }
func (m *geo256) set(seq uint64) { fillWords(m.Fill[:], seq) }
func (m *geo256) seq() uint64    { return m.Fill[0] }

func fillWords(w []uint64, seq uint64) {
	w[0] = seq
	for i := 1; i < len(w); i++ {
		w[i] = seq ^ uint64(i)
	}
}

// geoPtr is the pointer type of a measured message.
type geoPtr[T any] interface {
	*T
	set(uint64)
	seq() uint64
}

func geoRTT(b *testing.B, size int, layout SlotLayout, fences Fences) {
	switch size {
	case 16:
		geoRTTOf[geo16](b, size, layout, fences)
	case 32:
		geoRTTOf[geo32](b, size, layout, fences)
	case 56:
		geoRTTOf[geo56](b, size, layout, fences)
	case 64:
		geoRTTOf[geo64](b, size, layout, fences)
	case 120:
		geoRTTOf[geo120](b, size, layout, fences)
	case 256:
		geoRTTOf[geo256](b, size, layout, fences)
	}
}

func geoStream(b *testing.B, size int, layout SlotLayout, fences Fences) {
	switch size {
	case 16:
		geoStreamOf[geo16](b, size, layout, fences)
	case 32:
		geoStreamOf[geo32](b, size, layout, fences)
	case 56:
		geoStreamOf[geo56](b, size, layout, fences)
	case 64:
		geoStreamOf[geo64](b, size, layout, fences)
	case 120:
		geoStreamOf[geo120](b, size, layout, fences)
	case 256:
		geoStreamOf[geo256](b, size, layout, fences)
	}
}

func geoEnv(size int, layout SlotLayout, fences Fences, ring, pong string) map[string]string {
	return map[string]string{"RING": ring, "PONG": pong, "SIZE": strconv.Itoa(size),
		"LAYOUT": strconv.Itoa(int(layout)), "FENCES": strconv.Itoa(int(fences))}
}

func geoRTTOf[T Layout, P geoPtr[T]](b *testing.B, size int, layout SlotLayout, fences Fences) {
	ping, pong := ringName(b), ringName(b)
	pub, err := Create[T](ping, Options{Capacity: 64, SlotLayout: layout, Fences: fences})
	require.NoError(b, err)
	defer pub.Close()
	c := startChild(b, "geo-echo", geoEnv(size, layout, fences, ping, pong))
	c.expect(b, "ready")
	sub, err := Attach[T](pong, SubscribeOptions{})
	require.NoError(b, err)
	defer sub.Close()
	defer pin(0)()
	ctx := context.Background()
	rtts := make([]time.Duration, 0, b.N)
	var m T
	for i := 0; i < b.N+b.N/10; i++ { // the first tenth warms up
		t0 := time.Now()
		p, err := pub.Claim()
		if err != nil {
			b.Fatal(err)
		}
		P(p).set(uint64(i))
		_ = pub.Commit()
		if err := sub.Recv(ctx, &m); err != nil || P(&m).seq() != uint64(i) {
			b.Fatal(err, P(&m).seq())
		}
		if i >= b.N/10 {
			rtts = append(rtts, time.Since(t0))
		}
	}
	reportRTT(b, rtts)
	require.NoError(b, pub.Close())
	_ = c.cmd.Wait()
}

func geoStreamOf[T Layout, P geoPtr[T]](b *testing.B, size int, layout SlotLayout, fences Fences) {
	name := ringName(b)
	pub, err := Create[T](name, Options{Capacity: 4096, Batch: 64, SlotLayout: layout, Fences: fences})
	require.NoError(b, err)
	c := startChild(b, "geo-sink", geoEnv(size, layout, fences, name, ""))
	c.expect(b, "ready")
	defer pin(0)()
	n := max(b.N, 1_000_000)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		p, err := pub.Claim()
		if err != nil {
			b.Fatal(err)
		}
		P(p).set(uint64(i))
		_ = pub.Commit()
	}
	require.NoError(b, pub.Close())
	got, _ := strconv.ParseUint(c.line(b), 10, 64)
	el := time.Since(t0)
	require.Equal(b, uint64(n), got)
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
}

// runGeoChild runs the far ends of BenchmarkGeometry.
func runGeoChild(role string) (int, bool) {
	if role != "geo-echo" && role != "geo-sink" {
		return 0, false
	}
	var err error
	switch envInt("SIZE") {
	case 16:
		err = geoChild[geo16](role)
	case 32:
		err = geoChild[geo32](role)
	case 56:
		err = geoChild[geo56](role)
	case 64:
		err = geoChild[geo64](role)
	case 120:
		err = geoChild[geo120](role)
	case 256:
		err = geoChild[geo256](role)
	default:
		err = fmt.Errorf("size %d", envInt("SIZE"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 2, true
	}
	return 0, true
}

func geoChild[T Layout, P geoPtr[T]](role string) error {
	sub, err := Attach[T](os.Getenv("RING"), SubscribeOptions{})
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx := context.Background()
	if role == "geo-sink" {
		pin(1)
		fmt.Println("ready")
		var n uint64
		for {
			bt, err := sub.BorrowBatch(ctx, 256)
			if err != nil {
				break
			}
			for i := 0; i < bt.Len(); i++ {
				if P(bt.At(i)).seq() != n {
					return fmt.Errorf("seq %d, want %d", P(bt.At(i)).seq(), n)
				}
				n++
			}
			_ = sub.Release()
		}
		fmt.Println(n)
		return nil
	}
	pub, err := Create[T](os.Getenv("PONG"), Options{Capacity: 64, SlotLayout: SlotLayout(envInt("LAYOUT")), Fences: Fences(envInt("FENCES"))})
	if err != nil {
		return err
	}
	defer pub.Close()
	pin(1)
	fmt.Println("ready")
	for {
		m, err := sub.Borrow(ctx)
		if err != nil {
			return nil
		}
		p, err := pub.Claim()
		if err != nil {
			return err
		}
		*p = *m
		_ = sub.Release()
		_ = pub.Commit()
	}
}
