package cluster

import (
	"context"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
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
// change, and at least every ReconcileInterval.
func (s *Server) leaderDuties(ctx context.Context) {
	if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		s.logger.Error("leader barrier failed", "error", err)
		return
	}
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		s.reconcileMembers()
		s.reconcileRuns(ctx)
		_, changed := s.sm.index()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-s.memberEvents:
		case <-tick.C:
		}
	}
}

// reconcileMembers adds alive gossip servers missing from the Raft
// configuration as voters.
func (s *Server) reconcileMembers() {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		s.logger.Warn("read raft configuration", "error", err)
		return
	}
	known := map[raft.ServerID]bool{}
	for _, srv := range f.Configuration().Servers {
		known[srv.ID] = true
	}
	for _, m := range s.aliveServers() {
		if known[raft.ServerID(m.ID)] {
			continue
		}
		err := s.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, s.cfg.ApplyTimeout).Error()
		if err != nil {
			s.logger.Warn("add voter failed", "id", m.ID, "raft", m.RaftAddr, "error", err)
			continue
		}
		s.logger.Info("added voter", "id", m.ID, "raft", m.RaftAddr)
	}
}

// reconcileRuns proposes what the reconciler computes from the current
// state, and waits for each proposal, so the next pass sees its effect.
func (s *Server) reconcileRuns(ctx context.Context) {
	var plan Plan
	s.sm.read(func(st *fsm.State) { plan = Reconcile(st, maxBatch) })
	h := fsm.Header{Actor: fsm.RuntimeActor, Purpose: "reconcile"}
	for _, batch := range plan.Transitions {
		if ctx.Err() != nil {
			return
		}
		s.proposeRuntime(ctx, fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: batch})
	}
	for _, batch := range plan.Creates {
		if ctx.Err() != nil {
			return
		}
		s.proposeRuntime(ctx, fsm.RunsCreateType, h, &fsm.RunsCreateRequest{Runs: batch})
	}
}

func (s *Server) proposeRuntime(ctx context.Context, t fsm.MessageType, h fsm.Header, body any) {
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
