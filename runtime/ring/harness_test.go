package ring

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// childEnv selects a child role when the test binary is re-executed.
const childEnv = "TACHYON_RING_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	code := m.Run()
	// Tests leave nothing in /dev/shm.
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: segments left in %s: %v\n", ShmDir, left)
		for _, n := range left {
			_ = unlinkSegment(n)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers() []string {
	ents, _ := os.ReadDir(ShmDir)
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), testPrefix) {
			left = append(left, e.Name())
		}
	}
	return left
}

// streamN is the length of the sequence-verified streams: 10 M in a normal
// run, scaled down under -race (whose instrumentation is ~10x slower) and
// -short.
func streamN() uint64 {
	if raceEnabled || testing.Short() {
		return 200_000
	}
	return 10_000_000
}

// subResult is what a verifying subscriber reports.
type subResult struct {
	Received   uint64 `json:"received"`
	Dropped    uint64 `json:"dropped"`
	Corrupt    uint64 `json:"corrupt"`
	OutOfOrder uint64 `json:"out_of_order"`
	GapSum     uint64 `json:"gap_sum"` // sum of seq gaps seen, incl. before the first and after the last
	First      uint64 `json:"first"`
	Last       uint64 `json:"last"`
	Err        string `json:"err"`
	LostWakes  uint64 `json:"lost_wakeups"`
}

// subMode is how a verifying subscriber reads.
type subMode string

const (
	modeRecv   subMode = "recv"
	modeBorrow subMode = "borrow"
	modeBatch  subMode = "batch"
)

// verify reads sub until the publisher closes, checking every message: an
// unlimited subscriber must see 0, 1, 2, ... with nothing missing; a lossy
// one strictly increasing sequences whose gaps add up to its drop count.
// slow busy-waits that long per message.
func verify(sub *Subscriber[Tick], mode subMode, slow time.Duration, published func() uint64) subResult {
	var r subResult
	next := uint64(0)
	check := func(m *Tick) {
		if !m.intact() {
			r.Corrupt++
			return
		}
		if m.Seq < next {
			r.OutOfOrder++
			return
		}
		r.GapSum += m.Seq - next
		next = m.Seq + 1
		r.Last = m.Seq
		if slow > 0 {
			for t0 := time.Now(); time.Since(t0) < slow; {
			}
		}
	}
	ctx := context.Background()
	var err error
	switch mode {
	case modeRecv:
		var m Tick
		for err = sub.Recv(ctx, &m); err == nil; err = sub.Recv(ctx, &m) {
			check(&m)
		}
	case modeBorrow:
		var m *Tick
		for m, err = sub.Borrow(ctx); err == nil; m, err = sub.Borrow(ctx) {
			var c Tick
			loadTick(&c, m)
			if sub.Release() == nil { // an overwritten copy is discarded
				check(&c)
			}
		}
	case modeBatch:
		var b Batch[Tick]
		var buf [64]Tick
		for b, err = sub.BorrowBatch(ctx, len(buf)); err == nil; b, err = sub.BorrowBatch(ctx, len(buf)) {
			n := b.Len()
			for i := 0; i < n; i++ {
				loadTick(&buf[i], b.At(i))
			}
			if sub.Release() == nil { // else the batch was torn: discard it all
				for i := 0; i < n; i++ {
					check(&buf[i])
				}
			}
		}
	}
	if !errors.Is(err, ErrClosed) {
		r.Err = err.Error()
	}
	if p := published(); p > next {
		r.GapSum += p - next
	}
	r.Received, r.Dropped, r.LostWakes = sub.Received(), sub.Dropped(), sub.c.lostWakeups
	return r
}

// loadTick copies a borrowed message. Under -race it copies with atomics,
// like the runtime's own copies, because a lossy reader's borrowed slot may
// be overwritten concurrently (which Release then reports).
func loadTick(dst, src *Tick) {
	if raceEnabled {
		copyFromSlot(unsafe.Pointer(dst), unsafe.Pointer(src), unsafe.Sizeof(*dst))
		return
	}
	*dst = *src
}

// publishTicks publishes n sequence-numbered messages. DropNewest rejections
// are retried with the same sequence, so the n accepted messages are
// 0..n-1. It returns the number of rejections.
func publishTicks(t testing.TB, pub *Publisher[Tick], n uint64, claim bool) uint64 {
	var rejected uint64
	var m Tick
	for seq := uint64(0); seq < n; {
		var err error
		if claim {
			var p *Tick
			if p, err = pub.Claim(); err == nil {
				p.fill(seq)
				err = pub.Commit()
			}
		} else {
			m.fill(seq)
			err = pub.Publish(&m)
		}
		switch {
		case err == nil:
			seq++
		case errors.Is(err, ErrFull):
			rejected++
			osYield() // a try-publisher backs off instead of burning the CPU its readers need
		default:
			require.NoError(t, err, "publish %d", seq)
		}
	}
	return rejected
}

// assertResult checks a subscriber's account of a stream of n messages.
func assertResult(t testing.TB, who string, r subResult, n uint64, lossless bool) {
	t.Helper()
	require.Empty(t, r.Err, who)
	require.Zero(t, r.Corrupt, "%s: torn or corrupt messages", who)
	require.Zero(t, r.OutOfOrder, "%s: out of order", who)
	require.Equal(t, n, r.Received+r.Dropped, "%s: received %d + dropped %d != published %d", who, r.Received, r.Dropped, n)
	require.Equal(t, r.Dropped, r.GapSum, "%s: drops counted vs sequence gaps", who)
	if lossless {
		require.Zero(t, r.Dropped, "%s: an unlimited subscriber lost messages", who)
		require.Equal(t, n-1, r.Last, who)
	}
}

// child is a re-executed test binary running a role.
type child struct {
	cmd *exec.Cmd
	out *bufio.Reader
	in  io.WriteCloser
}

func startChild(t testing.TB, role string, env map[string]string) *child {
	t.Helper()
	return startChildWith(t, role, env, nil)
}

// startChildWith starts a child role with extra environment and inherited
// files (fd 3, 4, ...).
func startChildWith(t testing.TB, role string, env map[string]string, files []*os.File) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, out: bufio.NewReader(stdout), in: stdin}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// line reads the child's next stdout line.
func (c *child) line(t testing.TB) string {
	t.Helper()
	s, err := c.out.ReadString('\n')
	require.NoError(t, err, "child exited early")
	return strings.TrimSpace(s)
}

func (c *child) expect(t testing.TB, want string) {
	t.Helper()
	require.Equal(t, want, c.line(t))
}

func (c *child) result(t testing.TB) subResult {
	t.Helper()
	var r subResult
	require.NoError(t, json.Unmarshal([]byte(c.line(t)), &r))
	require.NoError(t, c.cmd.Wait())
	return r
}

func (c *child) send(t testing.TB, s string) {
	t.Helper()
	_, err := io.WriteString(c.in, s+"\n")
	require.NoError(t, err)
}

func (c *child) kill(t testing.TB) {
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	_ = c.cmd.Wait()
}

func envInt(k string) int {
	v, _ := strconv.Atoi(os.Getenv(k))
	return v
}

// runChild runs a child role and returns the exit code.
func runChild(role string) int {
	name := os.Getenv("RING")
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 2
	}
	switch role {
	case "sub", "sealed-sub":
		// Attach (or dial a sealed ring's socket), report ready, verify
		// until closed, report the result.
		var sub *Subscriber[Tick]
		var err error
		if role == "sealed-sub" {
			sub, err = DialSealed[Tick](os.Getenv("SOCK"), SubscribeOptions{MaxLag: envInt("MAXLAG")})
		} else {
			sub, err = Attach[Tick](name, SubscribeOptions{MaxLag: envInt("MAXLAG")})
		}
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		pubN := uint64(envInt("N"))
		r := verify(sub, subMode(os.Getenv("MODE")), time.Duration(envInt("SLOW_NS")), func() uint64 { return pubN })
		_ = sub.Close()
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
		return 0
	case "pub":
		// Create, report ready, wait for "go", publish N, then close or
		// (HANG=1) wait to be killed.
		pub, err := Create[Tick](name, Options{Capacity: envInt("CAP"), Policy: Policy(envInt("POLICY"))})
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		in := bufio.NewReader(os.Stdin)
		if _, err := in.ReadString('\n'); err != nil {
			return fail(err)
		}
		var m Tick
		for seq := uint64(0); seq < uint64(envInt("N")); seq++ {
			m.fill(seq)
			if err := pub.Publish(&m); err != nil {
				return fail(err)
			}
		}
		if os.Getenv("HANG") == "claim" {
			// Die mid-claim: a slot claimed and half written, never
			// committed.
			m, err := pub.Claim()
			if err != nil {
				return fail(err)
			}
			m.fill(uint64(envInt("N")))
			m.Payload[0] ^= 0xff
			pub.Flush()
			fmt.Println("claimed")
			select {}
		}
		if os.Getenv("HANG") != "" {
			fmt.Println("published")
			select {}
		}
		if err := pub.Close(); err != nil {
			return fail(err)
		}
		return 0
	case "attach":
		// Attach once and report the outcome (TestOtherUser).
		sub, err := Attach[Tick](name, SubscribeOptions{AllowForeignOwner: os.Getenv("FOREIGN") != ""})
		if err != nil {
			fmt.Println("error:", err)
			return 0
		}
		_ = sub.Close()
		fmt.Println("attached")
		return 0
	case "lock-squatter":
		// Open the ring read-only, as any user allowed to read it can, take
		// every lock a read-only descriptor can take — the registry flock
		// and read locks on every line it can — and hold them until killed
		// (TestLocksCannotStallProducer).
		fd, err := unix.Open(shmPath(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		if err := readLockEverything(fd); err != nil {
			return fail(err)
		}
		fmt.Println("holding")
		select {}
	case "owner":
		// Create a ring and wait to be killed.
		if _, err := Create[Tick](name, Options{Capacity: 8}); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		select {}
	}
	if code, ok := runBenchChild(role); ok {
		return code
	}
	if code, ok := runGeoChild(role); ok {
		return code
	}
	return fail(fmt.Errorf("unknown role"))
}
