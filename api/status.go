package api

import "time"

// ServerInfo describes one member of the Raft configuration.
type ServerInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
	// Gossip is the server's gossip status as this server sees it.
	Gossip string `json:"gossip"`
}

// Status is GET /v1/status: a point-in-time view of this server's Raft state.
type Status struct {
	NodeID       string       `json:"node_id"`
	State        string       `json:"state"`
	Leader       string       `json:"leader"`
	LeaderHTTP   string       `json:"leader_http,omitempty"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	LastIndex    uint64       `json:"last_index"`
	RaftApplied  uint64       `json:"raft_applied_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Digest       string       `json:"digest"`
	Servers      []ServerInfo `json:"servers"`
	// Secure is true when the server runs with TLS, gossip encryption and
	// ACLs; false under --insecure.
	Secure bool `json:"secure"`
	// ACLs is true when requests must prove their authority.
	ACLs bool `json:"acls"`
	// Corrupt, when set, says this server halted at a damaged log entry:
	// it applies nothing more and refuses reads and writes.
	Corrupt *Corruption `json:"corrupt,omitempty"`
}

// Corruption is why a server halted.
type Corruption struct {
	// Index is the log index of the first entry that failed its checksum.
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// ArchiveMeta describes a snapshot archive.
type ArchiveMeta struct {
	Format          string    `json:"format"`
	Index           uint64    `json:"index"`
	Term            uint64    `json:"term"`
	SnapshotVersion int       `json:"snapshot_version"`
	Digest          string    `json:"digest"`
	ChainHead       string    `json:"chain_head"`
	Components      int       `json:"components"`
	Nodes           int       `json:"nodes"`
	Runs            int       `json:"runs"`
	Events          int       `json:"events"`
	Created         time.Time `json:"created"`
	Server          string    `json:"server,omitempty"`
}
