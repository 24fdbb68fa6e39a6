package ring

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tickIdentity(t *testing.T) Identity {
	id, err := IdentityOf[Tick]()
	require.NoError(t, err)
	require.Equal(t, Identity{Fingerprint: tickFingerprint, TypeID: 1, Size: 64, Align: 8}, id)
	return id
}

// TestRawTypedInterop: raw publisher -> typed and raw subscribers, then a
// typed publisher -> raw subscriber: the bytes are the typed values' bytes,
// and RawBatch.Seq numbers them from 0.
func TestRawTypedInterop(t *testing.T) {
	id := tickIdentity(t)
	name := ringName(t)
	pub, err := CreateRaw(name, id, Options{Capacity: 16})
	require.NoError(t, err)
	defer pub.Close()
	assert.Equal(t, id, pub.Identity())
	typed, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer typed.Close()
	raw, err := AttachAny(name, SubscribeOptions{})
	require.NoError(t, err)
	defer raw.Close()
	assert.Equal(t, id, raw.Identity())
	assert.Equal(t, pub.Created(), raw.Created())
	assert.Equal(t, 16, raw.Capacity())

	ctx := context.Background()
	const n = 40 // more than the ring holds: wraps
	next := uint64(0)
	for seq := range uint64(n) {
		if seq%2 == 0 {
			m, err := pub.Claim()
			require.NoError(t, err)
			require.Len(t, m, 64)
			binary.LittleEndian.PutUint64(m, seq)
			m[63] = byte(seq)
			require.NoError(t, pub.Commit())
		} else {
			var b [64]byte
			binary.LittleEndian.PutUint64(b[:], seq)
			b[63] = byte(seq)
			require.NoError(t, pub.Publish(b[:]))
		}
		var tk Tick
		require.NoError(t, typed.Recv(ctx, &tk))
		assert.Equal(t, seq, tk.Seq)
		assert.Equal(t, byte(seq), tk.Payload[47])
		if seq%4 == 3 { // read in batches of up to 4
			for next <= seq {
				require.Equal(t, next, raw.Seq())
				b, err := raw.BorrowBatch(ctx, 4)
				require.NoError(t, err)
				require.Equal(t, next, b.Seq())
				for i := range b.Len() {
					m := b.At(i)
					assert.Equal(t, next, binary.LittleEndian.Uint64(m))
					assert.Equal(t, byte(next), m[63])
					next++
				}
				require.NoError(t, raw.Release())
			}
		}
	}
	assert.Equal(t, uint64(n), pub.Published())
	assert.Equal(t, uint64(n), raw.Received())
	assert.Zero(t, raw.Dropped())
	_, err = raw.TryBorrowBatch(4)
	assert.ErrorIs(t, err, ErrEmpty)
	assert.Panics(t, func() { RawBatch{n: 1}.At(1) })

	// A typed publisher, a raw subscriber checked against T's identity.
	name2 := ringName(t)
	tp, err := Create[Tick](name2, Options{Capacity: 8})
	require.NoError(t, err)
	defer tp.Close()
	rs, err := AttachRaw(name2, id, SubscribeOptions{})
	require.NoError(t, err)
	defer rs.Close()
	require.NoError(t, tp.Publish(&Tick{Seq: 7, TimestampNs: 9}))
	require.NoError(t, tp.Close())
	b, err := rs.BorrowBatch(ctx, 8)
	require.NoError(t, err)
	require.Equal(t, 1, b.Len())
	got := *(*Tick)(unsafe.Pointer(unsafe.SliceData(b.At(0))))
	assert.Equal(t, Tick{Seq: 7, TimestampNs: 9}, got)
	require.NoError(t, rs.Release())
	_, err = rs.BorrowBatch(ctx, 8)
	assert.ErrorIs(t, err, ErrClosed)
}

// TestRawRefusals: a raw subscriber with another identity is refused with
// the field and both values; bad identities and message lengths are
// errors, never a crash.
func TestRawRefusals(t *testing.T) {
	id := tickIdentity(t)
	name := ringName(t)
	pub, err := CreateRaw(name, id, Options{Capacity: 8})
	require.NoError(t, err)
	defer pub.Close()

	other := id
	other.Fingerprint = 0xdead_beef
	_, err = AttachRaw(name, other, SubscribeOptions{})
	require.ErrorIs(t, err, ErrMismatch)
	assert.Contains(t, err.Error(), name)
	assert.Contains(t, err.Error(), "fingerprint 0x7ac49e0f1d2b3c4d, want 0xdeadbeef")
	other = id
	other.Size = 128
	_, err = AttachRaw(name, other, SubscribeOptions{})
	assert.ErrorContains(t, err, "message size 0x40, want 0x80")
	_, err = Attach[TickV2](name, SubscribeOptions{})
	assert.ErrorIs(t, err, ErrMismatch, "a typed subscriber checks a raw ring too")
	assert.ErrorContains(t, id.Compare("bridge", "ticks", other), `bridge "ticks": ring: message type mismatch: message size 0x80, want 0x40`)
	assert.NoError(t, id.Compare("bridge", "ticks", id))

	err = pub.Publish(make([]byte, 63))
	require.ErrorIs(t, err, ErrMismatch)
	assert.ErrorContains(t, err, "message of 63 bytes, ring messages are 64")

	for _, bad := range []Identity{{Size: 0, Align: 8}, {Size: 64, Align: 0}, {Size: 64, Align: 3}, {Size: 12, Align: 8}} {
		_, err := CreateRaw(ringName(t), bad, Options{})
		assert.ErrorIs(t, err, ErrInvalidOptions, "%+v", bad)
	}
	_, err = CreateRaw("bad/name", id, Options{})
	assert.ErrorIs(t, err, ErrInvalidName)
	_, err = AttachAny(ringName(t), SubscribeOptions{})
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = AttachAny(name, SubscribeOptions{MaxLag: -1})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}

// TestRawNamedResume: a named raw subscriber that closes resumes at its
// position with its counters (StartLast), so its Seq continues.
func TestRawNamedResume(t *testing.T) {
	id := tickIdentity(t)
	name := ringName(t)
	pub, err := CreateRaw(name, id, Options{Capacity: 64})
	require.NoError(t, err)
	defer pub.Close()
	opts := SubscribeOptions{Name: "bridge-out", Start: StartLast}
	sub, err := AttachRaw(name, id, opts)
	require.NoError(t, err)
	var m [64]byte
	for range 10 {
		require.NoError(t, pub.Publish(m[:]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := sub.BorrowBatch(ctx, 6)
	require.NoError(t, err)
	require.Equal(t, 6, b.Len())
	require.NoError(t, sub.Release())
	// A borrow that is not released is not consumed: a restart reads it again.
	_, err = sub.BorrowBatch(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, sub.Close())

	sub, err = AttachRaw(name, id, opts)
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, uint64(6), sub.Seq())
	assert.Equal(t, uint64(6), sub.Received())
	assert.Equal(t, uint64(4), sub.Lag())
	b, err = sub.BorrowBatch(ctx, 100)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), b.Seq())
	assert.Equal(t, 4, b.Len())
	require.NoError(t, sub.Release())
	assert.Zero(t, sub.Dropped())
}

// TestRawAllocs: 0 allocations per message on the raw paths.
func TestRawAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	id := tickIdentity(t)
	name := ringName(t)
	pub, err := CreateRaw(name, id, Options{Capacity: 1024, Policy: DropOldest})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := AttachAny(name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	ctx := context.Background()
	var m [64]byte
	allocs := testing.AllocsPerRun(10000, func() {
		p, _ := pub.Claim()
		p[0]++
		_ = pub.Commit()
		_ = pub.Publish(m[:])
		b, _ := sub.BorrowBatch(ctx, 8)
		_ = b.At(b.Len() - 1)
		_ = sub.Release()
	})
	assert.Zero(t, allocs)
}

// TestRawHeaderLikeTyped: CreateRaw with a type's identity writes the header
// Create[T] writes, for every slot layout and fence mode (newRawHeader and
// newHeader must not drift apart).
func TestRawHeaderLikeTyped(t *testing.T) {
	tick := tickIdentity(t)
	book, err := IdentityOf[Book]()
	require.NoError(t, err)
	for _, opts := range []Options{
		{},
		{Capacity: 64, MaxSubscribers: 3, Policy: DropOldest, Batch: 8, LivenessTimeout: time.Second},
		{SlotLayout: SlotLine, Fences: FencesStrong},
		{SlotLayout: SlotPacked, Policy: DropNewest},
	} {
		typed, raw := ringName(t), ringName(t)
		tp, err := Create[Tick](typed, opts)
		require.NoError(t, err)
		rp, err := CreateRaw(raw, tick, opts)
		require.NoError(t, err)
		bp, err := Create[Book](ringName(t), opts)
		require.NoError(t, err)
		bn := bp.Name()
		rb, err := CreateRaw(ringName(t), book, opts)
		require.NoError(t, err)
		for _, pair := range [][2]string{{typed, raw}, {bn, rb.Name()}} {
			a, err := Inspect(pair[0])
			require.NoError(t, err)
			b, err := Inspect(pair[1])
			require.NoError(t, err)
			a.Name, a.Created, b.Name, b.Created = "", time.Time{}, "", time.Time{}
			a.Producer.HeartbeatAge, b.Producer.HeartbeatAge = 0, 0
			assert.Equal(t, a, b, "%+v", opts)
		}
		tp.Close()
		rp.Close()
		bp.Close()
		rb.Close()
	}
}
