package ring

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// Tick is the seed message (examples/Message.tsch), written by hand as
// tachyon-gen would emit it.
type Tick struct {
	Seq         uint64
	TimestampNs uint64
	Payload     [48]byte
}

const tickFingerprint = 0x7ac4_9e0f_1d2b_3c4d

func (Tick) TachyonFingerprint() uint64 { return tickFingerprint }
func (Tick) TachyonTypeID() uint32      { return 1 }
func (Tick) TachyonSize() int           { return 64 }
func (Tick) TachyonAlign() int          { return 8 }

// Book is an @align(64) message: 64-byte slots aligned to 64 in the segment.
type Book struct {
	Seq    uint64
	Levels [6]uint64
	Check  uint64
}

const bookFingerprint = 0xb00c_0000_0000_0002

func (Book) TachyonFingerprint() uint64 { return bookFingerprint }
func (Book) TachyonTypeID() uint32      { return 2 }
func (Book) TachyonSize() int           { return 64 }
func (Book) TachyonAlign() int          { return 64 }

// Small is a 16-byte message: with its stamp, one cache line (line slots).
type Small struct {
	Seq   uint64
	Value uint64
}

const smallFingerprint = 0x5a11_0000_0000_0003

func (Small) TachyonFingerprint() uint64 { return smallFingerprint }
func (Small) TachyonTypeID() uint32      { return 3 }
func (Small) TachyonSize() int           { return 16 }
func (Small) TachyonAlign() int          { return 8 }

// TickV2 has Tick's size and id but another layout (a reordered field).
type TickV2 struct {
	TimestampNs uint64
	Seq         uint64
	Payload     [48]byte
}

func (TickV2) TachyonFingerprint() uint64 { return 0x7ac4_9e0f_1d2b_ffff }
func (TickV2) TachyonTypeID() uint32      { return 1 }
func (TickV2) TachyonSize() int           { return 64 }
func (TickV2) TachyonAlign() int          { return 8 }

// mix is splitmix64's finaliser: every payload word depends on the sequence,
// so a torn message (words of two messages) cannot pass verify.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (m *Tick) fill(seq uint64) {
	m.Seq = seq
	var sum uint64
	for k := 0; k < 6; k++ {
		w := mix(seq*8 + uint64(k))
		sum ^= w
		putLE64(m.Payload[8*k:], w)
	}
	m.TimestampNs = sum
}

// intact reports whether m is exactly the message fill(m.Seq) wrote.
func (m *Tick) intact() bool {
	var sum uint64
	for k := 0; k < 6; k++ {
		w := mix(m.Seq*8 + uint64(k))
		sum ^= w
		if le64(m.Payload[8*k:]) != w {
			return false
		}
	}
	return m.TimestampNs == sum
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// testPrefix starts every segment name the tests create; TestMain checks
// that none is left in /dev/shm.
var testPrefix = fmt.Sprintf("tachyon-test-%d-", os.Getpid())

var nameSeq atomic.Uint64

// ringName returns a fresh segment name and removes any leftover at cleanup.
func ringName(t testing.TB) string {
	name := fmt.Sprintf("%s%d", testPrefix, nameSeq.Add(1))
	t.Cleanup(func() { _ = unlinkSegment(name) })
	return name
}
