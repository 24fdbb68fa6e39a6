//go:build linux

package ring

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sealedRing creates a sealed ring served on a socket in a temporary
// directory and returns the publisher and the socket path.
func sealedRing(t *testing.T, opts Options) (*Publisher[Tick], string) {
	t.Helper()
	name := ringName(t)
	pub, err := CreateSealed[Tick](name, opts)
	require.NoError(t, err)
	t.Cleanup(func() { pub.Close() })
	sock := filepath.Join(t.TempDir(), "ring.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- pub.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		assert.NoError(t, <-done)
	})
	_, err = os.Stat(filepath.Join(ShmDir, name))
	require.True(t, os.IsNotExist(err), "a sealed ring has no name in %s", ShmDir)
	return pub, sock
}

// TestSealedStream: a subscriber in another process receives the memfd over
// the socket and reads a sequence-verified stream; while it lives, its
// liveness lock is its own (the descriptor was reopened, not shared).
func TestSealedStream(t *testing.T) {
	pub, sock := sealedRing(t, Options{Capacity: 64, Policy: Block})
	c := startChild(t, "sealed-sub", map[string]string{"SOCK": sock, "MODE": "batch"})
	c.expect(t, "ready")
	st, err := statsOf(pub.s)
	require.NoError(t, err)
	require.Len(t, st.Subscribers, 1)
	assert.True(t, st.Subscribers[0].Alive, "the subscriber's lock must be held by its own open file description")
	n := uint64(200_000)
	var m Tick
	for seq := uint64(0); seq < n; seq++ {
		m.fill(seq)
		require.NoError(t, pub.Publish(&m))
	}
	require.NoError(t, pub.Close())
	assertResult(t, "sealed subscriber", c.result(t), n, true)
}

// TestSealedTruncation: nobody can shrink or grow a sealed segment, not
// even a subscriber holding a writable descriptor.
func TestSealedTruncation(t *testing.T) {
	pub, sock := sealedRing(t, Options{Capacity: 64})
	sub, err := DialSealed[Tick](sock, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	fd := sub.s.host.(*fileHost).fd
	assert.ErrorIs(t, unix.Ftruncate(fd, 0), unix.EPERM)
	assert.ErrorIs(t, unix.Ftruncate(fd, int64(pub.s.hdr.geo.segSize)*2), unix.EPERM)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	assert.ErrorIs(t, err, unix.EPERM, "the seals themselves are sealed")
	var m Tick
	m.fill(7)
	require.NoError(t, pub.Publish(&m))
	pub.Flush()
	require.NoError(t, sub.TryRecv(&m))
	assert.Equal(t, uint64(7), m.Seq)
}

// TestSealedMismatch: a subscriber of another type is refused with both
// fingerprints, and the server goes on serving.
func TestSealedMismatch(t *testing.T) {
	_, sock := sealedRing(t, Options{Capacity: 64})
	_, err := DialSealed[Book](sock, SubscribeOptions{})
	require.ErrorIs(t, err, ErrMismatch)
	assert.Contains(t, err.Error(), "fingerprint "+hex(tickFingerprint)+", want "+hex(bookFingerprint))
	sub, err := DialSealed[Tick](sock, SubscribeOptions{})
	require.NoError(t, err)
	require.NoError(t, sub.Close())
}

func hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

// TestSealedRefusesUnsealed: a server that hands over a descriptor without
// the seals (a peer that could truncate it) is refused.
func TestSealedRefusesUnsealed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(fd)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, handshakeSize)
		_, _ = readConn(conn, buf)
		id, _ := identityOf[Tick]()
		_, _, _ = conn.WriteMsgUnix(encodeHandshake(magicOkay, id), unix.UnixRights(fd), nil)
	}()
	_, err = DialSealed[Tick](sock, SubscribeOptions{})
	require.ErrorIs(t, err, ErrInsecure)
	assert.Contains(t, err.Error(), "seals")
}
