package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/internal/bridgetest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// execEnv makes the test binary run tachyon-bridge's main instead of the
// tests: the kill tests run the bridges as processes they can SIGKILL.
const execEnv = "TACHYON_BRIDGE_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) != "" {
		main()
	}
	code := m.Run()
	if left := bridgetest.LeftRings(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: rings left behind: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// proc is one tachyon-bridge process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func start(t *testing.T, args ...string) *proc {
	b := &proc{cmd: exec.Command(os.Args[0], args...)}
	b.cmd.Env = append(os.Environ(), execEnv+"=1")
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	require.NoError(t, b.cmd.Start())
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			b.cmd.Wait()
		}
	})
	return b
}

func (b *proc) wait(t *testing.T) string {
	err := b.cmd.Wait()
	require.NoError(t, err, "%v\nstderr:\n%s", b.cmd.Args, b.stderr.String())
	return b.stdout.String()
}

func (b *proc) kill(t *testing.T) {
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGKILL))
	b.cmd.Wait()
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsage: usage errors exit 2 with a message, never a panic.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "Usage:"},
		{[]string{"sideways"}, exitUsage, `unknown command "sideways"`},
		{[]string{"out"}, exitUsage, "--ring and --stream are required"},
		{[]string{"in", "--ring", "x", "--stream", "s"}, exitUsage, "--ring, --stream and --consumer are required"},
		{[]string{"in", "--ring", "x", "--stream", "s", "--consumer", "c", "--policy", "drop_newest"}, exitUsage, "want block or drop_oldest"},
		{[]string{"in", "--ring", "x", "--stream", "s", "--consumer", "c", "--fingerprint", "0x12"}, exitUsage, "an explicit identity needs"},
		{[]string{"in", "--ring", "x", "--stream", "s", "--consumer", "c", "--layout", "../../golden/message.layout.json"}, exitUsage, "--layout needs --message NAME"},
		{[]string{"in", "--ring", "x", "--stream", "s", "--consumer", "c", "--layout", "../../golden/message.layout.json", "--message", "Nope"}, exitError, `no message "Nope" (it has market.Message)`},
		{[]string{"out", "--ring", "x", "--stream", "s", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"out", "--ring", "bad/name", "--stream", "s", "--nats", "nats://127.0.0.1:1"}, exitError, "invalid name"},
		{[]string{"out", "--ring", "x", "--stream", "s", "--nats", "nats://127.0.0.1:1"}, exitError, "connect to NATS at nats://127.0.0.1:1"},
		{[]string{"out", "--ring", "x", "--stream", "s", "--tls-cert", "c.pem"}, exitError, "needs both --tls-cert and --tls-key"},
	} {
		code, _, stderr := runCLI(c.args...)
		assert.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.msg, "%v", c.args)
	}
	code, stdout, _ := runCLI("help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "tachyon-bridge out --ring NAME")
}

// TestFingerprintMismatch: `in` for a ring of another fingerprint refuses
// the messages with both values and exits 1 (--on-mismatch stop).
func TestFingerprintMismatch(t *testing.T) {
	url := bridgetest.StartServer(t)
	src, dst := bridgetest.RingName(t), bridgetest.RingName(t)
	out := start(t, "out", "--nats", url, "--ring", src, "--stream", "M", "--layout", "../../golden/message.layout.json", "--exit-on-close", "--quiet")
	require.NoError(t, <-bridgetest.PublishN(t, src, 5, ring.Options{Capacity: 64}, 0))
	assert.Contains(t, out.wait(t), `"published":5`)
	code, _, stderr := runCLI("in", "--nats", url, "--stream", "M", "--consumer", "c", "--ring", dst, "--quiet",
		"--fingerprint", "0x1b43e6c9e14a376d", "--type-id", "1", "--size", "64", "--align", "8", "--on-mismatch", "stop",
		"--state", filepath.Join(t.TempDir(), "s.json"))
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "refused stream message 1 (subject tachyon.market.Message)")
	assert.Contains(t, stderr, "fingerprint 0x1b43e6c9e14a376c, want 0x1b43e6c9e14a376d")
}

// TestKillRestart: each bridge SIGKILLed mid-stream ten times and
// restarted at once: the destination ring sees every sequence exactly
// once, in order, intact.
func TestKillRestart(t *testing.T) {
	url := bridgetest.StartServer(t)
	src, dst := bridgetest.RingName(t), bridgetest.RingName(t)
	state := filepath.Join(t.TempDir(), "in.json")
	outArgs := []string{"out", "--nats", url, "--ring", src, "--stream", "K", "--layout", "../../golden/message.layout.json",
		"--window", "256", "--pack", "4", "--exit-on-close", "--quiet"}
	inArgs := []string{"in", "--nats", url, "--ring", dst, "--stream", "K", "--consumer", "k", "--capacity", "1024",
		"--layout", "../../golden/message.layout.json", "--message", "market.Message", "--wait-subscribers", "1",
		"--state", state, "--exit-on-close", "--quiet"}
	const n = 40_000
	got := bridgetest.Subscribe(t, dst, 90*time.Second, 0)
	out, in := start(t, outArgs...), start(t, inArgs...)
	// The source ring holds the whole stream: while the out bridge is down
	// nothing is overwritten (docs/BRIDGE.md: a dead subscriber no longer
	// holds its publisher back).
	published := bridgetest.PublishN(t, src, n, ring.Options{Capacity: 65536}, 5*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	for k := range 20 {
		if k%2 == 0 {
			out.kill(t)
			out = start(t, outArgs...)
		} else {
			in.kill(t)
			in = start(t, inArgs...)
		}
		time.Sleep(120 * time.Millisecond)
	}
	select {
	case err := <-published:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("publisher still running")
	}
	outSum, inSum := out.wait(t), in.wait(t)
	bridgetest.CheckExactlyOnce(t, <-got, n)
	t.Logf("last out: %s", strings.TrimSpace(outSum))
	t.Logf("last in: %s", strings.TrimSpace(inSum))
}
