package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/internal/proctest"
)

// counterFSM is the trivial state machine of the raw Raft baseline: it
// counts applied entries.
type counterFSM struct{ n atomic.Uint64 }

func (f *counterFSM) Apply(*raft.Log) any { f.n.Add(1); return nil }

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	return counterSnapshot(f.n.Load()), nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.n.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

type counterSnapshot uint64

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// RawNode is one member of the raw Raft cluster.
type RawNode struct {
	ID        string
	Addr      string
	Raft      *raft.Raft
	FSM       *counterFSM
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
}

// RawCluster is three hashicorp/raft nodes in this process, each with its
// own raft-boltdb/v2 file (NoFreelistSync, as ICE opens it) and file
// snapshot store, talking over real TCP transports on loopback. Raft's
// configuration is the library default.
type RawCluster struct {
	Nodes []*RawNode
}

// StartRawCluster starts n nodes under dir and bootstraps them.
func StartRawCluster(dir string, n int) (*RawCluster, error) {
	c := &RawCluster{}
	var servers []raft.Server
	for i := 0; i < n; i++ {
		addr, err := proctest.FreeAddr("127.0.0.1")
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("r%d", i+1)
		c.Nodes = append(c.Nodes, &RawNode{ID: id, Addr: addr})
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	for _, nd := range c.Nodes {
		if err := nd.start(filepath.Join(dir, nd.ID)); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.Nodes[0].Raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		c.Shutdown()
		return nil, fmt.Errorf("bootstrap raw raft cluster: %w", err)
	}
	return c, nil
}

func (nd *RawNode) start(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var err error
	nd.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return fmt.Errorf("open boltdb of %s: %w", nd.ID, err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		return fmt.Errorf("open snapshot store of %s: %w", nd.ID, err)
	}
	nd.transport, err = raft.NewTCPTransport(nd.Addr, nil, 8, 10*time.Second, io.Discard)
	if err != nil {
		return fmt.Errorf("listen raft %s on %s: %w", nd.ID, nd.Addr, err)
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(nd.ID)
	cfg.Logger = hclog.NewNullLogger()
	nd.FSM = &counterFSM{}
	nd.Raft, err = raft.NewRaft(cfg, nd.FSM, nd.store, nd.store, snaps, nd.transport)
	if err != nil {
		return fmt.Errorf("start raft %s: %w", nd.ID, err)
	}
	return nil
}

// WaitLeader waits until one node is the leader.
func (c *RawCluster) WaitLeader(timeout time.Duration) (*RawNode, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, nd := range c.Nodes {
			if nd.Raft != nil && nd.Raft.State() == raft.Leader {
				return nd, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, errors.New("raw raft cluster: no leader")
}

// Shutdown stops every node and closes its stores.
func (c *RawCluster) Shutdown() {
	for _, nd := range c.Nodes {
		if nd.Raft != nil {
			_ = nd.Raft.Shutdown().Error()
		}
		if nd.transport != nil {
			_ = nd.transport.Close()
		}
		if nd.store != nil {
			_ = nd.store.Close()
		}
	}
}
