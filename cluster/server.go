package cluster

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/gossip"
)

// Server is one ICE server: a Raft member with its state machine, gossip
// membership and leader duties.
type Server struct {
	cfg    Config
	logger hclog.Logger

	raft   *raft.Raft
	stores *raftStores
	sm     *stateMachine
	gossip *gossip.Member
	// keyring is the gossip encryption keyring (nil: plaintext gossip).
	keyring *gossip.Keyring

	leases   leaseTable
	departed departures
	commit   *committer
	// bodyVersion is the command body version every server reads, as
	// gossip and the Raft configuration say (versionLoop keeps it on every
	// server, reconcileMembers on the leader too): the leader encodes new
	// commands in it, and every server writes snapshots a server of that
	// build can install, so servers of an older build in the cluster never
	// see entries they would reject (and so diverge) or snapshots they
	// cannot read. 0 until known.
	bodyVersion atomic.Int32
	// leaderHTTP caches the leader's HTTP address from gossip (Leader).
	leaderHTTP atomic.Pointer[leaderAddr]
	// clockOffset shifts the wall clock (ClockOffsetEnv, tests only).
	clockOffset time.Duration

	memberEvents chan struct{}
	leaderNotify chan bool
	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	wg           sync.WaitGroup

	// checkMu serialises corruption checks; checkRequests asks the leader
	// loop for one soon (corruptioncheck.go).
	checkMu       sync.Mutex
	checkRequests chan struct{}

	// barrierTerm is the term whose leader barrier completed: every entry
	// of earlier terms is applied to the state machine (leaderDuties).
	barrierTerm atomic.Uint64

	// signing is this server's grant-token key (signing.go).
	signing *signer

	// leaders is the leader changes this server saw (leaderhistory.go).
	leaders *leaderHistory
}

// New starts a server: opens its stores, starts Raft and gossip, joins the
// configured members and bootstraps when enough servers are seen.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	offset, err := clockOffset()
	if err != nil {
		return nil, fmt.Errorf("start server %s: %w", cfg.NodeID, err)
	}
	offset += cfg.ClockOffset
	if offset != 0 {
		cfg.Logger.Warn("wall clock shifted for a test", "env", ClockOffsetEnv, "offset", offset)
	}
	s := &Server{
		clockOffset:   offset,
		cfg:           cfg,
		logger:        cfg.Logger,
		sm:            newStateMachine(cfg.Logger.Named("fsm")),
		memberEvents:  make(chan struct{}, 1),
		leaderNotify:  make(chan bool, 16),
		checkRequests: make(chan struct{}, 1),
		shutdownCh:    make(chan struct{}),
	}
	s.sm.markJobs = make(chan markJob, markDigests)
	s.stores, err = openRaftStores(&cfg)
	if err != nil {
		return nil, err
	}
	s.sm.raiseBodyFloor(lastEntryBodyVersion(s.stores.logs))
	if cfg.TLS != nil {
		if err := checkTLSCluster(cfg.DataDir, cfg.TLS.Cluster()); err != nil {
			s.stores.close()
			return nil, err
		}
	}
	if s.signing, err = loadSigningKey(cfg.DataDir, cfg.Logger); err != nil {
		s.stores.close()
		return nil, fmt.Errorf("start server %s: %w", cfg.NodeID, err)
	}
	if !cfg.NoEventArchive {
		if s.sm.events, err = openEventStore(cfg.DataDir, cfg.EventsPerSegment, cfg.Logger.Named("events")); err != nil {
			s.stores.close()
			return nil, fmt.Errorf("start server %s: %w", cfg.NodeID, err)
		}
	}
	onDamage := func(index uint64, err error) { s.sm.halt(&api.Corruption{Index: index, Reason: err.Error()}) }
	s.stores.checked.onDamage.Store(&onDamage)
	s.raft, err = newRaft(&cfg, s)
	if err != nil {
		s.stores.close()
		if s.sm.events != nil {
			_ = s.sm.events.close()
		}
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if err = s.startGossip(); err != nil {
		s.abort()
		return nil, err
	}
	s.commit = newCommitter(s.raft, cfg.ApplyTimeout, s.shutdownCh)
	s.sm.snapshotVersion = s.snapshotVersion
	s.sm.onCorrupt = s.onCorrupt
	s.sm.self = cfg.NodeID
	s.wg.Add(8)
	go s.fetchEvents()
	go s.digestMarks()
	go s.versionLoop()
	go s.requestCheckAtStart()
	go func() { defer s.wg.Done(); s.commit.run() }()
	go s.joinLoop()
	go s.bootstrapLoop()
	go s.leaderLoop()
	s.watchLeaders()
	s.startSigningKeys()
	s.logger.Info("server started", "node_id", cfg.NodeID, "raft", cfg.RaftAddr, "gossip", cfg.GossipAddr, "http", cfg.HTTPAddr, "bootstrap_expect", cfg.BootstrapExpect)
	return s, nil
}

func (s *Server) abort() {
	_ = s.raft.Shutdown().Error()
	s.stores.close()
	if s.sm.events != nil {
		_ = s.sm.events.close()
	}
}

// Shutdown leaves gossip, stops Raft and closes the stores. It is safe to
// call more than once.
func (s *Server) Shutdown() error {
	var err error
	s.shutdownOnce.Do(func() {
		close(s.shutdownCh)
		if s.gossip != nil {
			if lerr := s.gossip.Leave(time.Second); lerr != nil {
				s.logger.Warn("gossip leave failed", "error", lerr)
			}
			_ = s.gossip.Shutdown()
		}
		if ferr := s.raft.Shutdown().Error(); ferr != nil {
			err = fmt.Errorf("shutdown raft: %w", ferr)
		}
		s.wg.Wait()
		s.stores.close()
		if s.sm.events != nil {
			if cerr := s.sm.events.close(); cerr != nil {
				s.logger.Warn("close event archive", "error", cerr)
			}
		}
		s.logger.Info("server stopped", "node_id", s.cfg.NodeID)
	})
	return err
}

// ID returns the server's node id.
func (s *Server) ID() string { return s.cfg.NodeID }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's id and HTTP address, as far as this server
// knows ("" while there is none).
func (s *Server) Leader() (id, httpAddr string) {
	_, lid := s.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	id = string(lid)
	if id == s.cfg.NodeID {
		return id, s.cfg.HTTPAddr
	}
	// Every forwarded request asks; decoding every member's gossip
	// metadata each time was a seventh of a busy follower's CPU.
	now := time.Now()
	if c := s.leaderHTTP.Load(); c != nil && c.id == id && now.Sub(c.at) < leaderAddrTTL {
		return id, c.http
	}
	for _, m := range s.members() {
		if m.ID == id {
			if m.HTTPAddr != "" {
				s.leaderHTTP.Store(&leaderAddr{id: id, http: m.HTTPAddr, at: now})
			}
			return id, m.HTTPAddr
		}
	}
	return id, ""
}

// leaderAddr is a leader's HTTP address as gossip said it at a time.
type leaderAddr struct {
	id, http string
	at       time.Time
}

// leaderAddrTTL is how long Leader trusts a cached address: a server that
// restarts under the same id with another address is found again after it.
const leaderAddrTTL = time.Second

// BodyVersion is the newest command body version every server of the
// cluster reads, as this server last saw it (0 while not yet known): the
// version it encodes new commands in while it leads, and with it the
// snapshot format it writes. It is what gossip says, but never older than
// the newest version in this server's log: a leader wrote that knowing
// every server read it, and a server that cannot read it cannot apply the
// log anyway.
func (s *Server) BodyVersion() int {
	return int(max(s.bodyVersion.Load(), s.sm.bodyFloor.Load()))
}

// Apply proposes a command through Raft on the leader and returns the state
// machine's result. The header's Time is stamped here with the leader's
// clock. A rejection by the state machine is reported in the result, not as
// an error; errors mean the command was not (or not knowingly) applied.
func (s *Server) Apply(ctx context.Context, t fsm.MessageType, h fsm.Header, body any) (*fsm.Result, error) {
	if !s.IsLeader() {
		return nil, fsm.ErrNotLeader
	}
	if err := s.refuseIfDiskFull(t); err != nil {
		return nil, err
	}
	// Committed time never goes backwards: a leader whose clock is behind
	// the newest committed time stamps just after it. Until this term's
	// barrier the state may lack entries of earlier terms, and with them
	// the newest time.
	if err := s.awaitBarrier(ctx); err != nil {
		return nil, err
	}
	h.Time = max(s.now().UnixNano(), s.sm.lastTime.Load()+1)
	// Encode in the newest version every server reads; a command type some
	// server could not read is refused.
	data, err := fsm.EncodeVersion(s.BodyVersion(), t, h, body)
	if err != nil {
		return nil, err
	}
	return s.applyRaw(ctx, t, data)
}

func (s *Server) applyRaw(ctx context.Context, t fsm.MessageType, data []byte) (*fsm.Result, error) {
	timeout := s.cfg.ApplyTimeout
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	res, err := s.commit.propose(ctx, t, data)
	if err != nil {
		return nil, err
	}
	metrics.MeasureSinceWithLabels([]string{"ice", "apply"}, start, []metrics.Label{{Name: "type", Value: t.String()}})
	return res, nil
}

// ConsistentRead makes the next read on this server linearizable: it checks
// that this server is still the leader and waits until everything appended
// before the call has been applied locally.
func (s *Server) ConsistentRead(ctx context.Context) error {
	if !s.IsLeader() {
		return fsm.ErrNotLeader
	}
	// raft's applied index moves when an entry is handed to the state
	// machine, not when it is applied; until this term's barrier is done a
	// new leader's state may still lack acknowledged entries of earlier
	// terms (an acknowledged write of this term was applied before its
	// future returned).
	if err := s.awaitBarrier(ctx); err != nil {
		return err
	}
	last := s.raft.LastIndex()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leadership: %w", fsm.ErrNotLeader)
	}
	for s.raft.AppliedIndex() < last {
		_, ch := s.sm.index()
		select {
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", last, ctx.Err())
		}
	}
	return nil
}

// awaitBarrier returns once this leader's barrier of its term is done, so
// its state holds every entry of earlier terms (leaderDuties).
func (s *Server) awaitBarrier(ctx context.Context) error {
	if s.barrierTerm.Load() == s.raft.CurrentTerm() {
		return nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.barrierTerm.Load() != s.raft.CurrentTerm() {
		if !s.IsLeader() {
			return fsm.ErrNotLeader
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for the new leader to apply earlier terms: %w", ctx.Err())
		}
	}
	return nil
}

// WaitIndex blocks until the state's applied index is past after or ctx
// ends, and returns the applied index (a blocking query).
func (s *Server) WaitIndex(ctx context.Context, after uint64) (uint64, error) {
	return s.sm.waitIndex(ctx, after)
}

// Read runs f with the local state under the read lock. f must not keep
// references to mutable parts beyond the call; records are immutable.
func (s *Server) Read(f func(st *fsm.State)) { s.sm.read(f) }

// Digest returns the applied index and the state digest there.
func (s *Server) Digest() (uint64, fsm.Hash) { return s.sm.digestAt() }

// Status returns this server's view of the cluster. AppliedIndex and Digest
// belong together: the digest of the state at that index.
func (s *Server) Status() (api.Status, error) { return s.status(true) }

// StatusWithoutDigest is Status without the digest of the live state
// (Digest empty, AppliedIndex the state's index): what a corruption check
// polls for, which reads only the marks. Digesting the whole state for
// every poll was a quarter of a leader's CPU during a rollout of a million
// runs.
func (s *Server) StatusWithoutDigest() (api.Status, error) { return s.status(false) }

func (s *Server) status(digest bool) (api.Status, error) {
	st := api.Status{
		NodeID:      s.cfg.NodeID,
		State:       s.raft.State().String(),
		Term:        s.raft.CurrentTerm(),
		CommitIndex: s.raft.CommitIndex(),
		LastIndex:   s.raft.LastIndex(),
		RaftApplied: s.raft.AppliedIndex(),
	}
	st.Leader, st.LeaderHTTP = s.Leader()
	st.Corrupt = s.Corruption()
	s.sm.read(func(fs *fsm.State) {
		st.Alarms = apiAlarms(fs.Alarms())
		st.Components, st.Nodes, st.Runs, _ = fs.Counts()
		st.Events = &api.EventsStatus{Total: fs.EventCount(), Held: fs.HeldEvents(), FirstHeld: fs.FirstEventSeq(), Checkpoint: fs.Checkpoint().Seq}
		if st.Events.Total > 0 {
			st.Events.Head = fs.Head().String()
		}
		if gc := fs.LastGC(); gc.Index > 0 {
			r := api.GCResult(gc)
			st.LastGC = &r
		}
	})
	if s.sm.events != nil {
		st.Events.Archive = s.sm.events.status()
	}
	st.Marks = s.sm.marks.list()
	if digest {
		idx, d := s.sm.digestAt()
		st.AppliedIndex, st.Digest = idx, d.String()
	} else {
		s.sm.read(func(fs *fsm.State) { st.AppliedIndex = fs.Index() })
	}
	servers, err := s.Servers()
	if err != nil {
		return st, err
	}
	st.Servers = servers
	return st, nil
}

// Servers returns the Raft configuration joined with gossip addresses.
func (s *Server) Servers() ([]api.ServerInfo, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	members := map[string]Member{}
	for _, m := range s.members() {
		members[m.ID] = m
	}
	leader, _ := s.Leader()
	var out []api.ServerInfo
	for _, srv := range f.Configuration().Servers {
		id := string(srv.ID)
		info := api.ServerInfo{ID: id, RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: id == leader, Gossip: "unknown"}
		if m, ok := members[id]; ok {
			info.HTTPAddr, info.Gossip = m.HTTPAddr, m.Status
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Members returns the gossip members (servers and agents).
func (s *Server) Members() []Member { return s.members() }

// RemovePeer removes a server from the Raft configuration (leader only).
func (s *Server) RemovePeer(id string) error {
	if !s.IsLeader() {
		return fsm.ErrNotLeader
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove peer %s: %w", id, err)
	}
	s.logger.Info("removed raft peer", "id", id)
	return s.clearAlarms(id)
}

// clearAlarms commits the clearing of every alarm naming a removed server:
// the server that rejoins under its id starts from a fresh data dir.
func (s *Server) clearAlarms(id string) error {
	var alarms []*fsm.Alarm
	s.sm.read(func(st *fsm.State) { alarms = st.AlarmsFor(id) })
	for _, a := range alarms {
		res, err := s.Apply(context.Background(), fsm.AlarmClearType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "remove-peer"},
			&fsm.AlarmClearRequest{Type: a.Type, Server: id, Reason: "removed from the raft configuration"})
		if err == nil {
			err = res.FirstErr()
		}
		if err != nil {
			return fmt.Errorf("removed peer %s, but clearing its %s alarm failed (remove it again to retry): %w", id, a.Type, err)
		}
		s.logger.Info("alarm cleared: the server was removed", "server", id, "type", a.Type)
	}
	return nil
}

// TransferLeadership hands leadership to another voter (leader only).
func (s *Server) TransferLeadership() error {
	if !s.IsLeader() {
		return fsm.ErrNotLeader
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// Snapshot forces a Raft snapshot now.
func (s *Server) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Stats returns hashicorp/raft's statistics of this server.
func (s *Server) Stats() map[string]string { return s.raft.Stats() }
