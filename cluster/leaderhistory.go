package cluster

import (
	"slices"
	"sort"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/raft"
)

// leaderHistoryLen is how many leader changes a server remembers.
const leaderHistoryLen = 50

// LeaderChange is one change of leader a server observed: from its Raft
// leader observations, stamped with its own wall clock. The history lives
// in memory: a restarted server starts a new one.
type LeaderChange struct {
	// Term is the Raft term this server was in when it saw the leader.
	Term uint64 `json:"term"`
	// Leader is the new leader's node id.
	Leader string `json:"leader"`
	// From is the leader before it, as this server saw it ("" for the
	// first it saw).
	From string `json:"from,omitempty"`
	// At is this server's wall clock when it saw the change, in unix
	// nanoseconds.
	At int64 `json:"at"`
}

// leaderHistory is a bounded, term-ordered list of the leader changes a
// server saw, without two entries for one term and leader. It is safe for
// concurrent use.
type leaderHistory struct {
	mu      sync.Mutex
	max     int
	changes []LeaderChange // oldest first
}

func newLeaderHistory(max int) *leaderHistory {
	return &leaderHistory{max: max}
}

// observe records that leader leads in term, seen at at. It ignores an
// empty leader (an election under way), and a term and leader already
// recorded (raft reports the same leader again after a lost contact). It
// reports whether it recorded a change.
func (h *leaderHistory) observe(term uint64, leader string, at time.Time) bool {
	if leader == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.changes {
		if c.Term == term && c.Leader == leader {
			return false
		}
	}
	// Keep the list ordered by term: an observation of an older term (its
	// term read late) goes before the newer ones, not after them, and each
	// change is from the leader of the change before it.
	i := sort.Search(len(h.changes), func(i int) bool { return h.changes[i].Term > term })
	c := LeaderChange{Term: term, Leader: leader, At: at.UnixNano()}
	if i > 0 {
		c.From = h.changes[i-1].Leader
	}
	h.changes = slices.Insert(h.changes, i, c)
	if i+1 < len(h.changes) {
		h.changes[i+1].From = leader
	}
	if n := len(h.changes) - h.max; n > 0 {
		h.changes = append(h.changes[:0], h.changes[n:]...)
	}
	return true
}

// newestFirst returns a copy of the history, newest first.
func (h *leaderHistory) newestFirst() []LeaderChange {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]LeaderChange, len(h.changes))
	for i, c := range h.changes {
		out[len(out)-1-i] = c
	}
	return out
}

// LeaderChanges is the leader changes this server observed, newest first
// (at most the last 50 since it started).
func (s *Server) LeaderChanges() []LeaderChange {
	return s.leaders.newestFirst()
}

// watchLeaders records the leader changes raft reports to this server
// until shutdown. It registers an observer, then records the leader raft
// already knows: one elected before the observer was there is not missed,
// and one seen twice is recorded once.
func (s *Server) watchLeaders() {
	s.leaders = newLeaderHistory(leaderHistoryLen)
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	s.recordLeader(s.currentLeaderID())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.raft.DeregisterObserver(obs)
		for {
			select {
			case <-s.shutdownCh:
				return
			case o := <-ch:
				if lo, ok := o.Data.(raft.LeaderObservation); ok {
					s.recordLeader(string(lo.LeaderID))
				}
			}
		}
	}()
}

func (s *Server) currentLeaderID() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

func (s *Server) recordLeader(id string) {
	term := s.raft.CurrentTerm()
	if s.leaders.observe(term, id, s.Now()) {
		s.logger.Debug("leader change observed", "term", term, "leader", id)
		metrics.IncrCounter([]string{"ice", "leader", "changes_observed"}, 1)
	}
}
