package rpc

import (
	"context"
	"io"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

// Backend is what the API needs from a server; *cluster.Server provides it.
type Backend interface {
	// ID is the server's node id.
	ID() string
	// IsLeader reports whether this server leads.
	IsLeader() bool
	// Leader returns the leader's id and HTTP address, or "" when unknown.
	Leader() (id, httpAddr string)
	// Apply proposes a command on the leader.
	Apply(ctx context.Context, t fsm.MessageType, h fsm.Header, body any) (*fsm.Result, error)
	// ConsistentRead prepares a linearizable read on the leader.
	ConsistentRead(ctx context.Context) error
	// WaitIndex blocks until the applied index is past after.
	WaitIndex(ctx context.Context, after uint64) (uint64, error)
	// Read runs f with the state under a read lock.
	Read(f func(st *fsm.State))
	// Status reports this server's view of the cluster.
	Status() (api.Status, error)
	// RemovePeer removes a server from the Raft configuration.
	RemovePeer(id string) error
	// TransferLeadership hands leadership to another voter.
	TransferLeadership() error
	// Heartbeat renews a node's lease (leader only).
	Heartbeat(node string) error
	// LeaseTTL is how long a renewed lease lasts.
	LeaseTTL() time.Duration
	// Leases is when each node's agent last renewed its lease, as the
	// leader saw it (leader only: fsm.ErrNotLeader elsewhere).
	Leases() (map[string]time.Time, error)
	// SaveSnapshot writes a verified snapshot archive.
	SaveSnapshot(w io.Writer) (api.ArchiveMeta, error)
	// RestoreSnapshot replaces the cluster's state with an archive's.
	RestoreSnapshot(r io.Reader) (api.ArchiveMeta, error)
	// Corruption reports why the server halted, at a damaged entry or by
	// an alarm naming it (nil: it did not).
	Corruption() *api.Corruption
	// CheckCorruption compares the voters' state digests now (leader only)
	// and raises alarms for the servers that differ.
	CheckCorruption(ctx context.Context) (*api.CorruptionCheck, error)
	// RequestCorruptionCheck asks the leader loop for a check soon.
	RequestCorruptionCheck()
	// LeaderChanges is the leader changes this server observed since it
	// started, newest first (a bounded history).
	LeaderChanges() []cluster.LeaderChange
	// Now is the server's wall clock, the one the leader stamps commands
	// with (token expiries and drain deadlines use it).
	Now() time.Time
}

var _ Backend = (*cluster.Server)(nil)
