// Package bridgetest holds the ring ends of the bridge's tests: a publisher
// of the seed message and a destination subscriber that checks every
// sequence arrives exactly once, in order and intact.
package bridgetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/internal/natstest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// Prefix starts every ring name a test binary creates (RingName);
// LeftRings finds what a test left behind.
var Prefix = fmt.Sprintf("tachyon-bridge-test-%d-", os.Getpid())

var ringSeq atomic.Int64

// RingName returns a fresh ring name, removed at the test's end.
func RingName(t *testing.T) string {
	n := fmt.Sprintf("%s%d", Prefix, ringSeq.Add(1))
	t.Cleanup(func() { _ = ring.Remove(n) })
	return n
}

// LeftRings removes and returns the rings of this binary left in /dev/shm;
// TestMain fails the run if there are any.
func LeftRings() []string {
	left, _ := filepath.Glob(ring.ShmDir + "/" + Prefix + "*")
	if len(left) > 0 {
		_, _ = ring.RemoveStale(Prefix)
	}
	return left
}

// WaitRing waits until the named ring exists.
func WaitRing(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := ring.Inspect(name)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// StartServer runs one embedded JetStream server for the test and returns
// its URL.
func StartServer(t *testing.T) string {
	n, err := natstest.Single(t.TempDir())
	require.NoError(t, err)
	s, err := n.Start()
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return n.URL()
}

// Fill writes the seed message seq as examples/pipeline/PEERS.md does.
func Fill(m *market.Message, seq uint64) {
	m.Seq, m.TimestampNs = seq, uint64(time.Now().UnixNano())
	for i := range m.Payload {
		m.Payload[i] = byte(seq*131 + uint64(i)*7)
	}
}

func Intact(m *market.Message) bool {
	for i := range m.Payload {
		if m.Payload[i] != byte(m.Seq*131+uint64(i)*7) {
			return false
		}
	}
	return true
}

// PublishN creates the source ring, waits for one subscriber (the out
// bridge), publishes seq 0..n-1 (pace between messages, if any) and closes.
func PublishN(t *testing.T, name string, n uint64, opts ring.Options, pace time.Duration) <-chan error {
	pub, err := ring.Create[market.Message](name, opts)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		defer pub.Close()
		if err := WaitSubscribers(name, 1, 10*time.Second); err != nil {
			done <- err
			return
		}
		for seq := range n {
			m, err := pub.Claim()
			if err != nil {
				done <- err
				return
			}
			Fill(m, seq)
			if err := pub.Commit(); err != nil {
				done <- err
				return
			}
			if pace > 0 && seq%64 == 0 {
				pub.Flush()
				time.Sleep(pace)
			}
		}
		done <- nil
	}()
	return done
}

func WaitSubscribers(name string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := ring.Inspect(name)
		if err == nil {
			active := 0
			for _, s := range st.Subscribers {
				if s.State == "active" {
					active++
				}
			}
			if active >= want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ring %q: %d subscribers not registered after %v (%v)", name, want, timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Received is what a destination subscriber saw.
type Received struct {
	Seqs          []uint64
	Torn, Reorder int
	Err           error
}

// Subscribe attaches to the destination ring (retrying until it exists),
// sleeping slow after every message, and, across destination ring incarnations (a restarted in bridge creates
// the ring again), records every sequence until the ring closes.
func Subscribe(t *testing.T, name string, timeout, slow time.Duration) <-chan Received {
	out := make(chan Received, 1)
	go func() {
		var r Received
		defer func() { out <- r }()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var last time.Time // the incarnation read to its end
		for {
			var sub *ring.Subscriber[market.Message]
			for {
				var err error
				sub, err = ring.Attach[market.Message](name, ring.SubscribeOptions{})
				if err == nil {
					// A dead incarnation again (the restarted bridge has not
					// replaced it yet) would deliver its unpublished tail
					// twice: wait for the new one.
					if st, ierr := ring.Inspect(name); ierr == nil && st.Created.Equal(last) {
						sub.Close()
						err = ring.ErrNotFound
					} else {
						if ierr == nil {
							last = st.Created
						}
						break
					}
				}
				if !errors.Is(err, ring.ErrNotFound) && !errors.Is(err, ring.ErrNotReady) || ctx.Err() != nil {
					r.Err = err
					return
				}
				time.Sleep(time.Millisecond)
			}
			var err error
			for m, e := range sub.Messages(ctx) {
				if e != nil {
					err = e
					break
				}
				if !Intact(m) {
					r.Torn++
				}
				if len(r.Seqs) > 0 && m.Seq <= r.Seqs[len(r.Seqs)-1] {
					r.Reorder++
				}
				r.Seqs = append(r.Seqs, m.Seq)
				if slow > 0 {
					time.Sleep(slow)
				}
			}
			sub.Close()
			if err == nil { // closed
				return
			}
			if !errors.Is(err, ring.ErrPublisherDead) {
				r.Err = err
				return
			}
			// The in bridge died: it creates the ring again when restarted.
		}
	}()
	return out
}

// CheckExactlyOnce requires seqs to be 0..n-1, each once, in order.
func CheckExactlyOnce(t *testing.T, r Received, n uint64) {
	t.Helper()
	require.NoError(t, r.Err)
	assert.Zero(t, r.Torn, "torn")
	assert.Zero(t, r.Reorder, "reordered or duplicated")
	if !assert.Len(t, r.Seqs, int(n)) {
		seen := map[uint64]int{}
		for _, s := range r.Seqs {
			seen[s]++
		}
		var missing, dup []uint64
		for s := range n {
			switch seen[s] {
			case 0:
				missing = append(missing, s)
			case 1:
			default:
				dup = append(dup, s)
			}
		}
		t.Fatalf("missing %d (first %v), duplicated %d (first %v)", len(missing), head(missing), len(dup), head(dup))
	}
	for i, s := range r.Seqs {
		if s != uint64(i) {
			t.Fatalf("position %d holds seq %d", i, s)
		}
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 10)] }
