package cluster

import (
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// markDigests is the number of recent digest marks a server remembers: the
// leader compares at its newest mark, and a server a few marks behind
// still answers for it.
const markDigests = 8

// markRing remembers this server's state digest at the most recent digest
// marks (fsm.DigestMarkType entries), newest last. The apply goroutine
// writes it; status readers read it.
type markRing struct {
	mu    sync.Mutex
	marks []api.MarkDigest
}

func (r *markRing) add(index uint64, d fsm.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.marks); n > 0 && r.marks[n-1].Index >= index {
		// Replayed after a restore of an older snapshot: start again.
		r.marks = r.marks[:0]
	}
	r.marks = append(r.marks, api.MarkDigest{Index: index, Digest: d.String()})
	if len(r.marks) > markDigests {
		r.marks = append(r.marks[:0], r.marks[len(r.marks)-markDigests:]...)
	}
}

// list returns a copy, oldest first.
func (r *markRing) list() []api.MarkDigest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.MarkDigest(nil), r.marks...)
}

// applied reports whether res (an entry's result, or any command of a
// batch entry) applied a command of type t.
func applied(res *fsm.Result, t fsm.MessageType) bool {
	if res == nil || res.Err != nil {
		return false
	}
	if res.Type == t {
		return true
	}
	for _, b := range res.Batch {
		if applied(b, t) {
			return true
		}
	}
	return false
}

// markJob is a digest mark waiting for its digest: the pointers captured
// when the mark was applied.
type markJob struct {
	index uint64
	snap  *fsm.Snapshot
}

// afterApply is what the state machine does once an entry is applied and
// the lock released: it has the digest at a mark computed (by the server's
// digester, off the apply goroutine: about 0.1 s for 100,000 runs; here
// when there is none), and when the alarms changed it updates the alarm
// gauge and whether an alarm names this server.
func (m *stateMachine) afterApply(index uint64, mark *fsm.Snapshot, alarms []*fsm.Alarm, alarmsChanged bool) {
	if mark != nil {
		select {
		case m.markJobs <- markJob{index, mark}:
		default:
			// No digester (offline replay, tests), or it is 8 marks behind.
			m.marks.add(index, mark.Digest())
		}
	}
	if alarmsChanged {
		m.noteAlarms(alarms)
	}
}

// noteAlarms sets the alarm gauge (the cluster's raised corrupt alarms, or
// 1 when this server halted) and whether an alarm names this server. While
// one does, the server serves nothing (it goes on applying: a server that
// rejoined from a reset data dir replays the alarm raised against its id
// before it reaches the clear committed at its removal, and a removed
// server never receives that clear, so it stays refused).
func (m *stateMachine) noteAlarms(alarms []*fsm.Alarm) {
	n := 0
	var mine *api.Corruption
	for _, a := range alarms {
		if a.Type != fsm.AlarmCorrupt {
			continue
		}
		n++
		if a.Server == m.self {
			mine = &api.Corruption{Index: a.Index, Alarm: true, Reason: fmt.Sprintf(
				"named in a %s alarm raised at index %d: %s", a.Type, a.RaisedIndex, a.Detail)}
		}
	}
	m.setAlarmed(mine)
	if m.corruption.Load() != nil {
		n = max(n, 1)
	}
	metrics.SetGaugeWithLabels([]string{"ice", "alarm"}, float32(n), []metrics.Label{{Name: "type", Value: string(fsm.AlarmCorrupt)}})
}

// setAlarmed records whether an alarm names this server (nil: none does),
// logging the change, and hands leadership away when one starts to.
func (m *stateMachine) setAlarmed(c *api.Corruption) {
	old := m.alarmed.Swap(c)
	switch {
	case c != nil && old == nil:
		m.logger.Error("CORRUPT: a committed alarm names this server; it serves nothing until the alarm is cleared", "index", c.Index, "reason", c.Reason,
			"what_to_do", "remove it with `ice operator raft remove-peer`, clear its Raft state with `ice operator raft reset-data`, and start it again to rejoin (README, Operations)")
		if m.onCorrupt != nil {
			m.onCorrupt(c)
		}
	case c == nil && old != nil:
		m.logger.Info("the alarm naming this server was cleared", "was", old.Reason)
	}
}

// digestMarks computes the digests of applied marks, in order, until the
// server shuts down.
func (s *Server) digestMarks() {
	defer s.wg.Done()
	for {
		select {
		case <-s.shutdownCh:
			return
		case job := <-s.sm.markJobs:
			start := time.Now()
			s.sm.marks.add(job.index, job.snap.Digest())
			metrics.MeasureSince([]string{"ice", "corruption", "mark_digest"}, start)
		}
	}
}

// apiAlarms converts the state's alarms for /v1/status.
func apiAlarms(alarms []*fsm.Alarm) []api.Alarm {
	var out []api.Alarm
	for _, a := range alarms {
		out = append(out, api.Alarm{
			Type: string(a.Type), Server: a.Server, Index: a.Index, Detail: a.Detail,
			RaisedIndex: a.RaisedIndex, RaisedTime: a.RaisedTime,
		})
	}
	return out
}
