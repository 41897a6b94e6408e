package cluster

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/gossip"
)

// RoleServer is the role of a server in gossip metadata (internal/gossip).
const RoleServer = gossip.RoleServer

// Member is a gossip member as this server sees it.
type Member struct {
	ID         string `json:"id"`
	Role       string `json:"role"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	// Status is memberlist's view: alive, suspect, dead or left.
	Status string `json:"status"`
	// BodyVersion is the newest command body version a server reads
	// (fsm.BodyVersion of its build; 1 for builds that did not say).
	BodyVersion int `json:"body_version,omitempty"`
}

// memberEvents turns gossip membership events into wake-ups of the loops
// that act on membership (bootstrap, reconcileMembers), and remembers the
// members that died or left.
type memberEvents struct {
	wake     chan<- struct{}
	departed *departures
}

// departures remembers members that gossip reported dead or left, which
// memberlist itself no longer lists.
type departures struct {
	mu    sync.Mutex
	nodes map[string]string // id → "dead" or "left"
}

func (d *departures) set(id, status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nodes == nil {
		d.nodes = map[string]string{}
	}
	if status == "" {
		delete(d.nodes, id)
		return
	}
	d.nodes[id] = status
}

func (d *departures) get(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nodes[id]
}

func (e *memberEvents) notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// NotifyJoin forgets that a member had departed.
func (e *memberEvents) NotifyJoin(n *memberlist.Node) {
	e.departed.set(n.Name, "")
	e.notify()
}

// NotifyLeave records a member that died or left. (memberlist hands over a
// copy whose State still reads alive, so the two cannot be told apart here.)
func (e *memberEvents) NotifyLeave(n *memberlist.Node) {
	e.departed.set(n.Name, "dead")
	e.notify()
}

// NotifyUpdate wakes the membership loops: a member's metadata changed.
func (e *memberEvents) NotifyUpdate(*memberlist.Node) { e.notify() }

// startGossip opens the server's gossip keyring (cfg.GossipKey, persisted
// in <data-dir>/gossip.keyring, which wins at a restart) and starts
// memberlist with the server's metadata. With a keyring, a tracked goroutine
// closes it at shutdown.
func (s *Server) startGossip() error {
	logger := s.cfg.Logger.Named("gossip")
	kr, err := gossip.OpenKeyring(gossip.KeyringConfig{
		Key:    s.cfg.GossipKey,
		Path:   filepath.Join(s.cfg.DataDir, gossip.KeyringFile),
		Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("gossip keyring of %s: %w", s.cfg.NodeID, err)
	}
	g, err := gossip.Start(gossip.Options{
		Name:    s.cfg.NodeID,
		Addr:    s.cfg.GossipAddr,
		Meta:    gossip.Meta{Role: gossip.RoleServer, Raft: s.cfg.RaftAddr, HTTP: s.cfg.HTTPAddr, Body: fsm.BodyVersion},
		Events:  &memberEvents{wake: s.memberEvents, departed: &s.departed},
		Logger:  logger,
		Fast:    s.cfg.Fast,
		Keyring: kr,
	})
	if err != nil {
		kr.Close()
		return err
	}
	s.gossip, s.keyring = g, kr
	if kr != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			<-s.shutdownCh
			kr.Close()
		}()
	}
	return nil
}

// members returns the gossip members sorted by id (their gossip name),
// from gossip's copies of memberlist's nodes.
func (s *Server) members() []Member {
	var out []Member
	for _, n := range s.gossip.Members() {
		out = append(out, memberFromNode(n))
	}
	return out
}

func memberFromNode(n memberlist.Node) Member {
	m := Member{ID: n.Name, GossipAddr: n.Address(), Status: gossip.Status(n.State)}
	if meta, err := gossip.DecodeMeta(n.Meta); err == nil {
		m.Role, m.RaftAddr, m.HTTPAddr, m.BodyVersion = meta.Role, meta.Raft, meta.HTTP, max(meta.Body, 1)
	}
	return m
}

// aliveServers returns the alive server members.
func (s *Server) aliveServers() []Member {
	var out []Member
	for _, m := range s.members() {
		if m.Role == RoleServer && m.Status == "alive" && m.RaftAddr != "" {
			out = append(out, m)
		}
	}
	return out
}

// joinLoop joins the configured gossip addresses, retrying until one
// answers or the server shuts down.
func (s *Server) joinLoop() {
	defer s.wg.Done()
	if len(s.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := s.gossip.Join(s.cfg.Join)
		if err == nil && n > 0 {
			s.logger.Info("joined cluster", "contacted", n, "join", s.cfg.Join)
			return
		}
		s.logger.Warn("join failed, retrying", "join", s.cfg.Join, "error", err, "retry_in", backoff)
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// versionLoop keeps bodyVersion current on every server (followers write
// snapshots too, and may lead next): at start, then every
// ReconcileInterval.
func (s *Server) versionLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		if f := s.raft.GetConfiguration(); f.Error() == nil {
			s.setBodyVersion(clusterBodyVersion(f.Configuration().Servers, s.members()))
		}
		select {
		case <-s.shutdownCh:
			return
		case <-tick.C:
		}
	}
}

// setBodyVersion records the body version gossip says every server reads.
// The version in use never goes below the newest one the log holds
// (BodyVersion): a voter missing from gossip for a while, or a restarted
// server that has not heard from the others yet, does not make a leader
// fall back to encodings that cannot carry what the cluster already does.
func (s *Server) setBodyVersion(v int) {
	before := s.BodyVersion()
	s.bodyVersion.Store(int32(v))
	if now := s.BodyVersion(); now != before {
		s.logger.Info("cluster reads command body version", "body_version", now, "was", before, "gossip", v, "log", s.sm.bodyFloor.Load())
	}
}

// lastEntryBodyVersion is the body version of the newest command in a
// log store (0: none, or unreadable: raft reports that itself at start).
// Raft applies the log only once the entries are known committed, so a
// restarted server that leads at once would otherwise know no floor.
func lastEntryBodyVersion(logs raft.LogStore) int {
	last, err := logs.LastIndex()
	if err != nil {
		return 0
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return 0
	}
	// The newest entries may be configuration changes or no-ops: look back
	// a little for a command.
	for i := last; i >= max(first, 1) && i+16 > last; i-- {
		var e raft.Log
		if logs.GetLog(i, &e) != nil {
			return 0
		}
		if e.Type == raft.LogCommand {
			return fsm.EntryBodyVersion(e.Data)
		}
	}
	return 0
}

// snapshotVersion is the snapshot format this server writes: the newest
// every server reads (fsm.SnapshotVersionFor the cluster's body version).
func (s *Server) snapshotVersion() uint16 {
	return fsm.SnapshotVersionFor(s.BodyVersion())
}
