package cluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// stateMachine adapts fsm.State to raft.FSM. It serialises writers (Apply,
// Restore; raft calls them from one goroutine) against readers with a
// RWMutex, counts rejections, and wakes blocking queries on every apply.
type stateMachine struct {
	logger hclog.Logger

	mu    sync.RWMutex
	state *fsm.State
	// changed is closed and replaced after every apply or restore.
	changed chan struct{}
	// lastTime is the state's LastTime after the latest apply or restore,
	// read by the leader without the lock.
	lastTime atomic.Int64
	// bodyFloor is the newest command body version this server knows the
	// cluster to read: the newest in its log (seeded at start), applied,
	// or implied by a restored snapshot. It only rises.
	bodyFloor atomic.Int32
	// corruption is set when an entry failed its checksum: the server
	// stops applying and serving (corruption.go).
	corruption atomic.Pointer[api.Corruption]
	// alarmed is set while a committed alarm names this server: it serves
	// nothing, but goes on applying (alarms.go).
	alarmed atomic.Pointer[api.Corruption]
	// onCorrupt, when set, is called when the server halts, or an alarm
	// starts to name it.
	onCorrupt func(c *api.Corruption)

	// self is this server's id: an alarm naming it halts it (alarms.go).
	self string
	// marks are the digests at the recent digest marks; markJobs hands
	// marks to the server's digester (nil: digested on the apply goroutine).
	marks    markRing
	markJobs chan markJob

	digestMu    sync.Mutex
	digestIndex uint64
	digest      fsm.Hash

	// snapshotVersion, when set, says which snapshot format to write: the
	// newest every server of the cluster reads (see Server.versionLoop).
	snapshotVersion func() uint16

	// events, when set, is the server's event archive: events are written
	// to it after every entry, and leave memory only once it has them on
	// disk (eventstore.go). Without it they stay in memory.
	events *eventStore
	// gaugesAt is when the state's size gauges were last set (the apply
	// goroutine owns it).
	gaugesAt time.Time
}

var _ raft.FSM = (*stateMachine)(nil)

func newStateMachine(logger hclog.Logger) *stateMachine {
	return &stateMachine{logger: logger, state: fsm.New(), changed: make(chan struct{})}
}

// Apply implements raft.FSM.
func (m *stateMachine) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if c := m.corruption.Load(); c != nil {
		// Halted: nothing after a damaged entry is applied.
		return &fsm.Result{Index: l.Index, Err: fmt.Errorf("entry %d not applied: this server halted at damaged entry %d: %w", l.Index, c.Index, fsm.ErrCorrupt)}
	}
	start := time.Now()
	m.mu.Lock()
	res := m.state.Apply(l.Index, l.Term, l.Data)
	if err := corruptionIn(res); err != nil {
		m.halt(&api.Corruption{Index: l.Index, Reason: err.Error()})
	}
	var mark *fsm.Snapshot
	if applied(res, fsm.DigestMarkType) {
		mark = m.state.Snapshot() // pointers only; digested off the lock
	}
	alarmsChanged := applied(res, fsm.AlarmRaiseType) || applied(res, fsm.AlarmClearType)
	var alarms []*fsm.Alarm
	if alarmsChanged {
		alarms = m.state.Alarms()
	}
	m.lastTime.Store(m.state.LastTime())
	m.raiseBodyFloor(m.state.BodyVersionSeen())
	ch := m.changed
	m.changed = make(chan struct{})
	m.mu.Unlock()
	close(ch)
	m.archiveEvents()
	m.setGauges(start)
	m.afterApply(l.Index, mark, alarms, alarmsChanged)

	labels := []metrics.Label{{Name: "type", Value: res.Type.String()}}
	metrics.MeasureSinceWithLabels([]string{"ice", "fsm", "apply"}, start, labels)
	if n := res.Rejected(); n > 0 {
		err := res.FirstErr()
		metrics.IncrCounterWithLabels([]string{"ice", "fsm", "rejected"}, float32(n),
			append(labels, metrics.Label{Name: "reason", Value: fsm.ErrorName(err)}))
		m.logger.Debug("command rejected", "index", l.Index, "type", res.Type.String(), "rejected", n, "error", err)
	}
	return res
}

// raiseBodyFloor raises bodyFloor to v (it never lowers it).
func (m *stateMachine) raiseBodyFloor(v int) {
	for {
		old := m.bodyFloor.Load()
		if int32(v) <= old || m.bodyFloor.CompareAndSwap(old, int32(v)) {
			return
		}
	}
}

// Snapshot implements raft.FSM. It is called on the apply goroutine, so the
// state cannot change while the pointers are captured.
func (m *stateMachine) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	version := uint16(fsm.SnapshotVersion)
	if m.snapshotVersion != nil {
		version = m.snapshotVersion()
	}
	snap := m.state.Snapshot()
	return &fsmSnapshot{snap: snap, version: max(version, snap.MinVersion()), logger: m.logger}, nil
}

// Restore implements raft.FSM. The old state is discarded only after the
// snapshot decoded and verified completely.
func (m *stateMachine) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	start := time.Now()
	st, meta, err := fsm.ReadSnapshot(rc, func(done, total int) {
		m.logger.Info("restoring snapshot", "records", done, "total", total)
	})
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	m.mu.Lock()
	m.state = st
	alarms := st.Alarms()
	m.lastTime.Store(st.LastTime())
	m.raiseBodyFloor(st.BodyVersionSeen())
	ch := m.changed
	m.changed = make(chan struct{})
	m.mu.Unlock()
	close(ch)
	if m.events != nil {
		m.events.restored()
	}
	m.archiveEvents()
	m.noteAlarms(alarms)
	metrics.MeasureSince([]string{"ice", "fsm", "restore"}, start)
	m.logger.Info("restored snapshot", "index", meta.Index, "runs", meta.Runs, "events", meta.Events, "duration", time.Since(start))
	return nil
}

// archiveEvents brings the event archive up to the state's head and
// releases the archived events the checkpoint allows. It runs on the apply
// goroutine, the only writer of the state, so it reads the state without
// the lock; releasing takes it.
func (m *stateMachine) archiveEvents() {
	if m.events == nil {
		return
	}
	m.events.archive(m.state, func(seq uint64) {
		m.mu.Lock()
		m.state.ReleaseEvents(seq)
		m.mu.Unlock()
	})
}

// setGauges sets the gauges of the state's size at most once a second:
// the live counts, the events held and archived, the archive's files.
func (m *stateMachine) setGauges(now time.Time) {
	if now.Sub(m.gaugesAt) < time.Second {
		return
	}
	m.gaugesAt = now
	st := m.state
	c, n, r, _ := st.Counts()
	metrics.SetGauge([]string{"ice", "state", "components"}, float32(c))
	metrics.SetGauge([]string{"ice", "state", "nodes"}, float32(n))
	metrics.SetGauge([]string{"ice", "state", "runs"}, float32(r))
	metrics.SetGauge([]string{"ice", "events", "total"}, float32(st.EventCount()))
	metrics.SetGauge([]string{"ice", "events", "held"}, float32(st.HeldEvents()))
	metrics.SetGauge([]string{"ice", "events", "checkpoint"}, float32(st.Checkpoint().Seq))
	if gc := st.LastGC(); gc.Index > 0 {
		metrics.SetGauge([]string{"ice", "gc", "last", "index"}, float32(gc.Index))
	}
	for status, n := range st.MemoryCounts() {
		metrics.SetGaugeWithLabels([]string{"ice", "memory", "records"}, float32(n), []metrics.Label{{Name: "status", Value: string(status)}})
	}
	for _, comp := range st.Components() {
		if comp.Spend == nil {
			continue
		}
		for unit, spent := range comp.Spend.Units {
			labels := []metrics.Label{{Name: "component", Value: comp.Name}, {Name: "unit", Value: unit}}
			metrics.SetGaugeWithLabels([]string{"ice", "budget", "spent"}, float32(spent), labels)
			if comp.Budget != nil && comp.Budget.Limits[unit] > 0 {
				metrics.SetGaugeWithLabels([]string{"ice", "budget", "limit"}, float32(comp.Budget.Limits[unit]), labels)
			}
		}
	}
	if m.events != nil {
		a := m.events.arc.Stats()
		metrics.SetGauge([]string{"ice", "events", "archive", "bytes"}, float32(a.Bytes))
		metrics.SetGauge([]string{"ice", "events", "archive", "segments"}, float32(a.Segments))
	}
}

// read runs f with the state under the read lock.
func (m *stateMachine) read(f func(st *fsm.State)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	f(m.state)
}

// index returns the applied index and a channel closed on the next change.
func (m *stateMachine) index() (uint64, <-chan struct{}) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state.Index(), m.changed
}

// waitIndex blocks until the applied index is past (greater than) after,
// or ctx ends; it returns the applied index.
func (m *stateMachine) waitIndex(ctx context.Context, after uint64) (uint64, error) {
	for {
		idx, ch := m.index()
		if idx > after {
			return idx, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return idx, ctx.Err()
		}
	}
}

// digestAt returns the applied index and the state digest there, computing
// the digest at most once per index.
func (m *stateMachine) digestAt() (uint64, fsm.Hash) {
	m.digestMu.Lock()
	defer m.digestMu.Unlock()
	m.mu.RLock()
	idx := m.state.Index()
	if idx == m.digestIndex && idx != 0 {
		m.mu.RUnlock()
		return idx, m.digest
	}
	snap := m.state.Snapshot()
	m.mu.RUnlock()
	d := snap.Digest()
	m.digestIndex, m.digest = idx, d
	return idx, d
}

type fsmSnapshot struct {
	snap    *fsm.Snapshot
	version uint16
	logger  hclog.Logger
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	n, err := s.snap.WriteVersion(sink, s.version)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot %s: %w", sink.ID(), err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot %s: %w", sink.ID(), err)
	}
	metrics.MeasureSince([]string{"ice", "fsm", "snapshot", "persist"}, start)
	s.logger.Info("persisted snapshot", "id", sink.ID(), "index", s.snap.Meta().Index, "format", s.version, "bytes", n, "duration", time.Since(start))
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}
