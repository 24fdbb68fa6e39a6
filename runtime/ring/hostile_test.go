package ring

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The tests in this file are issue 14's findings 1-3 and the named-mode
// truncation guard: what another process — of the same uid, or any uid
// that can read the segment — can do with locks, names and sizes must
// never hang or kill us. Each failed on ABI v1.

// holdLocksLikeAReader takes, on its own read-only descriptor, every lock a
// reader of the segment can take: the registry flock and an OFD read lock
// on every 128-byte line no live owner write-locks. It is what a hostile
// process of the same uid, or a read-only other uid, can do.
func holdLocksLikeAReader(t *testing.T, name string) {
	fd, err := unix.Open(shmPath(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	require.NoError(t, readLockEverything(fd))
}

// readLockEverything takes the registry flock and a read lock on every line
// of the segment that it can.
func readLockEverything(fd int) error {
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	for off := int64(0); off < st.Size; off += LineSize {
		lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: off, Len: LineSize}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil && err != unix.EAGAIN {
			return err
		}
	}
	return nil
}

// otherUserBinary copies the test binary where the user nobody can run it.
func otherUserBinary(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "ring.test")
	data, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	dir := filepath.Dir(bin)
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	return bin
}

// TestLocksCannotStallProducer (finding 1): a Block publisher waiting on a
// stalled subscriber evicts it after the liveness timeout even while
// another process holds the registry lock and read locks over the whole
// segment — a process of the same uid, or (as root can arrange) the user
// nobody with read access only. On ABI v1 eviction needed the registry
// lock, gave up after 50 ms, and the publisher waited until its own
// timeout.
func TestLocksCannotStallProducer(t *testing.T) {
	const liveness = 300 * time.Millisecond
	for _, who := range []string{"same-uid", "read-only-other-uid"} {
		t.Run(who, func(t *testing.T) {
			if who == "read-only-other-uid" && os.Geteuid() != 0 {
				t.Skip("needs root to run a child as the user nobody")
			}
			name := ringName(t)
			old := unix.Umask(0)
			pub, err := Create[Tick](name, Options{Capacity: 8, LivenessTimeout: liveness, Timeout: 10 * time.Second, Mode: 0o644})
			unix.Umask(old)
			require.NoError(t, err)
			defer pub.Close()
			stalled, err := Attach[Tick](name, SubscribeOptions{})
			require.NoError(t, err)
			defer stalled.Close()
			if who == "same-uid" {
				holdLocksLikeAReader(t, name)
			} else {
				cmd := exec.Command(otherUserBinary(t), "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"=lock-squatter", "RING="+name)
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				out, err := cmd.StdoutPipe()
				require.NoError(t, err)
				cmd.Stderr = os.Stderr
				require.NoError(t, cmd.Start())
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				line := make([]byte, 8)
				_, err = io.ReadFull(out, line)
				require.NoError(t, err)
				require.Equal(t, "holding\n", string(line))
			}
			publishTicks(t, pub, 8, true) // the ring is full now
			t0 := time.Now()
			var m Tick
			m.fill(8)
			require.NoError(t, pub.Publish(&m), "the publisher must evict the stalled subscriber, whatever locks others hold")
			waited := time.Since(t0)
			assert.Equal(t, uint64(1), pub.p.evictions)
			assert.Less(t, waited, liveness+2*Watchdog, "waited %v for a stalled subscriber (liveness %v)", waited, liveness)
			require.ErrorIs(t, stalled.Recv(context.Background(), &m), ErrEvicted)
		})
	}
}

// TestSpecialFileSquatters (finding 2): a FIFO, a Unix socket or a device
// node at a ring's name is refused at once by create, attach, inspect and
// remove, with an error naming what is there. On ABI v1 the FIFO made the
// read-only open block forever.
func TestSpecialFileSquatters(t *testing.T) {
	kinds := []struct {
		kind, want string
		make       func(path string) (cleanup func(), err error)
	}{
		{"fifo", "a FIFO", func(p string) (func(), error) { return nil, unix.Mkfifo(p, 0o600) }},
		{"socket", "a Unix socket", func(p string) (func(), error) {
			ln, err := net.Listen("unix", p)
			if err != nil {
				return nil, err
			}
			return func() { _ = ln.Close() }, nil
		}},
		{"char-device", "a character device", func(p string) (func(), error) {
			return nil, unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) // like /dev/null
		}},
		{"directory", "a directory", func(p string) (func(), error) { return nil, os.Mkdir(p, 0o700) }},
	}
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			name := ringName(t)
			path := shmPath(name)
			cleanup, err := k.make(path)
			if k.kind == "char-device" && errors.Is(err, unix.EPERM) {
				t.Skip("mknod needs CAP_MKNOD")
			}
			require.NoError(t, err)
			t.Cleanup(func() {
				if cleanup != nil {
					cleanup()
				}
				_ = os.Remove(path)
			})
			ops := map[string]func() error{
				"create": func() error { _, err := Create[Tick](name, Options{}); return err },
				"attach": func() error { _, err := Attach[Tick](name, SubscribeOptions{}); return err },
				"inspect": func() error {
					_, err := Inspect(name)
					return err
				},
				"remove": func() error { return Remove(name) },
			}
			for op, f := range ops {
				done := make(chan error, 1)
				go func() { done <- f() }()
				select {
				case err := <-done:
					require.Error(t, err, op)
					assert.Contains(t, err.Error(), k.want, "%s: %v", op, err)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s hangs on %s at the ring's name", op, k.want)
				}
			}
			_, err = os.Lstat(path)
			assert.NoError(t, err, "nothing may remove what it refused")
		})
	}
}

// TestFakeReadLockOnStaleRing (finding 3): a read lock on a dead
// publisher's liveness range does not make it look alive: the subscriber
// reports "publisher dead" after draining, Inspect says not alive, and
// Remove removes the stale ring. On ABI v1 the probe counted read locks:
// the subscriber waited forever and Remove refused.
func TestFakeReadLockOnStaleRing(t *testing.T) {
	name := ringName(t)
	pub := startChild(t, "pub", map[string]string{"RING": name, "CAP": "64", "N": "10", "HANG": "1"})
	pub.expect(t, "ready")
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	pub.send(t, "go")
	pub.expect(t, "published")
	pub.kill(t)
	// The range is free once the publisher is dead: anyone who can read
	// the file may now read-lock it.
	fd, err := unix.Open(shmPath(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: prodLockStart, Len: prodLockLen}
	require.NoError(t, unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var m Tick
	got := 0
	for err = sub.Recv(ctx, &m); err == nil; err = sub.Recv(ctx, &m) {
		got++
	}
	require.ErrorIs(t, err, ErrPublisherDead)
	assert.Equal(t, 10, got, "everything published is delivered first")
	st, err := Inspect(name)
	require.NoError(t, err)
	assert.False(t, st.Producer.Alive, "a reader's lock is not a live publisher")
	require.NoError(t, Remove(name))
	_, err = os.Lstat(shmPath(name))
	assert.True(t, os.IsNotExist(err), "the stale ring is gone")
}

// TestRemoveIgnoresLocks: a dead ring is removed even while another
// process holds its registry flock; a live one never is.
func TestRemoveIgnoresLocks(t *testing.T) {
	name := ringName(t)
	pub := startChild(t, "owner", map[string]string{"RING": name})
	pub.expect(t, "ready")
	holdLocksLikeAReader(t, name)
	require.ErrorIs(t, Remove(name), ErrInUse)
	pub.kill(t)
	require.NoError(t, Remove(name))
}

// TestTruncatedUnderReader: a same-uid process that shrinks a named ring
// under a subscriber makes its copying receives return an error (ErrCorrupt),
// not kill it with SIGBUS. (Borrowed pointers cannot be guarded: see
// SECURITY.md; the sealed mode makes truncation impossible.)
func TestTruncatedUnderReader(t *testing.T) {
	name := ringName(t)
	pub, err := Create[Tick](name, Options{Capacity: 1024})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := Attach[Tick](name, SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	publishTicks(t, pub, 100, true)
	var m Tick
	require.NoError(t, sub.TryRecv(&m))
	require.NoError(t, os.Truncate(shmPath(name), 0))
	err = sub.TryRecv(&m)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.True(t, strings.Contains(err.Error(), "truncated"), "%v", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.ErrorIs(t, sub.Recv(ctx, &m), ErrCorrupt)
	for _, err := range sub.Messages(ctx) {
		require.ErrorIs(t, err, ErrCorrupt)
		break
	}
}

// TestRemoveWorldWritableDeadRing: a dead ring whose mode someone widened
// to world-writable is still removed (its publisher is dead; keeping the
// name would leave it squatted), while attach refuses it as insecure.
func TestRemoveWorldWritableDeadRing(t *testing.T) {
	name := ringName(t)
	pub := startChild(t, "owner", map[string]string{"RING": name})
	pub.expect(t, "ready")
	pub.kill(t)
	require.NoError(t, os.Chmod(shmPath(name), 0o666))
	_, err := Attach[Tick](name, SubscribeOptions{})
	require.ErrorIs(t, err, ErrInsecure)
	require.NoError(t, Remove(name))
	_, err = os.Lstat(shmPath(name))
	assert.True(t, os.IsNotExist(err))
}

// TestTruncatedUnderRawReader: the untyped API (the bridge's) turns a
// shrunk segment into ErrCorrupt too, on every call that reads it, and
// closes cleanly.
func TestTruncatedUnderRawReader(t *testing.T) {
	name := ringName(t)
	pub, err := CreateRaw(name, tickIdentity(t), Options{Capacity: 1024})
	require.NoError(t, err)
	holder, err := AttachAny(name, SubscribeOptions{})
	require.NoError(t, err)
	reader, err := AttachAny(name, SubscribeOptions{})
	require.NoError(t, err)
	var msg [64]byte
	for range 100 {
		require.NoError(t, pub.Publish(msg[:]))
	}
	pub.Flush()
	b, err := holder.TryBorrowBatch(10)
	require.NoError(t, err)
	require.Equal(t, 10, b.Len())
	require.NoError(t, os.Truncate(shmPath(name), 0))

	err = holder.Release() // a batch borrowed before the segment shrank
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "truncated")
	_, err = reader.TryBorrowBatch(10)
	require.ErrorIs(t, err, ErrCorrupt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = reader.BorrowBatch(ctx, 10)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Zero(t, reader.Lag())
	assert.ErrorIs(t, reader.Close(), ErrCorrupt, "detach reads the entry: an error, not a crash")
	assert.ErrorIs(t, holder.Close(), ErrCorrupt)
	assert.ErrorIs(t, pub.Close(), ErrCorrupt, "close stores the final state: an error, not a crash")
}
