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
	// Corrupt, when set, says this server halted, at a damaged log entry or
	// because a committed alarm names it: it applies nothing more and
	// refuses reads and writes.
	Corrupt *Corruption `json:"corrupt,omitempty"`
	// Alarms are the cluster's raised alarms, from the replicated state
	// (the same on every server that applied them).
	Alarms []Alarm `json:"alarms,omitempty"`
	// Marks are this server's state digests at the most recent digest
	// marks, oldest first: what the leader's corruption check compares.
	Marks []MarkDigest `json:"marks,omitempty"`

	// Live counts of the replicated state this server holds.
	Components int `json:"components"`
	Nodes      int `json:"nodes"`
	Runs       int `json:"runs"`
	// Events is the event chain on this server: in memory and archived.
	Events *EventsStatus `json:"events,omitempty"`
	// LastGC is what the newest collection that changed anything did.
	LastGC *GCResult `json:"last_gc,omitempty"`
}

// EventsStatus is a server's event chain: events 1 to Checkpoint may have
// left memory for the archive; FirstHeld to Total are in memory.
type EventsStatus struct {
	Total      uint64 `json:"total"`
	Held       int    `json:"held"`
	FirstHeld  uint64 `json:"first_held"`
	Checkpoint uint64 `json:"checkpoint"`
	// Head is the hash of the newest event (the chain head), hex; with
	// Total it names where the chain stands on this server.
	Head string `json:"head,omitempty"`
	// Archive is this server's segment files (<data-dir>/events).
	Archive *ArchiveStatus `json:"archive,omitempty"`
}

// ArchiveStatus is a server's event archive.
type ArchiveStatus struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
	// First and Last are the first and last event seq in the archive,
	// Synced the last one known to be on disk.
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	Synced uint64 `json:"synced"`
	// MissingFrom and MissingThrough, when set, are events the archive
	// lacks (the server was restored from a snapshot): it is fetching them
	// from a peer, and releases nothing from memory until it has them.
	MissingFrom    uint64 `json:"missing_from,omitempty"`
	MissingThrough uint64 `json:"missing_through,omitempty"`
	// Error, when set, says why archiving stopped.
	Error string `json:"error,omitempty"`
}

// GCResult is what a collection did (POST /v1/operator/gc, and
// Status.LastGC).
type GCResult struct {
	// Index and Time are the collecting entry's (0: it changed nothing).
	Index uint64 `json:"index"`
	Time  int64  `json:"time"`
	// Runs and Components are how many left the state.
	Runs       int `json:"runs"`
	Components int `json:"components"`
	// Archived is how many events the checkpoint moved past, Checkpoint
	// its seq after.
	Archived   uint64 `json:"archived"`
	Checkpoint uint64 `json:"checkpoint"`
}

// GCRequest is POST /v1/operator/gc: a collection now, with the server's
// configured retentions where a field is empty. Durations are Go
// durations ("4h", "0s").
type GCRequest struct {
	RunRetention   string  `json:"run_retention,omitempty"`
	KeepPerSlot    int     `json:"keep_per_slot,omitempty"`
	EventRetention string  `json:"event_retention,omitempty"`
	EventKeep      *uint64 `json:"event_keep,omitempty"`
}

// ChainCheck is GET /v1/operator/events/verify: one server's check of its
// whole event chain, archive included.
type ChainCheck struct {
	NodeID string `json:"node_id"`
	// Archived events 1..Archived were read from the segment files,
	// Held from memory; Total is the head's seq.
	Archived uint64 `json:"archived"`
	Held     int    `json:"held"`
	Total    uint64 `json:"total"`
	Head     string `json:"head"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// Corruption is why a server halted.
type Corruption struct {
	// Index is the log index of the first entry that failed its checksum,
	// or, for an alarm, the index the alarm is about.
	Index uint64 `json:"index"`
	// Alarm is true when the server halted because a committed alarm names
	// it (its state differed from the majority's).
	Alarm  bool   `json:"alarm,omitempty"`
	Reason string `json:"reason"`
}

// Alarm is a raised alarm: the cluster says a server must not be trusted.
type Alarm struct {
	// Type is "corrupt".
	Type   string `json:"type"`
	Server string `json:"server"`
	// Index is the digest mark compared, or the entry where the server
	// halted.
	Index       uint64 `json:"index"`
	Detail      string `json:"detail"`
	RaisedIndex uint64 `json:"raised_index"`
	// RaisedTime is the leader's time of the raise, unix nanoseconds.
	RaisedTime int64 `json:"raised_time"`
}

// CorruptionCheck is the result of one cross-server corruption check
// (POST /v1/operator/raft/check).
type CorruptionCheck struct {
	// Index is the digest mark the voters' digests were compared at.
	Index uint64 `json:"index"`
	// Majority is the digest more than half of the voters hold ("": none).
	Majority string          `json:"majority,omitempty"`
	Servers  []CheckedServer `json:"servers"`
	// Raised names the servers this check raised a corrupt alarm for.
	Raised []string `json:"raised,omitempty"`
}

// CheckedServer is one voter's part in a corruption check.
type CheckedServer struct {
	ID string `json:"id"`
	// Result is ok, mismatch, halted, unreachable, behind or "no digest".
	Result string `json:"result"`
	Digest string `json:"digest,omitempty"`
	Detail string `json:"detail,omitempty"`
	// HaltIndex is where a halted server stopped; Alarmed says it halted
	// because an alarm names it.
	HaltIndex uint64 `json:"halt_index,omitempty"`
	Alarmed   bool   `json:"alarmed,omitempty"`
}

// MarkDigest is a server's state digest at a digest mark.
type MarkDigest struct {
	Index  uint64 `json:"index"`
	Digest string `json:"digest"`
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
