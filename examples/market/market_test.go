package market_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/market"
)

func TestSeedMessageWireBytes(t *testing.T) {
	m := market.Message{Seq: 0x0102030405060708, TimestampNs: 42}
	copy(m.Payload[:], "hello")
	b, err := m.MarshalBinary()
	require.NoError(t, err)
	require.Len(t, b, market.MessageSize)
	assert.Equal(t, "0807060504030201"+"2a00000000000000"+hex.EncodeToString([]byte("hello")), hex.EncodeToString(b[:21]))

	var back market.Message
	require.NoError(t, back.UnmarshalBinary(b))
	assert.Equal(t, m, back)
	assert.EqualError(t, back.UnmarshalBinary(b[:63]), "market.Message: UnmarshalBinary: got 63 bytes, want 64")

	view, err := market.MessageFromBytes(b)
	require.NoError(t, err)
	assert.Equal(t, m.Seq, view.Seq)
	view.Seq = 7 // writes through to b
	assert.Equal(t, byte(7), b[0])
}

func TestBookHelpers(t *testing.T) {
	var book market.Book
	book.SetVenue("XNASDAQ-TOO-LONG")
	assert.Equal(t, "XNASDAQ-", book.VenueString())
	book.SetVenue("XNAS")
	assert.Equal(t, "XNAS", book.VenueString())
	assert.Equal(t, [8]byte{'X', 'N', 'A', 'S'}, book.Venue)

	book.Caps.Set(market.CapsSnapshot | market.CapsImplied)
	assert.True(t, book.Caps.Has(market.CapsSnapshot))
	assert.False(t, book.Caps.Has(market.CapsLast))
	assert.Equal(t, "SNAPSHOT|IMPLIED", book.Caps.String())
	book.Caps.Clear(market.CapsImplied)
	assert.Equal(t, "SNAPSHOT", book.Caps.String())
	assert.Equal(t, "SNAPSHOT|0x4", (book.Caps | 4).String())

	book.Status = market.StatusHalted
	assert.Equal(t, "HALTED", book.Status.String())
	assert.Equal(t, "Status(9)", market.Status(9).String())
	assert.False(t, market.Status(9).IsValid())
	assert.Equal(t, "ASK", market.SideAsk.String())

	book.Bids[0] = market.Level{Price: -5, Qty: 3, Side: market.SideBid}
	b, err := book.MarshalBinary()
	require.NoError(t, err)
	assert.Len(t, b, 192)
	var back market.Book
	require.NoError(t, back.UnmarshalBinary(b))
	assert.Equal(t, book, back)
}

func TestRingHook(t *testing.T) {
	var m market.Message
	assert.Equal(t, market.MessageFingerprint, m.TachyonFingerprint())
	assert.Equal(t, uint32(1), m.TachyonTypeID())
	assert.Equal(t, 64, m.TachyonSize())
	assert.Equal(t, 8, m.TachyonAlign())
	assert.Equal(t, 64, market.Book{}.TachyonAlign())
}

// The zero-copy view refuses a misaligned buffer rather than handing out a
// pointer the other languages would disagree about.
func TestViewAlignment(t *testing.T) {
	buf := make([]byte, 2*market.BookSize+64)
	off := 0
	for (uintptr(off)+addr(buf))%market.BookAlign != 0 {
		off++
	}
	_, err := market.BookFromBytes(buf[off:])
	require.NoError(t, err)
	_, err = market.BookFromBytes(buf[off+8:])
	require.ErrorContains(t, err, "misaligned")
	_, err = market.BookFromBytes(buf[off : off+10])
	require.ErrorContains(t, err, "want at least 192")
}

var allocSink []byte

func BenchmarkAppendBinary(b *testing.B) {
	m := market.Message{Seq: 1}
	buf := make([]byte, 0, market.MessageSize)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendBinary(buf[:0])
	}
	allocSink = buf
}

func BenchmarkUnmarshalBinary(b *testing.B) {
	m := market.Message{Seq: 1}
	wire, _ := m.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.UnmarshalBinary(wire)
	}
}

func TestMarshalAllocatesNothing(t *testing.T) {
	m := market.Message{Seq: 1}
	buf := make([]byte, 0, market.MessageSize)
	wire, _ := m.MarshalBinary()
	allocs := testing.AllocsPerRun(1000, func() {
		buf, _ = m.AppendBinary(buf[:0])
		_ = m.UnmarshalBinary(wire)
	})
	assert.Zero(t, allocs)
}
