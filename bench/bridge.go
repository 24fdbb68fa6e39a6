package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/internal/natstest"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// bridgeSizes are the message counts of the bridge runs.
type bridgeSizes struct {
	plain, unpacked, packed, latency int
	latencyRate                      int // msgs/s of the latency runs
}

// bridgeBench measures ring -> tachyon-bridge out -> JetStream ->
// tachyon-bridge in -> ring on loopback, against an R1 stream (one server)
// and an R3 stream (a three-node cluster), unpacked and packed, beside plain
// nats.go JetStream async publish of the same 64-byte messages to the same
// servers in the same run. Throughput is the median of three runs (the
// spread beside it); latency is publish-to-receive of every message of a
// paced run after its first fifth, p50 and p99.
func bridgeBench(r *results, bridgeBin, layout string, sz bridgeSizes) error {
	for _, p := range []string{bridgeBin, layout} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s not built (make bench builds it)", p)
		}
	}
	for _, replicas := range []int{1, 3} {
		if err := bridgeReplicas(r, bridgeBin, layout, replicas, sz); err != nil {
			return fmt.Errorf("R%d: %w", replicas, err)
		}
	}
	return nil
}

func bridgeReplicas(r *results, bridgeBin, layout string, replicas int, sz bridgeSizes) error {
	dir, err := os.MkdirTemp("", "tachyon-bench-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var urls []string
	if replicas == 1 {
		n, err := natstest.Single(dir)
		if err != nil {
			return err
		}
		s, err := n.Start()
		if err != nil {
			return err
		}
		defer func() { s.Shutdown(); s.WaitForShutdown() }()
		urls = []string{n.URL()}
	} else {
		nodes, servers, err := natstest.StartCluster(dir, replicas)
		defer natstest.Stop(servers)
		if err != nil {
			return err
		}
		urls = natstest.URLs(nodes)
	}
	key := fmt.Sprintf("bridge_r%d", replicas)
	note := fmt.Sprintf("R%d, loopback, embedded nats-server", replicas)

	plain, err := median3(func(i int) (float64, error) {
		return plainAsync(urls, fmt.Sprintf("PLAIN%d", i), replicas, sz.plain, false)
	})
	if err != nil {
		return fmt.Errorf("plain: %w", err)
	}
	plain.record(r, key+"_plain_async", "nats.go JetStream PublishAsync of 64 B payloads, until every ack, "+note)
	e2e, err := median3(func(i int) (float64, error) {
		return plainAsync(urls, fmt.Sprintf("PLAINE2E%d", i), replicas, sz.plain, true)
	})
	if err != nil {
		return fmt.Errorf("plain end to end: %w", err)
	}
	e2e.record(r, key+"_plain_e2e", "the same publish with a nats.go pull consumer (ack all) receiving every message, end to end, "+note)
	b := &bridgeRun{bin: bridgeBin, layout: layout, urls: urls, replicas: replicas, dir: dir}
	for _, pack := range []int{1, 16, 64} {
		kind := "unpacked"
		n := sz.unpacked
		if pack > 1 {
			kind, n = fmt.Sprintf("packed%d", pack), sz.packed
		}
		var allocs []float64
		rate, err := median3(func(i int) (float64, error) {
			res, err := b.run(fmt.Sprintf("%s%d", kind, i), pack, n, 0)
			if err != nil && *smoke {
				// Seen once in CI on a fresh clone (a destination ring closed
				// with none of its messages, the bridges' logs empty) and not
				// reproduced since: the smoke run proves the harness, so it
				// says so loudly and tries once more; a measuring run fails.
				fmt.Fprintf(os.Stderr, "bench: bridge smoke run %s%d failed, retrying once: %v\n", kind, i, err)
				res, err = b.run(fmt.Sprintf("%s%d-retry", kind, i), pack, n, 0)
			}
			allocs = append(allocs, res.outAllocs, res.inAllocs)
			return res.rate, err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		rate.record(r, key+"_"+kind, fmt.Sprintf("ring -> out -> JetStream -> in -> ring, %d msgs per NATS message, end to end, %s", pack, note))
		r.Metrics[key+"_"+kind+"_vs_plain"] = Metric{rate.median / plain.median, "x", "median rate over plain async publish's median"}
		r.Metrics[key+"_"+kind+"_vs_plain_e2e"] = Metric{rate.median / e2e.median, "x", "median rate over plain publish + consume's median"}
		slices.Sort(allocs)
		r.Metrics[key+"_"+kind+"_bridge_allocs_per_msg"] = Metric{allocs[len(allocs)/2], "allocs/msg",
			"heap allocations per ring message of a bridge process (out or in), nats.go's included; the ring side allocates none (internal/bridge TestEncoderAllocs)"}
		res, err := b.run(kind+"-lat", pack, sz.latency, sz.latencyRate)
		if err != nil {
			return fmt.Errorf("%s latency: %w", kind, err)
		}
		l := latencyOf(res.lat)
		r.Latency[key+"_"+kind] = l
		latNote := fmt.Sprintf("publish to receive through the bridge at %d msgs/s, %s", sz.latencyRate, note)
		r.Metrics[key+"_"+kind+"_latency_p50_ns"] = Metric{l.P50, "ns", latNote}
		r.Metrics[key+"_"+kind+"_latency_p99_ns"] = Metric{l.P99, "ns", latNote}
	}
	return nil
}

// spread is the median and range of three runs.
type spread struct{ median, lo, hi float64 }

func median3(run func(i int) (float64, error)) (spread, error) {
	var v []float64
	for i := range 3 {
		x, err := run(i)
		if err != nil {
			return spread{}, err
		}
		v = append(v, x)
	}
	slices.Sort(v)
	return spread{v[1], v[0], v[2]}, nil
}

func (s spread) record(r *results, key, note string) {
	r.Metrics[key+"_msgs_per_s"] = Metric{s.median, "msgs/s", note + "; median of 3"}
	r.Metrics[key+"_msgs_per_s_min"] = Metric{s.lo, "msgs/s", ""}
	r.Metrics[key+"_msgs_per_s_max"] = Metric{s.hi, "msgs/s", ""}
}

// seedBytes is the seed message seq as PEERS.md fills it.
func seedBytes(seq uint64) []byte {
	var m market.Message
	m.Seq = seq
	for i := range m.Payload {
		m.Payload[i] = byte(seq*131 + uint64(i)*7)
	}
	b, _ := m.MarshalBinary()
	return b
}

// plainAsync publishes n seed messages with nats.go's JetStream async
// publish (its default window) to a fresh stream and returns msgs/s until
// every ack arrived, or, with consume, until a plain pull consumer (ack
// policy all, acknowledging every 256, on its own connection as a second
// process would have) received them all: the like-for-like of the bridge,
// whose figure includes a consumer.
func plainAsync(urls []string, stream string, replicas, n int, consume bool) (float64, error) {
	connect := func() (*nats.Conn, jetstream.JetStream, error) {
		nc, err := nats.Connect(strings.Join(urls, ","))
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		return nc, js, err
	}
	nc, js, err := connect()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	subject := "plain." + stream
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Replicas: replicas})
	if err != nil {
		return 0, err
	}
	defer js.DeleteStream(context.Background(), stream)
	got := make(chan error, 1)
	if consume {
		if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "plain", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 65536}); err != nil {
			return 0, err
		}
		cnc, cjs, err := connect()
		if err != nil {
			return 0, err
		}
		defer cnc.Close()
		cons, err := cjs.Consumer(ctx, stream, "plain")
		if err != nil {
			return 0, err
		}
		iter, err := cons.Messages(jetstream.PullMaxMessages(1024))
		if err != nil {
			return 0, err
		}
		defer iter.Stop()
		go func() {
			for i := 1; i <= n; i++ {
				m, err := iter.Next()
				if err != nil {
					got <- err
					return
				}
				if i%256 == 0 || i == n {
					m.Ack()
				}
			}
			got <- nil
		}()
	}
	payloads := make([][]byte, 256)
	for i := range payloads {
		payloads[i] = seedBytes(uint64(i))
	}
	start := time.Now()
	for i := range n {
		for {
			_, err := js.PublishAsync(subject, payloads[i%len(payloads)])
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return 0, err
			}
			// The window is full: wait for acks, as a plain user would.
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return 0, err
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, errors.New("plain async publish: acks did not arrive")
	}
	if consume {
		select {
		case err := <-got:
			if err != nil {
				return 0, err
			}
		case <-ctx.Done():
			return 0, errors.New("plain consumer: messages did not arrive")
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// deleteStream removes a run's stream, so that the servers hold only the
// stream being measured.
func deleteStream(urls []string, stream string) {
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		return
	}
	defer nc.Close()
	if js, err := jetstream.New(nc); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, stream)
	}
}

type bridgeRun struct {
	bin, layout string
	urls        []string
	replicas    int
	dir         string
}

type bridgeResult struct {
	rate                float64
	lat                 []time.Duration
	outAllocs, inAllocs float64
}

// run carries n messages from a ring in this process through the two bridge
// processes into another ring in this process; rate 0 publishes as fast as
// the ring allows, else that many msgs/s. The rate is n over the time from
// the first publish to the last receive.
func (b *bridgeRun) run(tag string, pack, n, rate int) (bridgeResult, error) {
	var res bridgeResult
	base := fmt.Sprintf("tachyon-bench-%d-bridge-r%d-%s", os.Getpid(), b.replicas, tag)
	src, dst := base+"-a", base+"-b"
	defer ring.RemoveStale(base)
	stream := strings.ToUpper(strings.ReplaceAll(fmt.Sprintf("B%d_%s", b.replicas, tag), "-", "_"))
	common := []string{"--nats", strings.Join(b.urls, ","), "--stream", stream, "--replicas", fmt.Sprint(b.replicas),
		"--subject", "bench." + stream, "--layout", b.layout, "--quiet"}
	defer deleteStream(b.urls, stream)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var started []*exec.Cmd
	defer func() {
		cancel() // kills what is still running after an error
		for _, c := range started {
			c.Wait()
		}
	}()
	start := func(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
		c := exec.CommandContext(ctx, b.bin, append(args, common...)...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		return c, &out, &errb
	}
	inCmd, inOut, inErr := start("in", "--ring", dst, "--consumer", "bench", "--message", "market.Message", "--capacity", "65536",
		"--wait-subscribers", "1", "--exit-on-close", "--state", filepath.Join(b.dir, tag+".json"))
	outCmd, outOut, outErr := start("out", "--ring", src, "--pack", fmt.Sprint(pack), "--exit-on-close")
	if err := inCmd.Start(); err != nil {
		return res, err
	}
	started = append(started, inCmd)
	pub, err := ring.Create[market.Message](src, ring.Options{Capacity: 65536, Batch: 64})
	if err != nil {
		return res, err
	}
	defer pub.Close()
	if err := outCmd.Start(); err != nil {
		return res, err
	}
	started = append(started, outCmd)

	// The destination subscriber, in this process.
	type subDone struct {
		last time.Time
		lat  []time.Duration
		err  error
	}
	done := make(chan subDone, 1)
	go func() {
		var d subDone
		defer func() { done <- d }()
		var sub *ring.Subscriber[market.Message]
		for {
			sub, d.err = ring.Attach[market.Message](dst, ring.SubscribeOptions{})
			if d.err == nil || !errors.Is(d.err, ring.ErrNotFound) && !errors.Is(d.err, ring.ErrNotReady) || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if d.err != nil {
			return
		}
		defer sub.Close()
		if rate > 0 {
			d.lat = make([]time.Duration, 0, n)
		}
		next := uint64(0)
		for m, err := range sub.Messages(ctx) {
			if err != nil {
				d.err = err
				return
			}
			if rate > 0 && m.Seq >= uint64(n/5) { // the first fifth warms the path up
				d.lat = append(d.lat, time.Duration(time.Now().UnixNano()-int64(m.TimestampNs)))
			}
			if m.Seq != next {
				d.err = fmt.Errorf("destination ring: seq %d, want %d", m.Seq, next)
				return
			}
			next++
		}
		d.last = time.Now()
		if next != uint64(n) {
			d.err = fmt.Errorf("destination ring: %d of %d messages", next, n)
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := ring.Inspect(src)
		if err == nil && len(st.Subscribers) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("out bridge never attached: %s", outErr)
		}
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	for seq := range n {
		if rate > 0 {
			if wait := time.Until(t0.Add(time.Duration(seq) * time.Second / time.Duration(rate))); wait > 0 {
				pub.Flush()
				time.Sleep(wait)
			}
		}
		m, err := pub.Claim()
		if err != nil {
			return res, err
		}
		m.Seq = uint64(seq)
		for i := range m.Payload {
			m.Payload[i] = byte(uint64(seq)*131 + uint64(i)*7)
		}
		m.TimestampNs = uint64(time.Now().UnixNano())
		if err := pub.Commit(); err != nil {
			return res, err
		}
	}
	pub.Close()
	d := <-done
	if d.err != nil {
		return res, fmt.Errorf("%w\nout: %s\nin: %s", d.err, outErr, inErr)
	}
	started = nil
	if err := errors.Join(outCmd.Wait(), inCmd.Wait()); err != nil {
		return res, fmt.Errorf("bridges: %w\nout: %s\nin: %s", err, outErr, inErr)
	}
	var outS, inS struct {
		Allocs float64 `json:"allocs_per_msg"`
	}
	if err := errors.Join(json.Unmarshal(bytes.TrimSpace(outOut.Bytes()), &outS), json.Unmarshal(bytes.TrimSpace(inOut.Bytes()), &inS)); err != nil {
		return res, fmt.Errorf("bridge summaries: %w", err)
	}
	res.rate = float64(n) / d.last.Sub(t0).Seconds()
	res.lat, res.outAllocs, res.inAllocs = d.lat, outS.Allocs, inS.Allocs
	return res, nil
}

// reportBridge prints the bridge figures beside the plain baseline.
func reportBridge(r *results) {
	if _, ok := r.Metrics["bridge_r1_plain_async_msgs_per_s"]; !ok {
		return
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ring -> JetStream -> ring (64 B)\tmsgs/s median\tmin-max of 3\tvs plain\tlatency p50\tp99")
	for _, rep := range []string{"r1", "r3"} {
		k := "bridge_" + rep
		for _, row := range []struct{ key, label string }{{"plain_async", "plain nats.go async publish"},
			{"plain_e2e", "plain publish + pull consumer"},
			{"unpacked", "tachyon-bridge, unpacked"}, {"packed16", "tachyon-bridge, packed 16"},
			{"packed64", "tachyon-bridge, packed 64"}} {
			m, ok := r.Metrics[k+"_"+row.key+"_msgs_per_s"]
			if !ok {
				continue
			}
			vs, p50, p99 := "-", "-", "-"
			if v, ok := r.Metrics[k+"_"+row.key+"_vs_plain"]; ok {
				vs = fmt.Sprintf("%.2fx", v.Value)
			}
			if l, ok := r.Latency[k+"_"+row.key]; ok {
				p50, p99 = ns(l.P50), ns(l.P99)
			}
			fmt.Fprintf(tw, "%s %s\t%s\t%s-%s\t%s\t%s\t%s\n", strings.ToUpper(rep), row.label, human(m.Value),
				human(r.Metrics[k+"_"+row.key+"_msgs_per_s_min"].Value), human(r.Metrics[k+"_"+row.key+"_msgs_per_s_max"].Value), vs, p50, p99)
		}
	}
	tw.Flush()
}
