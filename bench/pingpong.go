package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// Latency is a distribution of round-trip times.
type Latency struct {
	P50, P90, P99, P999, Max float64 // nanoseconds
	N                        int
}

func latencyOf(rtts []time.Duration) Latency {
	slices.Sort(rtts)
	q := func(p float64) float64 {
		return float64(rtts[min(len(rtts)-1, int(p*float64(len(rtts))))].Nanoseconds())
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: float64(rtts[len(rtts)-1]), N: len(rtts)}
}

// pin locks the goroutine to its thread and the thread to a CPU, where the
// machine has at least two, and returns the function that undoes both.
// Undo it before starting another process: a child inherits the affinity
// of the thread that forks it, and a Go child confined to one CPU starts
// with GOMAXPROCS=1 and cannot pin itself elsewhere.
func pin(cpu int) (unpin func()) {
	runtime.LockOSThread()
	var prev unix.CPUSet
	if runtime.NumCPU() < 2 || unix.SchedGetaffinity(0, &prev) != nil {
		return runtime.UnlockOSThread
	}
	var set unix.CPUSet
	set.Set(cpu % runtime.NumCPU())
	_ = unix.SchedSetaffinity(0, &set)
	return func() {
		_ = unix.SchedSetaffinity(0, &prev)
		runtime.UnlockOSThread()
	}
}

// child re-executes this program in a helper role.
func child(role string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"child", role}, args...)...)
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// ringPingPong measures round trips of the seed message over two rings:
// Publish on "ping", a peer's echo (PEERS.md) republishes on "pong", Recv
// back. echo is the peer command without its verb: Go, C++ or Python. With a
// gap, the sender idles that long before each ping, long enough for the echo
// to stop spinning and park on its futex: the round trip then includes a
// wake-up.
func ringPingPong(echo []string, tag string, n, warm int, gap time.Duration) (Latency, error) {
	base := fmt.Sprintf("tachyon-bench-%d-%s", os.Getpid(), tag)
	ping, pong := base+"-ping", base+"-pong"
	pub, err := ring.Create[market.Message](ping, ring.Options{Capacity: 64, Batch: 1})
	if err != nil {
		return Latency{}, err
	}
	defer pub.Close()
	if _, err := os.Stat(echo[0]); err != nil {
		return Latency{}, fmt.Errorf("%s not built (make bench builds it)", echo[0])
	}
	argv := append(append([]string{}, echo[1:]...), "echo", "--ping", ping, "--pong", pong, "--pin", "1", "--timeout-s", "20")
	cmd := exec.Command(echo[0], argv...)
	var stderr bytes.Buffer // read once the echo has exited
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Start(); err != nil {
		return Latency{}, err
	}
	// The echo runs until the ping publisher closes: close it before
	// waiting for the echo (deferred calls run last-in, first-out).
	var echoErr error
	exited := make(chan struct{})
	go func() { echoErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = pub.Close()
		<-exited
	}()
	// gone says why the echo has exited, if it has: no use waiting for it.
	gone := func() error {
		select {
		case <-exited:
			return fmt.Errorf("echo %s exited: %v: %s", echo[0], echoErr, lastLine(stderr.String()))
		default:
			return nil
		}
	}
	var sub *ring.Subscriber[market.Message]
	for deadline := time.Now().Add(20 * time.Second); ; {
		sub, err = ring.Attach[market.Message](pong, ring.SubscribeOptions{})
		if err == nil {
			break
		}
		if e := gone(); e != nil {
			return Latency{}, e
		}
		if time.Now().After(deadline) {
			return Latency{}, err
		}
		time.Sleep(time.Millisecond)
	}
	defer sub.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		st, err := ring.Inspect(ping)
		if err == nil && len(st.Subscribers) > 0 && st.Subscribers[0].State == "active" {
			break
		}
		if e := gone(); e != nil {
			return Latency{}, e
		}
		if time.Now().After(deadline) {
			return Latency{}, fmt.Errorf("echo peer never subscribed to %s", ping)
		}
		time.Sleep(time.Millisecond)
	}
	defer pin(0)()
	ctx := context.Background()
	rtts := make([]time.Duration, 0, n)
	var in market.Message
	for i := range n + warm {
		if gap > 0 {
			time.Sleep(gap)
		}
		t0 := nanotime()
		m, err := pub.Claim()
		if err != nil {
			return Latency{}, err
		}
		m.Seq = uint64(i)
		if err := pub.Commit(); err != nil {
			return Latency{}, err
		}
		if err := sub.Recv(ctx, &in); err != nil || in.Seq != uint64(i) {
			return Latency{}, fmt.Errorf("echo %d: %v (seq %d)", i, err, in.Seq)
		}
		if i >= warm {
			rtts = append(rtts, since(t0))
		}
	}
	return latencyOf(rtts), nil
}

// streamPingPong measures round trips of 64 bytes over a byte stream to a
// child that echoes them: a Unix socket pair or a pair of pipes.
func streamPingPong(kind string, n, warm int) (Latency, error) {
	var parentR, parentW, childR, childW *os.File
	switch kind {
	case "uds":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) // else the child inherits our end too and never sees EOF
		if err != nil {
			return Latency{}, err
		}
		parentR = os.NewFile(uintptr(fds[0]), "uds-parent")
		parentW = parentR
		childR = os.NewFile(uintptr(fds[1]), "uds-child")
		childW = childR
	case "pipe":
		var err error
		if childR, parentW, err = os.Pipe(); err != nil {
			return Latency{}, err
		}
		if parentR, childW, err = os.Pipe(); err != nil {
			return Latency{}, err
		}
	}
	cmd, err := child("stream-echo")
	if err != nil {
		return Latency{}, err
	}
	cmd.ExtraFiles = []*os.File{childR, childW}
	if err := cmd.Start(); err != nil {
		return Latency{}, err
	}
	childR.Close()
	if childW != childR {
		childW.Close()
	}
	defer pin(0)()
	var buf [64]byte
	rtts := make([]time.Duration, 0, n)
	for i := range n + warm {
		t0 := nanotime()
		if _, err := parentW.Write(buf[:]); err != nil {
			return Latency{}, err
		}
		if _, err := io.ReadFull(parentR, buf[:]); err != nil {
			return Latency{}, err
		}
		if i >= warm {
			rtts = append(rtts, since(t0))
		}
	}
	parentW.Close()
	if parentR != parentW {
		parentR.Close()
	}
	_ = cmd.Wait()
	return latencyOf(rtts), nil
}

// streamEchoChild echoes 64-byte frames from fd 3 to fd 4 until EOF.
func streamEchoChild() error {
	pin(1) // for the process's lifetime
	r, w := os.NewFile(3, "in"), os.NewFile(4, "out")
	var buf [64]byte
	for {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return nil
		}
		if _, err := w.Write(buf[:]); err != nil {
			return err
		}
	}
}

// channelPingPong is the in-process reference: two goroutines and two
// unbuffered channels.
func channelPingPong(n, warm int) Latency {
	ping, pong := make(chan market.Message), make(chan market.Message)
	go func() {
		for m := range ping {
			pong <- m
		}
		close(pong)
	}()
	rtts := make([]time.Duration, 0, n)
	var m market.Message
	for i := range n + warm {
		t0 := nanotime()
		m.Seq = uint64(i)
		ping <- m
		m = <-pong
		if i >= warm {
			rtts = append(rtts, since(t0))
		}
	}
	close(ping)
	return latencyOf(rtts)
}
