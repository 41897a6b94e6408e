package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/scheduler"
)

// leaderLoop starts the leader duties when this server becomes leader and
// stops them when it stops being leader.
func (s *Server) leaderLoop() {
	defer s.wg.Done()
	var duties *leaderDuty
	defer func() { duties.stop() }()
	for {
		select {
		case <-s.shutdownCh:
			return
		case isLeader := <-s.leaderNotify:
			duties.stop()
			duties = nil
			if !isLeader {
				s.logger.Info("lost leadership")
				metrics.IncrCounter([]string{"ice", "leader", "lost"}, 1)
				continue
			}
			s.logger.Info("gained leadership", "term", s.raft.CurrentTerm())
			metrics.IncrCounter([]string{"ice", "leader", "gained"}, 1)
			duties = s.startLeaderDuties()
		}
	}
}

// leaderDuty is one term's running leader duties.
type leaderDuty struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startLeaderDuties() *leaderDuty {
	ctx, cancel := context.WithCancel(context.Background())
	d := &leaderDuty{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		s.leaderDuties(ctx)
	}()
	return d
}

// stop cancels the duties and waits for them to return; nil is a no-op.
func (d *leaderDuty) stop() {
	if d == nil {
		return
	}
	d.cancel()
	<-d.done
}

// leaderDuties runs while this server leads: it first waits until every
// entry of earlier terms is applied (so decisions see the whole log), then
// reconciles membership and components whenever the state or the members
// change, when a delayed run falls due, and at least every
// ReconcileInterval; and it expires the leases of silent nodes.
func (s *Server) leaderDuties(ctx context.Context) {
	term := s.raft.CurrentTerm()
	// Writes and consistent reads wait for the barrier (awaitBarrier):
	// retry it while this server leads, as Consul's leader loop does.
	for {
		err := s.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		s.logger.Error("leader barrier failed: retrying", "term", term, "error", err)
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	// From here this term's leader has applied every entry of earlier
	// terms: consistent reads may be served (ConsistentRead).
	s.barrierTerm.Store(term)
	s.leases.reset()
	var checks sync.WaitGroup
	checks.Add(2)
	go func() {
		defer checks.Done()
		s.corruptionChecks(ctx)
	}()
	go func() {
		defer checks.Done()
		s.collections(ctx)
	}()
	s.startGrantExpiries(ctx, &checks)
	s.startMemoryExpiries(ctx, &checks)
	defer checks.Wait()
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	leaseTick := time.NewTicker(max(s.cfg.LeaseTTL/4, 50*time.Millisecond))
	defer leaseTick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	members := true
	// pending says a pass is due; notBefore is when it may run: a pass
	// woken by changes waits minReconcileGap from the one before (bursts of
	// entries coalesce into one pass), and after a pass that proposed
	// nothing, as long again as that pass took. A million runs take a
	// second to read, and passes back to back while agents report would
	// take a core from applying those reports.
	pending, notBefore := true, time.Time{}
	for {
		if members {
			s.reconcileMembers()
			members = false
		}
		s.ensureClusterID(ctx)
		if pending && !time.Now().Before(notBefore) {
			start := time.Now()
			before, _ := s.sm.index()
			next, idle := s.reconcileRuns(ctx)
			if next > 0 {
				wake.Reset(time.Until(time.Unix(0, next)))
			}
			// What was applied during the pass (its own proposals among
			// it) is seen by the next one.
			after, _ := s.sm.index()
			pending, notBefore = after != before, start.Add(minReconcileGap)
			if idle > 0 {
				notBefore = time.Now().Add(idle)
			}
		}
		var changed <-chan struct{}
		var due <-chan time.Time
		if pending {
			due = time.After(time.Until(notBefore))
		} else {
			_, changed = s.sm.index()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			pending = true
		case <-due:
		case <-s.memberEvents:
			members, pending = true, true
		case <-tick.C:
			members, pending = true, true
		case <-wake.C:
			pending = true
		case <-leaseTick.C:
			s.expireLeases(ctx) // an expiry commits, which wakes a pass
		}
	}
}

// minReconcileGap is the least time between two reconciler passes woken by
// state changes.
const minReconcileGap = 20 * time.Millisecond

// reconcileMembers adds alive gossip servers missing from the Raft
// configuration as voters. When such a replacement joins, voters whose
// gossip status is dead or left are removed first (Consul's "cleanup dead
// servers"): the leader and the voters it can reach are a majority, so
// removing the dead ones keeps the quorum.
func (s *Server) reconcileMembers() {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		s.logger.Warn("read raft configuration", "error", err)
		return
	}
	members := s.members()
	status := map[string]string{}
	for _, m := range members {
		if m.Role == RoleServer {
			status[m.ID] = m.Status
		}
	}
	s.setBodyVersion(clusterBodyVersion(f.Configuration().Servers, members))
	known := map[raft.ServerID]bool{}
	var dead []raft.ServerID
	for _, srv := range f.Configuration().Servers {
		known[srv.ID] = true
		st, alive := status[string(srv.ID)]
		if !alive {
			st = s.departed.get(string(srv.ID))
		}
		if srv.ID != raft.ServerID(s.cfg.NodeID) && (st == "dead" || st == "left") {
			dead = append(dead, srv.ID)
		}
	}
	for _, m := range s.aliveServers() {
		if known[raft.ServerID(m.ID)] {
			continue
		}
		if err := s.admitHealthy(m); err != nil {
			s.logger.Warn("not adding a halted server back: reset its data dir first", "id", m.ID, "error", err)
			continue
		}
		if err := s.admit(m); err != nil {
			s.logger.Warn("not adding a server that cannot prove its identity", "id", m.ID, "raft", m.RaftAddr, "error", err)
			continue
		}
		for _, id := range dead {
			if err := s.raft.RemoveServer(id, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				s.logger.Warn("remove dead server failed", "id", id, "error", err)
				continue
			}
			s.logger.Info("removed dead server for its replacement", "dead", id, "replacement", m.ID)
			metrics.IncrCounter([]string{"ice", "autopilot", "dead_removed"}, 1)
		}
		dead = nil
		err := s.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, s.cfg.ApplyTimeout).Error()
		if err != nil {
			s.logger.Warn("add voter failed", "id", m.ID, "raft", m.RaftAddr, "error", err)
			continue
		}
		s.logger.Info("added voter", "id", m.ID, "raft", m.RaftAddr)
	}
}

// clusterBodyVersion is the newest command body version every server of
// the Raft configuration and every alive server in gossip (a joiner about
// to become a voter) reads: a server gossip does not know, or whose build
// did not say, counts as reading version 1 only.
func clusterBodyVersion(voters []raft.Server, members []Member) int {
	reads := map[string]int{}
	version := fsm.BodyVersion
	for _, m := range members {
		if m.Role != RoleServer {
			continue
		}
		reads[m.ID] = max(m.BodyVersion, 1)
		if m.Status == "alive" {
			version = min(version, reads[m.ID])
		}
	}
	for _, srv := range voters {
		version = min(version, max(reads[string(srv.ID)], 1))
	}
	return version
}

// reconcileRuns proposes what the reconciler computes from the current
// state, waiting for each proposal so the next pass sees its effect. It
// returns when the reconciler wants to run again (unix nanos, 0: on
// change), and, when it had nothing to propose, how long the pass took
// (0 otherwise).
func (s *Server) reconcileRuns(ctx context.Context) (int64, time.Duration) {
	start := time.Now()
	var view *fsm.Snapshot
	s.sm.read(func(st *fsm.State) { view = st.Snapshot() }) // pointers only
	plan := scheduler.Reconcile(view, max(s.now().UnixNano(), s.sm.lastTime.Load()), scheduler.MaxBatch)
	took := time.Since(start)
	metrics.MeasureSince([]string{"ice", "reconcile", "pass"}, start)
	for _, reason := range slices.Sorted(maps.Keys(plan.Unplaced)) {
		s.logger.Debug("runs cannot be placed", "runs", plan.Unplaced[reason], "reason", reason)
	}
	if plan.Empty() {
		return plan.Wake, took
	}
	h := fsm.Header{Actor: fsm.RuntimeActor, Purpose: "reconcile"}
	inFlight(len(plan.Ends), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: plan.Ends[i]})
	})
	inFlight(len(plan.Fails), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.ComponentFailType, h, &plan.Fails[i])
	})
	inFlight(len(plan.Creates), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.RunsCreateType, h, &fsm.RunsCreateRequest{Runs: plan.Creates[i]})
	})
	hp := fsm.Header{Actor: fsm.RuntimeActor, Purpose: "place"}
	inFlight(len(plan.Placements), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.RunTransitionType, hp, &fsm.RunTransitionRequest{Transitions: plan.Placements[i]})
	})
	inFlight(len(plan.Notes), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.RunsNoteType, hp, &fsm.RunsNoteRequest{Notes: plan.Notes[i]})
	})
	inFlight(len(plan.Nodes), reconcileInFlight, func(i int) {
		s.proposeRuntime(ctx, fsm.NodeStatusType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "drain"}, &plan.Nodes[i])
	})
	return plan.Wake, 0
}

// reconcileInFlight is how many of one phase's batches the reconciler
// has proposed and not yet seen answered. With one, a rollout of a million
// runs proposed a thousand 1,000-run batches one round trip after another;
// with several, group commit packs the next ones into an entry while one
// commits. At four, one rollout of a million runs placed in 58 s with
// others' writes at p99 311 ms; at two, runs placed in 60-98 s (the
// machine's noise) with p99 200-280 ms. Two keeps others' writes closer
// to the front of the queue.
const reconcileInFlight = 2

// inFlight calls propose(0..n-1), at most limit at a time, and returns
// once every call has returned. The batches of one phase are independent
// (each names other runs, slots or nodes), so their order does not
// matter; the phases stay in order, since a phase starts only after the
// one before it was answered.
func inFlight(n, limit int, propose func(i int)) {
	if n == 1 {
		propose(0)
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, limit)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			propose(i)
		})
	}
	wg.Wait()
}

func (s *Server) proposeRuntime(ctx context.Context, t fsm.MessageType, h fsm.Header, body any) {
	if ctx.Err() != nil {
		return
	}
	res, err := s.Apply(ctx, t, h, body)
	if err != nil {
		s.logger.Warn("runtime proposal failed", "type", t.String(), "error", err)
		return
	}
	if n := res.Rejected(); n > 0 {
		// A reconciler proposal can lose a race with an operator's change;
		// the next pass recomputes from the new state.
		s.logger.Debug("runtime proposal partly rejected", "type", t.String(), "index", res.Index, "rejected", n, "error", res.FirstErr())
	}
}
