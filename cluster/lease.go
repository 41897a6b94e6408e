package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// leaseTable holds, in the leader's memory only, when each node's agent last
// renewed its lease. Renewals are not log entries; only the status change
// they may lead to (a node declared down) is.
type leaseTable struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// reset forgets every renewal: a new leader gives every node a full lease
// from the moment it took over.
func (l *leaseTable) reset() {
	l.mu.Lock()
	l.seen = map[string]time.Time{}
	l.mu.Unlock()
}

func (l *leaseTable) renew(node string, now time.Time) {
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[string]time.Time{}
	}
	l.seen[node] = now
	l.mu.Unlock()
}

// expired returns the nodes among ids whose last renewal (or the first time
// this leader looked at them) is older than timeout.
func (l *leaseTable) expired(ids []string, now time.Time, timeout time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]time.Time{}
	}
	var out []string
	for _, id := range ids {
		t, ok := l.seen[id]
		if !ok {
			l.seen[id] = now
			continue
		}
		if now.Sub(t) > timeout {
			out = append(out, id)
		}
	}
	return out
}

// LeaseTTL returns how long an agent's lease lasts after a renewal.
func (s *Server) LeaseTTL() time.Duration { return s.cfg.LeaseTTL }

// Heartbeat renews a node's lease on the leader. It fails with
// fsm.ErrNotFound for an unknown node and fsm.ErrConflict for a node that
// was declared down or left: its agent must register again.
func (s *Server) Heartbeat(node string) error {
	if !s.IsLeader() {
		return fsm.ErrNotLeader
	}
	var status fsm.NodeStatus
	var ok bool
	s.sm.read(func(st *fsm.State) {
		var n *fsm.Node
		if n, ok = st.Node(node); ok {
			status = n.Status
		}
	})
	if !ok {
		return fmt.Errorf("heartbeat from node %q: %w", node, fsm.ErrNotFound)
	}
	if status == fsm.NodeDown || status == fsm.NodeLeft {
		return fmt.Errorf("heartbeat from node %q: node is %s, register again: %w", node, status, fsm.ErrConflict)
	}
	s.leases.renew(node, time.Now())
	metrics.IncrCounter([]string{"ice", "lease", "renewed"}, 1)
	return nil
}

// expireLeases declares down every ready or draining node whose agent has
// not renewed for the lease TTL plus the safety margin. The agent fences
// itself after the TTL alone, so by now its runs have stopped.
func (s *Server) expireLeases(ctx context.Context) {
	var ids []string
	s.sm.read(func(st *fsm.State) {
		for _, n := range st.Nodes() {
			if n.Status == fsm.NodeReady || n.Status == fsm.NodeDraining {
				ids = append(ids, n.ID)
			}
		}
	})
	for _, id := range s.leases.expired(ids, time.Now(), s.cfg.LeaseTTL+s.cfg.LeaseMargin) {
		s.logger.Warn("node lease expired, declaring it down", "node", id, "ttl", s.cfg.LeaseTTL, "margin", s.cfg.LeaseMargin)
		metrics.IncrCounter([]string{"ice", "lease", "expired"}, 1)
		s.proposeRuntime(ctx, fsm.NodeStatusType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "lease expired"},
			&fsm.NodeStatusRequest{ID: id, Status: fsm.NodeDown, Reason: fmt.Sprintf("no lease renewal for %s", s.cfg.LeaseTTL+s.cfg.LeaseMargin)})
	}
}

// Leases returns, on the leader, when each node's agent last renewed its
// lease as this leader saw it: for a node it has not heard from since it
// took over, the moment its lease check first looked at the node (which
// gave it a full lease), or no entry before that check. It fails with fsm.ErrNotLeader on a follower, whose
// table is empty.
func (s *Server) Leases() (map[string]time.Time, error) {
	if !s.IsLeader() {
		return nil, fmt.Errorf("lease table: %w", fsm.ErrNotLeader)
	}
	return s.leases.snapshot(), nil
}

// snapshot copies the renewal times.
func (l *leaseTable) snapshot() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.seen))
	for id, t := range l.seen {
		out[id] = t
	}
	return out
}
