package fsm

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Garbage collection keeps the state of a cluster that lives for months
// bounded: the leader commits a state.gc command (an operator may force
// one), and every server applies it the same way, from the command's
// leader time and the state alone.
//
// Lifecycle of what a state.gc removes, with its authority (runtime or
// operator; agents may not collect):
//
//	record                     condition at the command's time T          after
//	run TERMINATED             ModifyTime <= T - RunRetention and not     removed
//	                           among the KeepPerSlot newest TERMINATED
//	                           runs of its (component, slot)
//	run TERMINATED             its component is removed (below)           removed
//	run in any other state     -                                          stays
//	component stopped          ModifyTime <= T - RunRetention and every   removed
//	                           run of it TERMINATED
//	component running, failed  -                                          stays
//	event, held in memory      Time <= T - EventRetention and not among   archived: the
//	                           the EventKeep newest events                checkpoint moves
//	                                                                      past it
//
// KeepPerSlot is at least 1: the scheduler reads the newest ended run of a
// slot (a committed finite run is not run again; a failed one's attempt
// counts toward the restart policy), so that one never goes while its
// component stays. Nothing is collected from the event chain: an archived
// event leaves the state's memory only when the server that holds it
// calls ReleaseEvents, after it wrote the event durably to its archive
// (the cluster package), so the chain stays whole from the first event to
// the head, and every run, collected or not, keeps its history.

// StateGCRequest collects what has outlived its retention at the command's
// leader time.
type StateGCRequest struct {
	// RunRetention (nanoseconds) is how long a TERMINATED run, or a stopped
	// component, stays after its last change.
	RunRetention int64 `json:"run_retention_ns"`
	// KeepPerSlot is how many of the newest TERMINATED runs of each slot
	// stay regardless of age (at least 1).
	KeepPerSlot int `json:"keep_per_slot"`
	// EventRetention (nanoseconds) and EventKeep say which events stay in
	// memory: those newer than EventRetention and the EventKeep newest,
	// whichever keeps more.
	EventRetention int64  `json:"event_retention_ns"`
	EventKeep      uint64 `json:"event_keep"`
}

// Limits of a state.gc request.
const (
	maxKeepPerSlot = 1000
)

// EventCheckpoint is the newest event that may leave memory for the
// archive: events 1..Seq are the archive's, and the first event held links
// to Hash.
type EventCheckpoint struct {
	Seq  uint64 `json:"seq"`
	Hash Hash   `json:"hash"`
	// Time is the leader time of event Seq.
	Time int64 `json:"time"`
}

// GCSummary says what the newest state.gc that changed anything did; it
// is also the payload of its state.gc event.
type GCSummary struct {
	Index uint64 `json:"index"`
	Time  int64  `json:"time"`
	// Runs and Components are how many were removed.
	Runs       int `json:"runs"`
	Components int `json:"components"`
	// Archived is how many events the checkpoint moved past, and
	// Checkpoint the checkpoint's Seq after it.
	Archived   uint64 `json:"archived"`
	Checkpoint uint64 `json:"checkpoint"`
}

func (req *StateGCRequest) validate() error {
	switch {
	case req.RunRetention < 0 || req.EventRetention < 0:
		return fmt.Errorf("state.gc: negative retention (runs %d ns, events %d ns): %w", req.RunRetention, req.EventRetention, ErrInvalid)
	case req.KeepPerSlot < 1 || req.KeepPerSlot > maxKeepPerSlot:
		return fmt.Errorf("state.gc: keep_per_slot %d: want 1 to %d (the scheduler reads the newest ended run of each slot): %w", req.KeepPerSlot, maxKeepPerSlot, ErrInvalid)
	}
	return nil
}

func (s *State) applyStateGC(ctx *applyCtx, req *StateGCRequest) error {
	if err := req.validate(); err != nil {
		return err
	}
	now := ctx.header.Time
	runs, comps := s.collectRuns(now-req.RunRetention, req.KeepPerSlot)
	archived := s.advanceCheckpoint(now-req.EventRetention, req.EventKeep)
	if runs == 0 && comps == 0 && archived == 0 {
		return nil
	}
	s.lastGC = GCSummary{Index: ctx.index, Time: now, Runs: runs, Components: comps, Archived: archived, Checkpoint: s.checkpoint.Seq}
	s.emit(ctx, "state.gc", "state", "", &s.lastGC)
	return nil
}

// collectRuns removes the TERMINATED runs and stopped components last
// changed at or before cutoff, keeping the keep newest TERMINATED runs of
// each slot of a component that stays. The decision for each record
// depends only on the set of records, never on map order.
func (s *State) collectRuns(cutoff int64, keep int) (runs, comps int) {
	gone := make(map[string]bool)
	for name, c := range s.components {
		if c.Status == ComponentStopped && c.ModifyTime <= cutoff {
			gone[name] = true
		}
	}
	ended := make(map[slotKey][]*Run)
	for _, r := range s.runs {
		if r.State != StateTerminated {
			delete(gone, r.Component) // a component with a live run stays
			continue
		}
		k := slotKey{r.Component, r.Slot}
		ended[k] = append(ended[k], r)
	}
	for _, list := range ended {
		slices.SortFunc(list, func(a, b *Run) int { // newest first
			if c := cmp.Compare(b.CreateIndex, a.CreateIndex); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		for i, r := range list {
			if gone[r.Component] || (i >= keep && r.ModifyTime <= cutoff) {
				delete(s.runs, r.ID)
				s.dropRunGrants(r.ID)
				runs++
			}
		}
	}
	for name := range gone {
		delete(s.components, name)
		comps++
	}
	return runs, comps
}

// advanceCheckpoint moves the checkpoint past the events at or before
// cutoff that are not among the keep newest, and returns how many it
// moved past. Committed time never goes back, so those events are a
// prefix of the ones after the checkpoint.
func (s *State) advanceCheckpoint(cutoff int64, keep uint64) uint64 {
	total := s.events.total()
	if total <= keep || total-keep <= s.checkpoint.Seq {
		return 0
	}
	last := total - keep // the newest event that may be archived
	seq := s.checkpoint.Seq
	for seq < last && s.events.timeOf(int(seq-s.events.base)) <= cutoff {
		seq++
	}
	if seq == s.checkpoint.Seq {
		return 0
	}
	i := int(seq - s.events.base - 1)
	moved := seq - s.checkpoint.Seq
	s.checkpoint = EventCheckpoint{Seq: seq, Hash: s.events.hash(i), Time: s.events.timeOf(i)}
	return moved
}

// Checkpoint returns the event checkpoint: events up to its Seq may be
// released from memory once archived.
func (s *State) Checkpoint() EventCheckpoint { return s.checkpoint }

// LastGC returns what the newest state.gc that changed anything did (zero
// if none has).
func (s *State) LastGC() GCSummary { return s.lastGC }

// FirstEventSeq returns the Seq of the first event held in memory (one
// past the total when none is held).
func (s *State) FirstEventSeq() uint64 { return s.events.base + 1 }

// EventCount returns the number of events in the chain, held or archived:
// the Seq of the head.
func (s *State) EventCount() uint64 { return s.events.total() }

// HeldEvents returns the number of events held in memory.
func (s *State) HeldEvents() int { return s.events.len() }

// EventTime returns the leader time of event seq, if it is held in memory.
func (s *State) EventTime(seq uint64) (int64, bool) {
	if seq <= s.events.base || seq > s.events.total() {
		return 0, false
	}
	return s.events.timeOf(int(seq - s.events.base - 1)), true
}

// ReleaseEvents drops the events through seq from memory, at most up to
// the checkpoint; the caller has written them durably elsewhere (the
// archive). It changes nothing replicated: the digest, snapshots and the
// chain's verification are the same before and after. It returns the Seq
// of the first event still held.
func (s *State) ReleaseEvents(seq uint64) uint64 {
	seq = min(seq, s.checkpoint.Seq)
	if seq > s.events.base {
		s.events.release(seq)
	}
	return s.events.base + 1
}

// EventRecords calls fn with the record of every held event whose Seq is
// at least from, in order, until fn returns false. A record is the bytes
// CheckEventRecord reads; it shares the state's memory, which is never
// modified, and stays valid after the call.
func (s *State) EventRecords(from uint64, fn func(seq uint64, record []byte) bool) {
	i := 0
	if from > s.events.base {
		i = int(from - s.events.base - 1)
	}
	for ; i < s.events.len(); i++ {
		if !fn(s.events.base+uint64(i)+1, s.events.record(i)) {
			return
		}
	}
}

// hasGCData says whether the snapshot has a checkpoint or a collection to
// carry, which only format 5 can.
func (snap *Snapshot) hasGCData() bool {
	return snap.meta.Checkpoint != nil || snap.meta.LastGC != nil
}

// putGCMeta is the digest's encoding of the checkpoint and the last
// collection.
func putGCMeta(e *encoder, m *SnapshotMeta) {
	var cp EventCheckpoint
	var gc GCSummary
	if m.Checkpoint != nil {
		cp = *m.Checkpoint
	}
	if m.LastGC != nil {
		gc = *m.LastGC
	}
	e.uvarint(cp.Seq)
	e.b = append(e.b, cp.Hash[:]...)
	e.varint(cp.Time)
	e.uvarint(gc.Index)
	e.varint(gc.Time)
	e.int(gc.Runs)
	e.int(gc.Components)
	e.uvarint(gc.Archived)
	e.uvarint(gc.Checkpoint)
}

// readGCMeta checks the meta's checkpoint and collection and starts the
// restored state's event chain after the checkpoint.
func (sr *snapshotReader) readGCMeta() error {
	meta := &sr.meta
	if sr.version < 5 && (meta.Checkpoint != nil || meta.LastGC != nil) {
		return fmt.Errorf("read snapshot meta: format version %d with an event checkpoint: %w", sr.version, ErrMalformed)
	}
	if gc := meta.LastGC; gc != nil {
		if gc.Index == 0 || gc.Index > meta.Index || gc.Runs < 0 || gc.Components < 0 {
			return fmt.Errorf("read snapshot meta: last collection at index %d (snapshot at %d): %w", gc.Index, meta.Index, ErrMalformed)
		}
		sr.st.lastGC = *gc
	}
	if cp := meta.Checkpoint; cp != nil {
		if cp.Seq == 0 {
			return fmt.Errorf("read snapshot meta: event checkpoint at seq 0: %w", ErrMalformed)
		}
		sr.st.checkpoint = *cp
		sr.st.events.base, sr.st.events.baseHash = cp.Seq, cp.Hash
		sr.head = cp.Hash
	}
	return nil
}

// FirstEventLink returns the hash the first event held links to: the hash
// of event FirstEventSeq()-1 (the zero hash when that is 0), which an
// archive of the events before it must end with.
func (s *State) FirstEventLink() Hash { return s.events.baseHash }
