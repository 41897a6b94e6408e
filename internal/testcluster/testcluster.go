// Package testcluster starts in-process ICE clusters for tests: real
// cluster.Servers (hashicorp/raft over raft-boltdb on disk, TCP transport,
// memberlist gossip) on loopback ports, each with its HTTP API, logs routed
// to t.Log. It is only for tests: it fails the test on any setup error.
//
// # Usage
//
//	c := testcluster.New(t, 3)
//	leader := c.WaitLeader(t)
//	client := c.Client(c.Follower(t))
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/rpc"
)

// Node is one server of a test cluster.
type Node struct {
	ID         string
	DataDir    string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string

	Server *cluster.Server
	http   *http.Server
}

// Running reports whether the node's server is up.
func (n *Node) Running() bool { return n.Server != nil }

// Options tune a test cluster.
type Options struct {
	// Configure, when set, adjusts each server's configuration.
	Configure func(cfg *cluster.Config)
	// API, when set, are the API's security options (ACLs on).
	API *rpc.Options
}

// Cluster is a set of in-process servers.
type Cluster struct {
	t     testing.TB
	opts  Options
	Nodes []*Node
}

// New starts n servers that bootstrap together and stops them at the end of
// the test.
func New(t testing.TB, n int, opts ...Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	if len(opts) > 0 {
		c.opts = opts[0]
	}
	for i := 0; i < n; i++ {
		node := &Node{
			ID:         fmt.Sprintf("s%d", i+1),
			DataDir:    filepath.Join(t.TempDir(), fmt.Sprintf("s%d", i+1)),
			HTTPAddr:   FreeAddr(t),
			RaftAddr:   FreeAddr(t),
			GossipAddr: FreeAddr(t),
		}
		c.Nodes = append(c.Nodes, node)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, node := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(node, n)
		}()
	}
	wg.Wait()
	t.Cleanup(c.Shutdown)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start test cluster: %v", err)
	}
	return c
}

// FreeAddr returns a loopback address whose port is free for both TCP and
// UDP (memberlist binds both), from proctest.FreeAddr, which says why ports
// come from below the kernel's ephemeral range.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := proctest.FreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func (c *Cluster) start(node *Node, expect int) error {
	var join []string
	for _, other := range c.Nodes {
		if other != node {
			join = append(join, other.GossipAddr)
		}
	}
	cfg := cluster.Config{
		NodeID:          node.ID,
		DataDir:         node.DataDir,
		RaftAddr:        node.RaftAddr,
		GossipAddr:      node.GossipAddr,
		HTTPAddr:        node.HTTPAddr,
		BootstrapExpect: expect,
		Join:            join,
		Fast:            true,
		Logger:          testLogger(c.t, node.ID),
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	ln, err := net.Listen("tcp", node.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http for %s: %w", node.ID, err)
	}
	srv, err := cluster.New(cfg)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("start %s: %w", node.ID, err)
	}
	node.Server = srv
	var apiOpts []rpc.Options
	if c.opts.API != nil {
		apiOpts = append(apiOpts, *c.opts.API)
	}
	h := rpc.NewServer(srv, nil, cfg.Logger.Named("http"), apiOpts...)
	hs := &http.Server{Handler: h}
	hs.RegisterOnShutdown(h.Close)
	node.http = hs
	go func() { _ = hs.Serve(ln) }()
	return nil
}

// AddServer starts one more server that joins the running ones (no
// bootstrap), as a replacement would.
func (c *Cluster) AddServer(t testing.TB) *Node {
	t.Helper()
	node := &Node{
		ID:         fmt.Sprintf("s%d", len(c.Nodes)+1),
		DataDir:    filepath.Join(t.TempDir(), fmt.Sprintf("s%d", len(c.Nodes)+1)),
		HTTPAddr:   FreeAddr(t),
		RaftAddr:   FreeAddr(t),
		GossipAddr: FreeAddr(t),
	}
	c.Nodes = append(c.Nodes, node)
	if err := c.start(node, 0); err != nil {
		t.Fatalf("add server: %v", err)
	}
	return node
}

// Stop shuts a node down, keeping its data dir.
func (c *Cluster) Stop(node *Node) {
	c.t.Helper()
	if node.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = node.http.Shutdown(ctx)
	if err := node.Server.Shutdown(); err != nil {
		c.t.Logf("stop %s: %v", node.ID, err)
	}
	node.Server, node.http = nil, nil
}

// Restart starts a stopped node again from its data dir, on its addresses.
func (c *Cluster) Restart(node *Node) {
	c.t.Helper()
	if node.Server != nil {
		c.t.Fatalf("restart %s: still running", node.ID)
	}
	if err := c.start(node, 0); err != nil {
		c.t.Fatalf("restart %s: %v", node.ID, err)
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for _, n := range c.Nodes {
		c.Stop(n)
	}
}

// WaitLeader waits up to 10 s until every running node agrees on one leader
// that has recorded the cluster id (the first leader's first entry), and
// returns it: tests then see only their own entries after it.
func (c *Cluster) WaitLeader(t testing.TB) *Node {
	t.Helper()
	var leader *Node
	WaitFor(t, 10*time.Second, "a leader all running servers agree on", func() bool {
		leader = nil
		var id string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			lid, _ := n.Server.Leader()
			if lid == "" || (id != "" && lid != id) {
				return false
			}
			id = lid
			if n.Server.IsLeader() {
				leader = n
			}
		}
		if leader == nil || leader.ID != id {
			return false
		}
		var cluster string
		leader.Server.Read(func(st *fsm.State) { cluster = st.ClusterID() })
		return cluster != ""
	})
	return leader
}

// Follower returns a running node that is not the leader.
func (c *Cluster) Follower(t testing.TB) *Node {
	t.Helper()
	leader := c.WaitLeader(t)
	for _, n := range c.Nodes {
		if n.Running() && n != leader {
			return n
		}
	}
	t.Fatalf("no running follower")
	return nil
}

// Client returns an API client for a node.
func (c *Cluster) Client(n *Node) *api.Client {
	cl := api.NewClient(n.HTTPAddr)
	cl.Operator = "test"
	return cl
}

// WaitConverged waits until every running node applied the same index and
// reports the same digest, and returns that index.
func (c *Cluster) WaitConverged(t testing.TB) uint64 {
	t.Helper()
	var idx uint64
	WaitFor(t, 15*time.Second, "all running servers at one applied index with equal digests", func() bool {
		var digest string
		first := true
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			st, err := n.Server.Status()
			if err != nil {
				return false
			}
			if first {
				idx, digest, first = st.AppliedIndex, st.Digest, false
				continue
			}
			if st.AppliedIndex != idx || st.Digest != digest {
				return false
			}
		}
		return !first && idx > 0
	})
	return idx
}

// WaitFor polls cond every 20 ms until it holds or timeout passes, then
// fails the test naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger routes a server's logs to t.Log.
func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: &tWriter{t: t},
	})
}

type tWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { _ = recover() }() // logging after the test ended
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
