package cluster

import (
	"errors"
	"path/filepath"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// corruptionIn returns the ErrCorrupt a result carries, for the entry or
// any command of a batch, or nil.
func corruptionIn(res *fsm.Result) error {
	if res == nil {
		return nil
	}
	if errors.Is(res.Err, fsm.ErrCorrupt) {
		return res.Err
	}
	for _, b := range res.Batch {
		if err := corruptionIn(b); err != nil {
			return err
		}
	}
	return nil
}

// halt records that the entry at c.Index failed its checksum. The server
// applies nothing more and answers every request but status and metrics
// with 503: serving a state that may be missing an entry would be serving
// a lie. Only the first halt counts.
func (m *stateMachine) halt(c *api.Corruption) {
	if !m.corruption.CompareAndSwap(nil, c) {
		return
	}
	m.logger.Error("CORRUPT: a log entry failed its checksum; this server stops applying and serving", "index", c.Index, "reason", c.Reason,
		"what_to_do", "remove it with `ice operator raft remove-peer`, clear its Raft state with `ice operator raft reset-data`, and start it again to rejoin (README, Operations)")
	metrics.SetGaugeWithLabels([]string{"ice", "alarm"}, 1, []metrics.Label{{Name: "type", Value: "corrupt"}})
	if m.onCorrupt != nil {
		m.onCorrupt(c)
	}
}

// Corruption reports why this server serves nothing: it halted at a
// damaged entry, or a committed alarm names it (nil: neither).
func (s *Server) Corruption() *api.Corruption {
	if c := s.sm.corruption.Load(); c != nil {
		return c
	}
	return s.sm.alarmed.Load()
}

// onCorrupt hands leadership away when the halted server leads: it can no
// longer apply, so it must not keep the cluster waiting on it. It runs on
// the apply goroutine, so the transfer, which waits for Raft, gets a
// tracked goroutine of its own.
func (s *Server) onCorrupt(c *api.Corruption) {
	select {
	case <-s.shutdownCh:
		return
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !s.IsLeader() {
			return
		}
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.logger.Error("corrupt leader could not hand over leadership", "index", c.Index, "error", err)
		}
	}()
}

// newRaft starts hashicorp/raft, turning a panic while it reads the log at
// start (an entry that will not decode) into a data dir error.
func newRaft(cfg *Config, s *Server) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(filepath.Join(cfg.DataDir, "raft", "raft.db"), "raft could not read its log: %v", p)
		}
	}()
	return raft.NewRaft(raftConfig(cfg, s.leaderNotify), s.sm, s.stores.logs, s.stores.bolt, s.stores.snaps, s.stores.transport)
}
