package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
