package bridge

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/internal/bridgetest"
	"github.com/tachyon-io/tachyon/internal/natstest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// startNodes runs the nodes as child processes (this test binary, see
// TestMain) and returns them by node name; cleanup kills what is left.
func startNodes(t *testing.T, nodes []natstest.Node) map[string]*exec.Cmd {
	procs := map[string]*exec.Cmd{}
	t.Cleanup(func() {
		for _, c := range procs {
			if c.ProcessState == nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	})
	for _, n := range nodes {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), n.Env())
		out, err := c.StdoutPipe()
		require.NoError(t, err)
		c.Stderr = os.Stderr
		require.NoError(t, c.Start())
		procs[n.Name] = c
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "node %s", n.Name)
		require.Equal(t, "ready", strings.TrimSpace(line))
	}
	return procs
}

// TestClusterNodeKill: a three-node JetStream cluster on loopback, an R3
// stream, and the node leading the stream SIGKILLed mid-stream: the
// destination ring sees every sequence exactly once, in order.
func TestClusterNodeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster failover takes seconds")
	}
	nodes, err := natstest.Cluster(t.TempDir(), 3)
	require.NoError(t, err)
	procs := startNodes(t, nodes)
	urls := natstest.URLs(nodes)
	require.NoError(t, natstest.WaitJetStream(urls, 30*time.Second))

	p := newPipeline(t, urls...)
	p.stream = "R3"
	p.out.Stream.Name, p.in.Stream.Name = p.stream, p.stream
	p.out.Stream.Replicas, p.in.Stream.Replicas = 3, 3
	p.out.Window = 512
	n := sized(30_000)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	got := bridgetest.Subscribe(t, p.dst, 150*time.Second, 0)
	ins := runInAsync(t, ctx, p.in)
	outs := runOutAsync(t, ctx, p.out)
	published := bridgetest.PublishN(t, p.src, n, ring.Options{Capacity: 65536}, 5*time.Millisecond)

	// Kill the stream's leader once a third of the stream is stored.
	nc, err := nats.Connect(strings.Join(urls, ","))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var leader string
	for leader == "" {
		require.NoError(t, ctx.Err(), "the stream never reached a third of the messages")
		ictx, icancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(ictx, p.stream)
		icancel()
		if err == nil && s.CachedInfo().State.Msgs >= n/3 && s.CachedInfo().Cluster != nil {
			leader = s.CachedInfo().Cluster.Leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("SIGKILL stream leader %s", leader)
	require.NoError(t, procs[leader].Process.Kill())
	procs[leader].Wait()

	require.NoError(t, <-published)
	o, i := <-outs, <-ins
	bridgetest.CheckExactlyOnce(t, <-got, n)
	assert.EqualValues(t, n, o.Published)
	assert.EqualValues(t, n, i.Committed)
	assert.Zero(t, i.Gaps)
	t.Logf("out: %d retries; in: %d duplicates dropped, %d redelivered, %d consumer resets", o.Retries, i.Duplicates, i.Redelivered, i.Resets)
}
