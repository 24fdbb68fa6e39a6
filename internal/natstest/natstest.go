// Package natstest starts real NATS servers with JetStream on loopback, in
// this process or as child processes: one server, or a cluster whose nodes
// can be stopped or killed. The bridge's tests, demo and benchmark use it;
// nothing here mocks NATS.
package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Node describes one server: its name, store directory and loopback ports.
// A cluster's nodes route to each other's cluster ports.
type Node struct {
	Name        string `json:"name"`
	Dir         string `json:"dir"`
	ClientPort  int    `json:"client_port"`
	ClusterPort int    `json:"cluster_port,omitempty"` // 0: a single server
	Routes      []int  `json:"routes,omitempty"`       // the other nodes' cluster ports
}

// URL is the node's client URL.
func (n Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.ClientPort) }

func (n Node) options() *server.Options {
	o := &server.Options{
		ServerName: n.Name,
		Host:       "127.0.0.1",
		Port:       n.ClientPort,
		JetStream:  true,
		StoreDir:   n.Dir,
		NoLog:      true,
		NoSigs:     true,
		// A test's streams are small; keep the server's reservations small.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	if n.ClusterPort != 0 {
		o.Cluster = server.ClusterOpts{Name: "tachyon-test", Host: "127.0.0.1", Port: n.ClusterPort}
		for _, p := range n.Routes {
			o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats-route://127.0.0.1:%d", p))...)
		}
	}
	return o
}

// Start runs the node in this process and waits until it accepts clients.
func (n Node) Start() (*server.Server, error) {
	s, err := server.NewServer(n.options())
	if err != nil {
		return nil, fmt.Errorf("nats server %s: %w", n.Name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s: not ready on %s after 10s", n.Name, n.URL())
	}
	return s, nil
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Single describes one server storing under dir.
func Single(dir string) (Node, error) {
	p, err := freePorts(1)
	if err != nil {
		return Node{}, err
	}
	return Node{Name: "n1", Dir: filepath.Join(dir, "n1"), ClientPort: p[0]}, nil
}

// Cluster describes an n-node JetStream cluster storing under dir.
func Cluster(dir string, n int) ([]Node, error) {
	p, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i+1), Dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			ClientPort: p[2*i], ClusterPort: p[2*i+1]}
		for j := range n {
			if j != i {
				nodes[i].Routes = append(nodes[i].Routes, p[2*j+1])
			}
		}
	}
	return nodes, nil
}

// URLs lists the nodes' client URLs.
func URLs(nodes []Node) []string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.URL())
	}
	return u
}

// WaitJetStream waits until JetStream answers through the given servers (a
// cluster has elected its meta leader).
func WaitJetStream(urls []string, timeout time.Duration) error {
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(timeout))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream not ready at %s after %v: %w", strings.Join(urls, ","), timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartCluster runs an n-node cluster in this process, storing under dir,
// and waits for JetStream. Stop shuts every node down.
func StartCluster(dir string, n int) (nodes []Node, servers []*server.Server, err error) {
	nodes, err = Cluster(dir, n)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			Stop(servers)
		}
	}()
	for _, nd := range nodes {
		s, err := nd.Start()
		if err != nil {
			return nil, servers, err
		}
		servers = append(servers, s)
	}
	return nodes, servers, WaitJetStream(URLs(nodes), 30*time.Second)
}

// Stop shuts the servers down and waits for them.
func Stop(servers []*server.Server) {
	for _, s := range servers {
		if s != nil {
			s.Shutdown()
		}
	}
	for _, s := range servers {
		if s != nil {
			s.WaitForShutdown()
		}
	}
}

// NodeEnv is the environment variable that makes a program run one node
// (JSON of a Node) instead of its own job: see RunNodeIfAsked.
const NodeEnv = "TACHYON_NATS_NODE"

// RunNodeIfAsked runs the node described in $TACHYON_NATS_NODE until the
// process is killed, and reports whether it did (it returns only if not
// asked, or on an error). A test binary calls it from TestMain, so that a
// test can run cluster nodes as child processes and SIGKILL one.
func RunNodeIfAsked() (bool, error) {
	spec := os.Getenv(NodeEnv)
	if spec == "" {
		return false, nil
	}
	var n Node
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		return true, fmt.Errorf("%s: %w", NodeEnv, err)
	}
	s, err := n.Start()
	if err != nil {
		return true, err
	}
	fmt.Println("ready")
	s.WaitForShutdown()
	return true, errors.New("server shut down")
}

// Env returns the environment entry that asks a child to run node n.
func (n Node) Env() string {
	b, _ := json.Marshal(n)
	return NodeEnv + "=" + string(b)
}
