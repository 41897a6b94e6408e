package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Config configures a Server.
type Config struct {
	// NodeID is the server's unique id; it is its Raft server id.
	NodeID string
	// DataDir holds raft/raft.db (log and stable store) and raft/snapshots.
	DataDir string
	// RaftAddr is the TCP address Raft binds and advertises.
	RaftAddr string
	// GossipAddr is the address memberlist binds and advertises (TCP and UDP).
	GossipAddr string
	// HTTPAddr is the API address other servers forward requests to.
	HTTPAddr string
	// BootstrapExpect is how many servers to wait for before bootstrapping a
	// new cluster. 0 means never bootstrap: join an existing cluster.
	BootstrapExpect int
	// Join lists gossip addresses of existing members to join.
	Join []string

	// SnapshotThreshold, SnapshotInterval and TrailingLogs tune automatic
	// snapshots (zero keeps hashicorp/raft's defaults).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// SnapshotRetain is how many snapshots the file store keeps (default 2).
	SnapshotRetain int

	// ApplyTimeout bounds a proposal (default 10s).
	ApplyTimeout time.Duration
	// ReconcileInterval is how often the leader reconciles without being
	// woken by a change (default 1s).
	ReconcileInterval time.Duration
	// LeaseTTL is how long an agent's lease lasts after a renewal (default
	// 10s); the agent stops its runs when it could not renew for this long.
	LeaseTTL time.Duration
	// LeaseMargin is how much longer the leader waits before it declares a
	// silent node down and replaces its runs (default: LeaseTTL).
	LeaseMargin time.Duration
	// Fast shortens Raft's timeouts for in-process tests on loopback.
	Fast bool
	// CorruptionCheckInterval is how often the leader compares the voters'
	// state digests (default 1m; negative: never). It also checks when it
	// takes office and when a server that started asks it to.
	CorruptionCheckInterval time.Duration
	// CorruptionCheckTimeout bounds how long a check waits for the voters
	// to apply its digest mark (default 15s).
	CorruptionCheckTimeout time.Duration
	// GCInterval is how often the leader collects (default 1m; negative:
	// never, though `ice operator gc` still does). RunRetention (default
	// 4h) is how long TERMINATED runs and stopped components stay;
	// RunKeepPerSlot (default 3) how many of the newest TERMINATED runs of
	// each slot stay regardless. EventRetention (default 10m) and
	// EventRetentionCount (default 50,000) say which events stay in
	// memory: those newer than the age and the newest count, whichever
	// keeps more; older ones are in <data-dir>/events only.
	// EventRetentionMax (default 500,000, at least EventRetentionCount)
	// caps that: when more events than it are held, the leader archives
	// the older ones whatever their age, and collects early when they
	// reach one and a half times it.
	GCInterval          time.Duration
	RunRetention        time.Duration
	RunKeepPerSlot      int
	EventRetention      time.Duration
	EventRetentionCount uint64
	EventRetentionMax   uint64
	// NoEventArchive keeps every event in memory and writes no archive
	// (tests of the state machine alone).
	NoEventArchive bool
	// EventsPerSegment is the number of events in an archive segment file
	// (0: eventarchive.PerSegment). Every server of a cluster must use the
	// same value, so that their segments are the same bytes; tests make
	// it small.
	EventsPerSegment uint64

	// ClockOffset shifts the server's wall clock, for tests of clock
	// trouble only (ClockOffsetEnv adds to it in real processes).
	ClockOffset time.Duration

	// TLS, when set, is the server's certificate store: Raft runs over
	// mutual TLS and accepts only server certificates of the cluster.
	// Without it Raft is plaintext (--insecure).
	TLS *tlsutil.Store
	// GossipKey, when set, is the gossip encryption key (32 bytes, parsed
	// from --gossip-key by gossip.ParseKey); the keyring persists in
	// <data-dir>/gossip.keyring, which wins over it at a restart (see
	// gossip.OpenKeyring). Without it gossip is plaintext (--insecure).
	GossipKey []byte

	Logger hclog.Logger
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" {
		return fmt.Errorf("config: node id is required")
	}
	if c.DataDir == "" {
		return fmt.Errorf("config: data dir is required")
	}
	if c.RaftAddr == "" || c.GossipAddr == "" {
		return fmt.Errorf("config: raft and gossip addresses are required")
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("config: bootstrap-expect %d is negative", c.BootstrapExpect)
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = 2
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = time.Second
	}
	if c.CorruptionCheckInterval == 0 {
		c.CorruptionCheckInterval = time.Minute
	}
	if c.CorruptionCheckTimeout <= 0 {
		c.CorruptionCheckTimeout = 15 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if err := c.gcDefaults(); err != nil {
		return err
	}
	if c.LeaseMargin <= 0 {
		c.LeaseMargin = c.LeaseTTL
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
