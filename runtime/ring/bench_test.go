package ring

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Benchmarks run only with -bench. The ping-pong benchmarks report RTT
// percentiles of the 64-byte Tick between two processes, beside two
// baselines measured in the same run: a bare cache-line ping-pong over
// shared memory (the floor) and a Unix-socket ping-pong.

// pin locks the calling goroutine to its thread and the thread to cpu, and
// returns a function that restores both. The inherited affinity mask is
// not consulted (a child forked from a pinned thread inherits a one-CPU
// mask): if cpu does not exist, the thread is left unpinned.
func pin(cpu int) (unpin func()) {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	_ = unix.SchedGetaffinity(0, &old)
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return func() {}
	}
	return func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}

func reportRTT(b *testing.B, rtts []time.Duration) {
	if len(rtts) == 0 {
		return
	}
	slices.Sort(rtts)
	q := func(p float64) float64 {
		return float64(rtts[min(len(rtts)-1, int(p*float64(len(rtts))))].Nanoseconds())
	}
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
	b.ReportMetric(q(0.999), "p99.9-ns")
}

func BenchmarkPingPong(b *testing.B) {
	b.Run("ring", benchRingPingPong)
	b.Run("floor-cacheline", benchFloorPingPong)
	b.Run("unix-socket", benchSocketPingPong)
}

// benchRingPingPong: Claim/Commit a Tick on "ping", the child echoes it on
// "pong", Recv it back.
func benchRingPingPong(b *testing.B) {
	ping, pong := ringName(b), ringName(b)
	pub, err := Create[Tick](ping, Options{Capacity: 64})
	require.NoError(b, err)
	defer pub.Close()
	c := startChild(b, "echo", map[string]string{"RING": ping, "PONG": pong, "SPIN": os.Getenv("BENCH_SPIN")})
	c.expect(b, "ready")
	sub, err := Attach[Tick](pong, SubscribeOptions{spin: envInt("BENCH_SPIN")})
	require.NoError(b, err)
	defer sub.Close()
	defer pin(0)()
	ctx := context.Background()
	rtts := make([]time.Duration, 0, b.N)
	var m Tick
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p, err := pub.Claim()
		if err != nil {
			b.Fatal(err)
		}
		p.Seq = uint64(i)
		_ = pub.Commit()
		if err := sub.Recv(ctx, &m); err != nil || m.Seq != uint64(i) {
			b.Fatal(err, m.Seq)
		}
		rtts = append(rtts, time.Since(t0))
	}
	b.StopTimer()
	reportRTT(b, rtts)
	c.send(b, "stop")
}

// benchFloorPingPong: two processes bounce a counter in one shared cache
// line: the hardware floor of any shared-memory RTT.
func benchFloorPingPong(b *testing.B) {
	name := ringName(b)
	f, err := os.OpenFile(ShmDir+"/"+name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	require.NoError(b, err)
	require.NoError(b, f.Truncate(4096))
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(b, err)
	defer unix.Munmap(mem)
	f.Close()
	word := (*uint64)(unsafe.Pointer(&mem[0]))
	c := startChild(b, "floor", map[string]string{"RING": name})
	c.expect(b, "ready")
	defer pin(0)()
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		v := uint64(2*i + 1)
		atomic.StoreUint64(word, v)
		for atomic.LoadUint64(word) != v+1 {
		}
		rtts = append(rtts, time.Since(t0))
	}
	b.StopTimer()
	atomic.StoreUint64(word, ^uint64(0))
	reportRTT(b, rtts)
	_ = c.cmd.Wait()
}

// benchSocketPingPong: 64-byte messages over a Unix stream socket pair.
func benchSocketPingPong(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(b, err)
	child := os.NewFile(uintptr(fds[1]), "child")
	defer unix.Close(fds[0])
	c := startChildFiles(b, "sockecho", []*os.File{child})
	child.Close()
	c.expect(b, "ready")
	defer pin(0)()
	var buf [64]byte
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		putLE64(buf[:], uint64(i))
		if _, err := unix.Write(fds[0], buf[:]); err != nil {
			b.Fatal(err)
		}
		if err := readFull(fds[0], buf[:]); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	b.StopTimer()
	reportRTT(b, rtts)
}

func readFull(fd int, buf []byte) error {
	for got := 0; got < len(buf); {
		n, err := unix.Read(fd, buf[got:])
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("EOF")
		}
		got += n
	}
	return nil
}

// BenchmarkThroughput: one-way messages per second from this process to a
// subscriber process that borrows in batches, with tail batching K.
func BenchmarkThroughput(b *testing.B) {
	for _, k := range []int{1, 64} {
		b.Run("batch="+strconv.Itoa(k), func(b *testing.B) {
			name := ringName(b)
			pub, err := Create[Tick](name, Options{Capacity: 4096, Batch: k})
			require.NoError(b, err)
			c := startChild(b, "sink", map[string]string{"RING": name})
			c.expect(b, "ready")
			defer pin(0)()
			b.ResetTimer()
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				p, err := pub.Claim()
				if err != nil {
					b.Fatal(err)
				}
				p.Seq = uint64(i)
				_ = pub.Commit()
			}
			require.NoError(b, pub.Close())
			got, _ := strconv.ParseUint(c.line(b), 10, 64)
			el := time.Since(t0)
			b.StopTimer()
			require.Equal(b, uint64(b.N), got)
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
	}
}

func startChildFiles(t testing.TB, role string, files []*os.File) *child {
	t.Helper()
	return startChildWith(t, role, nil, files)
}

// runBenchChild runs the benchmark roles.
func runBenchChild(role string) (int, bool) {
	name := os.Getenv("RING")
	fail := func(err error) (int, bool) {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 2, true
	}
	switch role {
	case "echo":
		sub, err := Attach[Tick](name, SubscribeOptions{spin: envInt("SPIN")})
		if err != nil {
			return fail(err)
		}
		pub, err := Create[Tick](os.Getenv("PONG"), Options{Capacity: 64})
		if err != nil {
			return fail(err)
		}
		defer pub.Close()
		pin(1)
		fmt.Println("ready")
		ctx := context.Background()
		for {
			m, err := sub.Borrow(ctx)
			if err != nil {
				return 0, true
			}
			p, err := pub.Claim()
			if err != nil {
				return fail(err)
			}
			*p = *m
			_ = sub.Release()
			_ = pub.Commit()
		}
	case "floor":
		f, err := os.OpenFile(ShmDir+"/"+name, os.O_RDWR, 0)
		if err != nil {
			return fail(err)
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fail(err)
		}
		word := (*uint64)(unsafe.Pointer(&mem[0]))
		pin(1)
		fmt.Println("ready")
		for {
			v := atomic.LoadUint64(word)
			if v == ^uint64(0) {
				return 0, true
			}
			if v&1 == 1 {
				atomic.StoreUint64(word, v+1)
			}
		}
	case "sockecho":
		pin(1)
		fmt.Println("ready")
		var buf [64]byte
		for {
			if err := readFull(3, buf[:]); err != nil {
				return 0, true
			}
			if _, err := unix.Write(3, buf[:]); err != nil {
				return 0, true
			}
		}
	case "sink":
		sub, err := Attach[Tick](name, SubscribeOptions{})
		if err != nil {
			return fail(err)
		}
		pin(1)
		fmt.Println("ready")
		ctx := context.Background()
		var n, next uint64
		for {
			bt, err := sub.BorrowBatch(ctx, 256)
			if err != nil {
				break
			}
			for i := 0; i < bt.Len(); i++ {
				if bt.At(i).Seq != next {
					return fail(fmt.Errorf("seq %d, want %d", bt.At(i).Seq, next))
				}
				next++
			}
			n += uint64(bt.Len())
			_ = sub.Release()
		}
		fmt.Println(n)
		return 0, true
	}
	return 0, false
}
