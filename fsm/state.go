package fsm

import (
	"cmp"
	"iter"
	"maps"
	"slices"
	"sort"
	"strings"
)

// slotKey identifies a component slot.
type slotKey struct {
	component string
	slot      int
}

// State is the replicated state. It is not safe for concurrent use: the
// caller serialises Apply, Snapshot and Restore and guards reads. Records
// returned by the accessors are shared with the state and must not be
// modified.
type State struct {
	index uint64
	term  uint64

	components map[string]*Component
	nodes      map[string]*Node
	runs       map[string]*Run
	// slots maps each occupied slot to its one run that is not TERMINATED.
	// It is derived from runs and rebuilt on Restore.
	slots map[slotKey]string
	// liveOnNode holds, per node, the ids of its runs that are not
	// TERMINATED: what an agent's watch reads. It is derived from runs and
	// rebuilt on Restore; a node without such runs has no entry.
	liveOnNode map[string]map[string]struct{}

	// events is the append-only event chain; a snapshot keeps a view of it.
	events eventLog
	head   Hash
	// payloadBuf is reused to encode event payloads (the event log copies
	// them).
	payloadBuf []byte

	// lastTime is the leader time of the newest event (derived from the
	// chain: Restore reads it back), the floor under which a leader never
	// stamps a command.
	lastTime int64
	// bodyVersionSeen: see BodyVersionSeen.
	bodyVersionSeen int

	// clusterID is set once by cluster.init; aclBootstrap is the index of
	// the ACL bootstrap (0: not yet).
	clusterID    string
	aclBootstrap uint64
	policies     map[string]*ACLPolicy
	tokens       map[string]*ACLToken // by accessor id
	// tokensByHash maps a secret's hash to its token's accessor id. It is
	// derived from tokens and rebuilt on Restore.
	tokensByHash map[string]string

	// alarms are the raised alarms by type and server (alarm.go).
	alarms map[string]*Alarm

	// checkpoint is the newest event that may leave memory for the
	// archive (gc.go); events.base <= checkpoint.Seq.
	checkpoint EventCheckpoint
	// lastGC is the result of the newest state.gc that collected anything.
	lastGC GCSummary

	// grants are the capability grants by id (grant.go); grantsByRun
	// lists each run's grant ids in creation order. It is derived from
	// grants and rebuilt on Restore.
	grants      map[string]*Grant
	grantsByRun map[string][]string
	// signingKeys are the servers' public grant-token keys by id.
	signingKeys map[string]*SigningKey
	// memory holds every version of every record (memory.go); memoryHeads
	// the newest version of each key; memoryDerived, for each version, the
	// versions whose inputs name it (derived from the records' inputs).
	memory        map[memKey]*MemoryRecord
	memoryHeads   map[memHead]uint64
	memoryDerived map[memKey][]memKey
}

// New returns an empty state.
func New() *State {
	return &State{
		components: make(map[string]*Component),
		nodes:      make(map[string]*Node),
		runs:       make(map[string]*Run),
		slots:      make(map[slotKey]string),
		liveOnNode: make(map[string]map[string]struct{}),

		policies:     make(map[string]*ACLPolicy),
		tokens:       make(map[string]*ACLToken),
		tokensByHash: make(map[string]string),
		alarms:       make(map[string]*Alarm),
		grants:       make(map[string]*Grant),
		grantsByRun:  make(map[string][]string),
		signingKeys:  make(map[string]*SigningKey),

		memory:        make(map[memKey]*MemoryRecord),
		memoryHeads:   make(map[memHead]uint64),
		memoryDerived: make(map[memKey][]memKey),
	}
}

// BodyVersionSeen is the newest command body version among the entries
// this state applied, or that the snapshot it was restored from implies
// (BodyVersionOfSnapshot): the leader that wrote such an entry knew every
// server of the cluster to read it, so a leader never needs to encode in
// an older one. It is a floor for the leader's encoding, not part of the
// replicated state: it is not in the digest, and a restored state may know
// less than one that applied the log.
func (s *State) BodyVersionSeen() int { return s.bodyVersionSeen }

// LastTime returns the leader time (unix nanos) of the newest event in the
// chain: committed time never goes backwards when leaders stamp no earlier.
func (s *State) LastTime() int64 { return s.lastTime }

// Index returns the index of the last applied entry.
func (s *State) Index() uint64 { return s.index }

// Term returns the term of the last applied entry.
func (s *State) Term() uint64 { return s.term }

// Head returns the hash of the newest event, the head of the chain.
func (s *State) Head() Hash { return s.head }

// Component returns a component by name.
func (s *State) Component(name string) (*Component, bool) {
	c, ok := s.components[name]
	return c, ok
}

// Components returns all components sorted by name.
func (s *State) Components() []*Component {
	out := make([]*Component, 0, len(s.components))
	for _, c := range s.components {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Run returns a run by id.
func (s *State) Run(id string) (*Run, bool) {
	r, ok := s.runs[id]
	return r, ok
}

// Runs returns the runs of a component (all runs when component is empty)
// ordered by creation index, then slot.
func (s *State) Runs(component string) []*Run {
	return s.RunsWhere(func(r *Run) bool { return component == "" || r.Component == component })
}

// UnorderedRuns returns the runs of a component in no particular order,
// for callers that only test or count them: it skips Runs' sort, which
// for a dispatch component holding thousands of ended runs is most of a
// read's cost.
func (s *State) UnorderedRuns(component string) []*Run {
	var out []*Run
	for _, r := range s.runs {
		if r.Component == component {
			out = append(out, r)
		}
	}
	return out
}

// RunsByComponent returns the runs keep accepts (every run when keep is
// nil) grouped by component, each group in the order of Runs.
func (s *State) RunsByComponent(keep func(*Run) bool) map[string][]*Run {
	return groupRuns(maps.Values(s.runs), keep)
}

// groupRuns groups the runs keep accepts by component and sorts each group
// as Runs does, so the result does not depend on the order runs come in.
func groupRuns(runs iter.Seq[*Run], keep func(*Run) bool) map[string][]*Run {
	sizes := map[string]int{}
	for r := range runs {
		if keep == nil || keep(r) {
			sizes[r.Component]++
		}
	}
	out := make(map[string][]*Run, len(sizes))
	for name, n := range sizes {
		out[name] = make([]*Run, 0, n)
	}
	for r := range runs {
		if keep == nil || keep(r) {
			out[r.Component] = append(out[r.Component], r)
		}
	}
	for _, group := range out {
		sortRuns(group)
	}
	return out
}

// LiveRunsOnNode returns the runs placed on node that are not TERMINATED,
// in the order of Runs, from an index instead of a scan of every run: an
// agent's watch reads them after every change.
func (s *State) LiveRunsOnNode(node string) []*Run {
	ids := s.liveOnNode[node]
	out := make([]*Run, 0, len(ids))
	for id := range ids {
		out = append(out, s.runs[id])
	}
	sortRuns(out)
	return out
}

// indexLive keeps r's entry in liveOnNode: there while r is placed and not
// TERMINATED.
func (s *State) indexLive(r *Run) {
	if r.Node == "" {
		return
	}
	ids := s.liveOnNode[r.Node]
	if r.State == StateTerminated {
		delete(ids, r.ID)
		if len(ids) == 0 {
			delete(s.liveOnNode, r.Node)
		}
		return
	}
	if ids == nil {
		ids = map[string]struct{}{}
		s.liveOnNode[r.Node] = ids
	}
	ids[r.ID] = struct{}{}
}

// RunsWhere returns the runs keep accepts, in the order of Runs. It
// filters before it sorts: a node's runs among a million are sorted alone.
func (s *State) RunsWhere(keep func(*Run) bool) []*Run {
	out := make([]*Run, 0)
	for _, r := range s.runs {
		if keep(r) {
			out = append(out, r)
		}
	}
	sortRuns(out)
	return out
}

// SlotRun returns the run occupying a component slot: the one run of that
// slot that is not TERMINATED.
func (s *State) SlotRun(component string, slot int) (*Run, bool) {
	id, ok := s.slots[slotKey{component, slot}]
	if !ok {
		return nil, false
	}
	return s.runs[id], true
}

// Node returns a node by id.
func (s *State) Node(id string) (*Node, bool) {
	n, ok := s.nodes[id]
	return n, ok
}

// Nodes returns all nodes sorted by id.
func (s *State) Nodes() []*Node {
	out := make([]*Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Counts returns the number of components, nodes, runs and events (every
// event of the chain, held in memory or archived).
func (s *State) Counts() (components, nodes, runs, events int) {
	return len(s.components), len(s.nodes), len(s.runs), int(s.events.total())
}

// Events returns up to limit events held in memory whose Raft index is at
// least from, in order (limit <= 0 means no limit). When component is not
// empty only that component's events are returned. Events before
// FirstEventSeq are in the archive only.
func (s *State) Events(from uint64, component string, limit int) []Event {
	n := s.events.len()
	i := sort.Search(n, func(i int) bool { return s.events.indexOf(i) >= from })
	return s.eventsFrom(i, component, limit)
}

// EventsAfterSeq returns up to limit events whose Seq is greater than seq,
// in order (limit <= 0 means no limit), of one component if not empty. A
// follower of the event stream keeps its place by Seq, which, unlike the
// Raft index, is unique per event.
func (s *State) EventsAfterSeq(seq uint64, component string, limit int) []Event {
	if seq > s.events.total() {
		return make([]Event, 0)
	}
	// Seq n is at position n-1-base; events released to the archive are
	// not returned.
	return s.eventsFrom(int(seq-min(seq, s.events.base)), component, limit)
}

func (s *State) eventsFrom(i int, component string, limit int) []Event {
	out := make([]Event, 0)
	for n := s.events.len(); i < n; i++ {
		if component != "" && string(s.events.componentOf(i)) != component {
			continue
		}
		out = append(out, s.events.event(i))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// VerifyEvents checks the event hash chain held by the state, from the
// first event held (linked to the hash of the one before it) to the head.
func (s *State) VerifyEvents() error {
	head, err := s.events.verify()
	if err != nil {
		return err
	}
	if head != s.head {
		return errChainHead(head, s.head)
	}
	return nil
}

func sortRuns(runs []*Run) {
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := cmp.Compare(a.CreateIndex, b.CreateIndex); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Slot, b.Slot); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
