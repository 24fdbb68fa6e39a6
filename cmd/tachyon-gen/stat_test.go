package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// TestStat binds a generated message type to a real ring, moves a few
// messages and reads the counters back through `tachyon-gen stat`.
func TestStat(t *testing.T) {
	name := fmt.Sprintf("tachyon-test-stat-%d", os.Getpid())
	pub, err := ring.Create[market.Message](name, ring.Options{Capacity: 16, MaxSubscribers: 2})
	require.NoError(t, err)
	t.Cleanup(func() { pub.Close() })
	sub, err := ring.Attach[market.Message](name, ring.SubscribeOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })

	for i := range 5 {
		require.NoError(t, pub.Publish(&market.Message{Seq: uint64(i)}))
	}
	pub.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var m market.Message
	for range 3 {
		require.NoError(t, sub.Recv(ctx, &m))
	}

	code, stdout, stderr := cli(t, "stat", name)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, name)
	assert.Contains(t, stdout, fmt.Sprintf("%#x", market.MessageFingerprint))
	t.Log("\n" + stdout)
}

func TestStatErrors(t *testing.T) {
	code, _, stderr := cli(t, "stat", "tachyon-test-no-such-ring")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "tachyon-test-no-such-ring")

	code, _, stderr = cli(t, "stat", "../etc/passwd")
	assert.Equal(t, exitError, code)
	assert.NotEmpty(t, stderr)

	// A zero-length and a garbage segment are refused with a message.
	for _, content := range [][]byte{nil, []byte("not a ring header, just some bytes that are long enough to look like one")} {
		name := fmt.Sprintf("tachyon-test-corrupt-%d", os.Getpid())
		path := filepath.Join("/dev/shm", name)
		require.NoError(t, os.WriteFile(path, content, 0o600))
		code, _, stderr = cli(t, "stat", name)
		os.Remove(path)
		assert.Equal(t, exitError, code)
		assert.Contains(t, stderr, name)
	}
}

// TestMain lets TestStatReapAndList re-execute this binary as a ring owner
// that it then kills, leaving a stale segment like a crashed publisher.
func TestMain(m *testing.M) {
	if name := os.Getenv("TACHYON_STAT_OWNER"); name != "" {
		if _, err := ring.Create[market.Message](name, ring.Options{Capacity: 16}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ready")
		select {}
	}
	os.Exit(m.Run())
}

func TestStatReapAndList(t *testing.T) {
	stale := fmt.Sprintf("tachyon-test-stale-%d", os.Getpid())
	live := fmt.Sprintf("tachyon-test-live-%d", os.Getpid())
	t.Cleanup(func() { _ = ring.Remove(stale) })

	self, err := os.Executable()
	require.NoError(t, err)
	owner := exec.Command(self, "-test.run=^$")
	owner.Env = append(os.Environ(), "TACHYON_STAT_OWNER="+stale)
	out, err := owner.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, owner.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	require.NoError(t, owner.Process.Kill())
	_ = owner.Wait()

	pub, err := ring.Create[market.Message](live, ring.Options{Capacity: 16})
	require.NoError(t, err)
	t.Cleanup(func() { pub.Close() })

	code, stdout, stderr := cli(t, "stat", "--list")
	require.Equal(t, exitOK, code, stderr)
	assert.Regexp(t, stale+`\s+dead \(stale: stat --reap `+stale+`\)`, stdout)
	assert.Regexp(t, live+`\s+alive\s+`+fmt.Sprint(os.Getpid()), stdout)

	// A live ring is never reaped; a stale one is, once.
	code, _, stderr = cli(t, "stat", "--reap", live)
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "publisher is alive")
	code, stdout, stderr = cli(t, "stat", "--reap", stale)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "removed stale ring "+stale)
	code, _, stderr = cli(t, "stat", "--reap", stale)
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "not found")
	_, err = ring.Inspect(live)
	assert.NoError(t, err, "the live ring is untouched")
}

// TestStatSpecialFiles: `stat` (and `--reap`) refuse a FIFO or a socket
// squatting on a ring's name at once, naming what is there, instead of
// blocking in open(2) (issue 14, finding 2).
func TestStatSpecialFiles(t *testing.T) {
	name := fmt.Sprintf("tachyon-test-fifo-%d", os.Getpid())
	path := filepath.Join(ring.ShmDir, name)
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	t.Cleanup(func() { _ = os.Remove(path) })
	for _, args := range [][]string{{"stat", name}, {"stat", "--reap", name}} {
		done := make(chan struct{})
		var code int
		var stderr string
		go func() {
			defer close(done)
			code, _, stderr = cli(t, args...)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("tachyon-gen %v hangs on a FIFO", args)
		}
		assert.Equal(t, exitError, code, "%v", args)
		assert.Contains(t, stderr, "a FIFO (named pipe)", "%v", args)
	}
	_, err := os.Lstat(path)
	assert.NoError(t, err, "the FIFO is not removed")
}
