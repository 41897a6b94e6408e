package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sort"
	"strings"
)

// Snapshot stream format, version 2:
//
//	magic "ICESNAP\x00" | uint16 big-endian format version
//	records: kind byte | uvarint length | body
//	  one recordMeta first (JSON), then components, nodes, runs (each
//	  sorted by key, in the binary encoding of wire.go) and events (in chain
//	  order, each its hash and canonical encoding: eventlog.go)
//	end: recordEnd | 32-byte sha256 of every byte before recordEnd
//
// Version 3 adds the cluster id and ACL bootstrap index to the meta, and
// policy and token records after the runs (snapshot_acl.go). Version 4
// adds the count of alarm records to the meta, and the alarm records after
// the tokens (alarm.go). Version 5 adds the event checkpoint and the last
// collection to the meta (gc.go): its event records are the events after
// the checkpoint, the first linked to the checkpoint's hash. Version 6
// adds capabilities to spec records, the deployer to component records, and
// grant records after the alarms (grant_wire.go). Version 1 had
// the framing of 2 with every body in JSON. Both are still read and written
// (for clusters with servers of older builds), for a state without ACL data.
// Restore refuses a stream whose magic, version, record order, counts, event
// chain or checksum do not match, and only then replaces the state.
const (
	snapshotMagic = "ICESNAP\x00"
	// SnapshotVersion is the snapshot format this server writes and the
	// newest it reads.
	SnapshotVersion = 7
	snapshotJSON    = 1
	snapshotBinary  = 2

	maxRecordLen = 64 << 20
)

// Record kinds. The numbers are part of the snapshot format.
const (
	recordMeta      byte = 1
	recordComponent byte = 2
	recordNode      byte = 3
	recordRun       byte = 4
	recordEvent     byte = 5
	recordPolicy    byte = 6
	recordToken     byte = 7
	// recordCluster frames the cluster id and ACL bootstrap index in the
	// digest only; a snapshot carries them in its meta.
	recordCluster byte = 8
	recordAlarm   byte = 9
	// recordGC frames the event checkpoint and the last collection in the
	// digest only; a snapshot carries them in its meta.
	recordGC    byte = 10
	recordGrant byte = 11
	// recordSigningKey is a server's public grant-token key.
	recordSigningKey byte = 12
	// recordMemory is one version of a memory record (format 7).
	recordMemory byte = 13
	recordEnd    byte = 0xFF
)

// SnapshotMeta is the first record of a snapshot.
type SnapshotMeta struct {
	Index      uint64 `json:"index"`
	Term       uint64 `json:"term"`
	Components int    `json:"components"`
	Nodes      int    `json:"nodes"`
	Runs       int    `json:"runs"`
	Events     int    `json:"events"`
	Head       Hash   `json:"head"`
	// Digest is the state digest at Index, so a snapshot can be checked
	// and inspected without restoring it.
	Digest Hash `json:"digest"`

	// Version 3 on: the cluster id, the ACL bootstrap index and the counts
	// of policy and token records.
	ClusterID    string `json:"cluster_id,omitempty"`
	ACLBootstrap uint64 `json:"acl_bootstrap,omitempty"`
	Policies     int    `json:"policies,omitempty"`
	Tokens       int    `json:"tokens,omitempty"`

	// Version 4 on: the count of alarm records.
	Alarms int `json:"alarms,omitempty"`

	// Version 5 on: the event checkpoint (Events counts the events after
	// it) and what the last collection did, once there are any.
	Checkpoint *EventCheckpoint `json:"checkpoint,omitempty"`
	LastGC     *GCSummary       `json:"last_gc,omitempty"`

	// Version 6 on: the counts of grant and signing key records.
	Grants      int `json:"grants,omitempty"`
	SigningKeys int `json:"signing_keys,omitempty"`

	// Version 7 on: the count of memory record versions.
	Memory int `json:"memory,omitempty"`
}

// Snapshot is a point-in-time view of the state. It shares immutable records
// with the live state, so taking one is cheap and WriteTo may run while
// Apply continues.
type Snapshot struct {
	meta        SnapshotMeta
	components  []*Component
	nodes       []*Node
	runs        []*Run
	events      eventLog
	nodeByID    map[string]*Node // built by Node on first use
	policies    []*ACLPolicy
	tokens      []*ACLToken
	alarms      []*Alarm
	grants      []*Grant
	signingKeys []*SigningKey
	memory      []*MemoryRecord
}

// Snapshot captures the state. It copies only pointers; sorting and encoding
// happen in WriteTo.
func (s *State) Snapshot() *Snapshot {
	events := s.events.viewFrom(s.checkpoint.Seq)
	snap := &Snapshot{
		meta: SnapshotMeta{
			Index: s.index, Term: s.term,
			Components: len(s.components), Nodes: len(s.nodes), Runs: len(s.runs), Events: events.len(),
			Head:      s.head,
			ClusterID: s.clusterID, ACLBootstrap: s.aclBootstrap, Policies: len(s.policies), Tokens: len(s.tokens),
			Alarms: len(s.alarms),
		},
		components: make([]*Component, 0, len(s.components)),
		nodes:      make([]*Node, 0, len(s.nodes)),
		runs:       make([]*Run, 0, len(s.runs)),
		events:     events,
	}
	if s.checkpoint.Seq > 0 {
		cp := s.checkpoint
		snap.meta.Checkpoint = &cp
	}
	if s.lastGC.Index > 0 {
		gc := s.lastGC
		snap.meta.LastGC = &gc
	}
	for _, c := range s.components {
		snap.components = append(snap.components, c)
	}
	for _, n := range s.nodes {
		snap.nodes = append(snap.nodes, n)
	}
	for _, r := range s.runs {
		snap.runs = append(snap.runs, r)
	}
	snap.policies, snap.tokens, snap.alarms = s.ACLPolicies(), s.ACLTokens(), s.Alarms()
	snap.grants = s.grantsInRunOrder()
	snap.meta.Grants = len(snap.grants)
	snap.signingKeys = s.SigningKeys()
	snap.meta.SigningKeys = len(snap.signingKeys)
	snap.memory = s.Memory(MemoryFilter{})
	snap.meta.Memory = len(snap.memory)
	return snap
}

// Meta returns the snapshot's metadata (Digest is filled by WriteTo).
func (snap *Snapshot) Meta() SnapshotMeta { return snap.meta }

// The read accessors below let a reader that needs a consistent view for a
// while (the reconciler) take a Snapshot under the state's lock, which only
// copies pointers, and do its work after releasing it. They answer as the
// State's methods of the same names did when the snapshot was taken. A
// Snapshot is not safe for concurrent use.

// Runs returns the runs of a component (all runs when component is empty)
// ordered by creation index, then slot.
func (snap *Snapshot) Runs(component string) []*Run {
	out := make([]*Run, 0, len(snap.runs))
	for _, r := range snap.runs {
		if component == "" || r.Component == component {
			out = append(out, r)
		}
	}
	sortRuns(out)
	return out
}

// RunsByComponent returns the runs keep accepts (every run when keep is
// nil) grouped by component, each group in the order of Runs: a thousand
// sorts of a thousand runs cost less than one sort of a million, and the
// reconciler reads runs per component.
func (snap *Snapshot) RunsByComponent(keep func(*Run) bool) map[string][]*Run {
	return groupRuns(slices.Values(snap.runs), keep)
}

// Components returns the components sorted by name.
func (snap *Snapshot) Components() []*Component {
	out := slices.Clone(snap.components)
	slices.SortFunc(out, func(a, b *Component) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Nodes returns the nodes sorted by id.
func (snap *Snapshot) Nodes() []*Node {
	out := slices.Clone(snap.nodes)
	slices.SortFunc(out, func(a, b *Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Node returns a node by id.
func (snap *Snapshot) Node(id string) (*Node, bool) {
	if snap.nodeByID == nil {
		snap.nodeByID = make(map[string]*Node, len(snap.nodes))
		for _, n := range snap.nodes {
			snap.nodeByID[n.ID] = n
		}
	}
	n, ok := snap.nodeByID[id]
	return n, ok
}

func (snap *Snapshot) sort() {
	slices.SortFunc(snap.policies, func(a, b *ACLPolicy) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.tokens, func(a, b *ACLToken) int { return strings.Compare(a.AccessorID, b.AccessorID) })
	sort.Slice(snap.components, func(i, j int) bool { return snap.components[i].Name < snap.components[j].Name })
	sort.Slice(snap.nodes, func(i, j int) bool { return snap.nodes[i].ID < snap.nodes[j].ID })
	sort.Slice(snap.runs, func(i, j int) bool { return snap.runs[i].ID < snap.runs[j].ID })
}

// WriteTo encodes the snapshot to w in SnapshotVersion.
func (snap *Snapshot) WriteTo(w io.Writer) (int64, error) {
	return snap.WriteVersion(w, SnapshotVersion)
}

// WriteVersion encodes the snapshot to w in the given format version: 3,
// or 2 (binary) or 1 (JSON records) for a cluster in which a server of an
// older build may have to install it; those cannot hold ACL data.
func (snap *Snapshot) WriteVersion(w io.Writer, version uint16) (int64, error) {
	if version < snapshotJSON || version > SnapshotVersion {
		return 0, fmt.Errorf("write snapshot: format version %d, this server writes 1 to %d: %w", version, SnapshotVersion, ErrUnsupportedVersion)
	}
	if version < 3 && snap.hasACLData() {
		return 0, fmt.Errorf("write snapshot: format version %d cannot hold the cluster id and ACL data: %w", version, ErrUnsupportedVersion)
	}
	if version < 4 && len(snap.alarms) > 0 {
		return 0, fmt.Errorf("write snapshot: format version %d cannot hold alarms: %w", version, ErrUnsupportedVersion)
	}
	if version < 5 && snap.hasGCData() {
		return 0, fmt.Errorf("write snapshot: format version %d cannot hold an event checkpoint: %w", version, ErrUnsupportedVersion)
	}
	if version < 7 && snap.hasMemoryData() {
		return 0, fmt.Errorf("write snapshot: format version %d cannot hold dispatch, memory or budgets: %w", version, ErrUnsupportedVersion)
	}
	if version < 6 && snap.hasGrantData() {
		return 0, fmt.Errorf("write snapshot: format version %d cannot hold capabilities or grants: %w", version, ErrUnsupportedVersion)
	}
	snap.sort()
	digest := snap.digest
	if version == snapshotJSON {
		digest = snap.digestV1
	}
	d, err := digest()
	if err != nil {
		return 0, err
	}
	snap.meta.Digest = d
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, sum)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	enc := recordWriter{w: bw}
	var hdr [10]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint16(hdr[8:], version)
	if _, err := bw.Write(hdr[:]); err != nil {
		return cw.n, fmt.Errorf("write snapshot header: %w", err)
	}
	meta, err := json.Marshal(&snap.meta)
	if err != nil {
		return cw.n, fmt.Errorf("write snapshot meta: %w", err)
	}
	enc.put(recordMeta, meta)
	if version == snapshotJSON {
		snap.writeJSONRecords(&enc)
	} else {
		snap.writeRecords(&enc, version)
	}
	if enc.err != nil {
		return cw.n, fmt.Errorf("write snapshot at index %d: %w", snap.meta.Index, enc.err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write snapshot at index %d: %w", snap.meta.Index, err)
	}
	trailer := append([]byte{recordEnd}, sum.Sum(nil)...)
	if _, err := w.Write(trailer); err != nil {
		return cw.n, fmt.Errorf("write snapshot trailer: %w", err)
	}
	return cw.n + int64(len(trailer)), nil
}

// writeRecords writes components, nodes, runs and events in format 2.
func (snap *Snapshot) writeRecords(enc *recordWriter, version uint16) {
	e := encoder{version: BodyVersionOfSnapshot(version)}
	for _, c := range snap.components {
		e.b = e.b[:0]
		putComponent(&e, c)
		enc.put(recordComponent, e.b)
	}
	for _, n := range snap.nodes {
		e.b = e.b[:0]
		putNode(&e, n)
		enc.put(recordNode, e.b)
	}
	for _, r := range snap.runs {
		e.b = e.b[:0]
		putRun(&e, r)
		enc.put(recordRun, e.b)
	}
	snap.writeACLRecords(enc, &e)
	snap.writeAlarmRecords(enc, &e)
	if version >= 6 {
		snap.writeGrantRecords(enc, &e)
	}
	if version >= 7 {
		snap.writeMemoryRecords(enc, &e)
	}
	for i := 0; i < snap.events.len(); i++ {
		enc.put(recordEvent, snap.events.record(i))
	}
}

// writeJSONRecords writes them in format 1, each record as JSON.
func (snap *Snapshot) writeJSONRecords(enc *recordWriter) {
	put := func(kind byte, v any) {
		if enc.err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			enc.err = fmt.Errorf("encode record kind %d: %w", kind, err)
			return
		}
		enc.put(kind, b)
	}
	for _, c := range snap.components {
		put(recordComponent, c)
	}
	for _, n := range snap.nodes {
		put(recordNode, n)
	}
	for _, r := range snap.runs {
		put(recordRun, r)
	}
	for i := 0; i < snap.events.len(); i++ {
		e := snap.events.event(i)
		put(recordEvent, &e)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type recordWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (rw *recordWriter) put(kind byte, body []byte) {
	if rw.err != nil {
		return
	}
	rw.buf = append(rw.buf[:0], kind)
	rw.buf = binary.AppendUvarint(rw.buf, uint64(len(body)))
	if _, err := rw.w.Write(rw.buf); err != nil {
		rw.err = err
		return
	}
	if _, err := rw.w.Write(body); err != nil {
		rw.err = err
	}
}

// RestoreProgress, when set on a Restore call, is told how many records have
// been read; the caller decides whether and how to show it.
type RestoreProgress func(records, total int)

// ReadSnapshot decodes and verifies a snapshot stream into a new State.
// The stream must be complete: its checksum is checked at the end.
func ReadSnapshot(r io.Reader, progress RestoreProgress) (*State, SnapshotMeta, error) {
	sr := newSnapshotReader(r, progress)
	if err := sr.readHeader(); err != nil {
		return nil, SnapshotMeta{}, err
	}
	// From the meta record on, an error returns the meta as far as it was
	// read.
	for _, step := range []func() error{
		sr.readMeta,
		sr.readComponents,
		sr.readNodes,
		sr.readRuns,
		sr.readACL,
		sr.readAlarms,
		sr.readGrants,
		sr.readSigningKeys,
		sr.readMemory,
		sr.readEvents,
		sr.verifyChecksum,
		sr.verifyState,
	} {
		if err := step(); err != nil {
			return nil, sr.meta, err
		}
	}
	return sr.st, sr.meta, nil
}

// snapshotReader is one ReadSnapshot in progress: the stream, what has been
// read of it so far and the state being built. The steps run in stream
// order, each after the previous succeeded.
type snapshotReader struct {
	br       *bufio.Reader
	sum      hash.Hash // of every byte read through rd
	rd       *recordReader
	progress RestoreProgress

	version uint16
	meta    SnapshotMeta
	st      *State
	head    Hash // of the events read so far

	// Names repeat across records (a run's component and node, an event's
	// subject and actor): decoded once, shared by all.
	intern      map[string]string
	total, done int // records in the meta's counts, records read
}

func newSnapshotReader(r io.Reader, progress RestoreProgress) *snapshotReader {
	sum := sha256.New()
	br := bufio.NewReaderSize(r, 256<<10)
	return &snapshotReader{
		br:       br,
		sum:      sum,
		rd:       &recordReader{r: br, sum: sum},
		progress: progress,
		intern:   make(map[string]string),
	}
}

// readHeader reads the magic and the format version, and refuses a version
// this server does not read.
func (sr *snapshotReader) readHeader() error {
	var hdr [10]byte
	if err := sr.rd.full(hdr[:]); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	if string(hdr[:8]) != snapshotMagic {
		return fmt.Errorf("read snapshot header: not an ICE snapshot: %w", ErrMalformed)
	}
	sr.version = binary.BigEndian.Uint16(hdr[8:])
	if sr.version == 0 || sr.version > SnapshotVersion {
		return fmt.Errorf("read snapshot: format version %d, this server reads 1 to %d: %w", sr.version, SnapshotVersion, ErrUnsupportedVersion)
	}
	return nil
}

// readMeta reads the meta record (JSON in every version) and starts the
// state at its index and term.
func (sr *snapshotReader) readMeta() error {
	body, err := sr.rd.next(recordMeta)
	if err == nil {
		err = decodeJSONRecord(body, &sr.meta)
	}
	if err != nil {
		return fmt.Errorf("read snapshot meta: %w", err)
	}
	meta := &sr.meta
	if meta.Components < 0 || meta.Nodes < 0 || meta.Runs < 0 || meta.Events < 0 || meta.Policies < 0 || meta.Tokens < 0 || meta.Alarms < 0 || meta.Grants < 0 {
		return fmt.Errorf("read snapshot meta: negative counts: %w", ErrMalformed)
	}
	if sr.version < 3 && (meta.ClusterID != "" || meta.ACLBootstrap != 0 || meta.Policies != 0 || meta.Tokens != 0) {
		return fmt.Errorf("read snapshot meta: format version %d with ACL data: %w", sr.version, ErrMalformed)
	}
	if sr.version < 4 && meta.Alarms != 0 {
		return fmt.Errorf("read snapshot meta: format version %d with alarms: %w", sr.version, ErrMalformed)
	}
	sr.st = New()
	if err := sr.readGCMeta(); err != nil {
		return err
	}
	sr.st.index, sr.st.term = meta.Index, meta.Term
	sr.st.clusterID, sr.st.aclBootstrap = meta.ClusterID, meta.ACLBootstrap
	if meta.SigningKeys < 0 || (sr.version < 6 && meta.SigningKeys != 0) {
		return fmt.Errorf("read snapshot meta: format version %d with %d signing keys: %w", sr.version, meta.SigningKeys, ErrMalformed)
	}
	if meta.Memory < 0 || (sr.version < 7 && meta.Memory != 0) {
		return fmt.Errorf("read snapshot meta: format version %d with %d memory records: %w", sr.version, meta.Memory, ErrMalformed)
	}
	if sr.version < 6 && meta.Grants != 0 {
		return fmt.Errorf("read snapshot meta: format version %d with grants: %w", sr.version, ErrMalformed)
	}
	sr.total = meta.Components + meta.Nodes + meta.Runs + meta.Policies + meta.Tokens + meta.Alarms + meta.Grants + meta.SigningKeys + meta.Memory + meta.Events
	return nil
}

// tick counts a record read and tells progress every 10000 and at the end.
func (sr *snapshotReader) tick() {
	sr.done++
	if sr.progress != nil && (sr.done%10000 == 0 || sr.done == sr.total) {
		sr.progress(sr.done, sr.total)
	}
}

// decode reads the next record, which must be of the given kind, into v:
// as JSON in format 1, with get in the binary encoding otherwise.
func (sr *snapshotReader) decode(kind byte, v any, get func(*decoder)) error {
	body, err := sr.rd.next(kind)
	if err != nil {
		return err
	}
	if sr.version == snapshotJSON {
		return decodeJSONRecord(body, v)
	}
	d := decoder{b: body, intern: sr.intern, version: BodyVersionOfSnapshot(sr.version)}
	get(&d)
	return d.done()
}

// readComponents reads the meta's count of component records.
func (sr *snapshotReader) readComponents() error {
	st := sr.st
	for i := 0; i < sr.meta.Components; i++ {
		c := &Component{}
		if err := sr.decode(recordComponent, c, func(d *decoder) { getComponent(d, c) }); err != nil {
			return fmt.Errorf("read snapshot component %d: %w", i, err)
		}
		if _, dup := st.components[c.Name]; dup {
			return fmt.Errorf("read snapshot: component %q twice: %w", c.Name, ErrMalformed)
		}
		st.components[c.Name] = c
		sr.tick()
	}
	return nil
}

// readNodes reads the meta's count of node records.
func (sr *snapshotReader) readNodes() error {
	st := sr.st
	for i := 0; i < sr.meta.Nodes; i++ {
		n := &Node{}
		if err := sr.decode(recordNode, n, func(d *decoder) { getNode(d, n) }); err != nil {
			return fmt.Errorf("read snapshot node %d: %w", i, err)
		}
		if _, dup := st.nodes[n.ID]; dup {
			return fmt.Errorf("read snapshot: node %q twice: %w", n.ID, ErrMalformed)
		}
		st.nodes[n.ID] = n
		sr.tick()
	}
	return nil
}

// readRuns reads the meta's count of run records. Runs are stored in
// blocks rather than one allocation each.
func (sr *snapshotReader) readRuns() error {
	var block []Run
	for i := 0; i < sr.meta.Runs; i++ {
		if len(block) == 0 {
			block = make([]Run, min(sr.meta.Runs-i, 1024))
		}
		run := &block[0]
		block = block[1:]
		if err := sr.decode(recordRun, run, func(d *decoder) { getRun(d, run) }); err != nil {
			return fmt.Errorf("read snapshot run %d: %w", i, err)
		}
		if err := sr.addRun(run); err != nil {
			return err
		}
		sr.tick()
	}
	return nil
}

// addRun adds a decoded run to the state and its slot index, refusing a
// duplicate id, an unknown state and a slot held by two live runs.
func (sr *snapshotReader) addRun(run *Run) error {
	st := sr.st
	if _, dup := st.runs[run.ID]; dup {
		return fmt.Errorf("read snapshot: run %q twice: %w", run.ID, ErrMalformed)
	}
	if !run.State.Valid() {
		return fmt.Errorf("read snapshot: run %q in unknown state %q: %w", run.ID, run.State, ErrMalformed)
	}
	st.runs[run.ID] = run
	if run.Dispatch != (run.Slot == -1) {
		return fmt.Errorf("read snapshot: run %q: slot %d for a dispatched %v run: %w", run.ID, run.Slot, run.Dispatch, ErrMalformed)
	}
	if !run.State.Terminal() && !run.Dispatch {
		key := slotKey{run.Component, run.Slot}
		if other, busy := st.slots[key]; busy {
			return fmt.Errorf("read snapshot: runs %s and %s both hold %s slot %d: %w", other, run.ID, run.Component, run.Slot, ErrMalformed)
		}
		st.slots[key] = run.ID
	}
	st.indexLive(run)
	return nil
}

// readEvents reads the meta's count of event records, each appended to the
// chain, which checks it links to the one before.
func (sr *snapshotReader) readEvents() error {
	for i := 0; i < sr.meta.Events; i++ {
		body, err := sr.rd.next(recordEvent)
		if err == nil {
			if sr.version == snapshotJSON {
				sr.head, err = sr.st.events.appendJSON(sr.head, body)
			} else {
				sr.head, err = sr.st.events.appendRecord(sr.head, body)
			}
		}
		if err != nil {
			return fmt.Errorf("read snapshot event %d: %w", i, err)
		}
		sr.tick()
	}
	return nil
}

// verifyChecksum reads the end record and checks its sha256 against every
// byte read before it.
func (sr *snapshotReader) verifyChecksum() error {
	want := sr.sum.Sum(nil)
	kind, err := sr.br.ReadByte()
	if err != nil || kind != recordEnd {
		return fmt.Errorf("read snapshot trailer: want end record after %d records: %w", sr.total, ErrMalformed)
	}
	var got [32]byte
	if _, err := io.ReadFull(sr.br, got[:]); err != nil {
		return fmt.Errorf("read snapshot checksum: %w: %v", ErrMalformed, err)
	}
	if string(got[:]) != string(want) {
		return fmt.Errorf("read snapshot at index %d: content does not match its checksum: %w", sr.meta.Index, ErrChecksum)
	}
	return nil
}

// verifyState checks the restored state against the meta: the event chain
// ends at its head, and the state digest (of the stream's format version)
// is its digest.
func (sr *snapshotReader) verifyState() error {
	st, meta := sr.st, &sr.meta
	if sr.head != meta.Head {
		return fmt.Errorf("read snapshot at index %d: %w", meta.Index, errChainHead(sr.head, meta.Head))
	}
	st.head = sr.head
	st.bodyVersionSeen = BodyVersionOfSnapshot(sr.version)
	st.lastTime = st.checkpoint.Time
	if n := st.events.len(); n > 0 {
		st.lastTime = st.events.event(n - 1).Time
	}
	d := st.Digest()
	if sr.version == snapshotJSON {
		snap := st.Snapshot()
		snap.sort()
		var err error
		if d, err = snap.digestV1(); err != nil {
			return fmt.Errorf("read snapshot at index %d: %w", meta.Index, err)
		}
	}
	if d != meta.Digest {
		return fmt.Errorf("read snapshot at index %d: state digest %s, meta says %s: %w", meta.Index, d, meta.Digest, ErrChecksum)
	}
	return nil
}

func decodeJSONRecord(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode record: %w: %v", ErrMalformed, err)
	}
	return nil
}

// Restore replaces the state with the snapshot read from r. On error the
// state is left unchanged.
func (s *State) Restore(r io.Reader, progress RestoreProgress) error {
	st, _, err := ReadSnapshot(r, progress)
	if err != nil {
		return err
	}
	*s = *st
	return nil
}

func errChainHead(got, want Hash) error {
	return fmt.Errorf("event chain ends at %s, expected head %s: %w", got, want, ErrChecksum)
}

type recordReader struct {
	r   *bufio.Reader
	sum hash.Hash
	buf []byte
}

func (rd *recordReader) full(p []byte) error {
	if _, err := io.ReadFull(rd.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("stream ends early: %w", ErrMalformed)
		}
		return err
	}
	rd.sum.Write(p)
	return nil
}

// next reads a record of the given kind and returns its body, valid until
// the next call.
func (rd *recordReader) next(kind byte) ([]byte, error) {
	k, err := rd.r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("stream ends early: %w", ErrMalformed)
	}
	if k != kind {
		return nil, fmt.Errorf("record kind %d, want %d: %w", k, kind, ErrMalformed)
	}
	rd.sum.Write([]byte{k})
	n, err := binary.ReadUvarint(rd.r)
	if err != nil || n > maxRecordLen {
		return nil, fmt.Errorf("record length %d (limit %d): %w", n, maxRecordLen, ErrMalformed)
	}
	var lenBuf [binary.MaxVarintLen64]byte
	rd.sum.Write(lenBuf[:binary.PutUvarint(lenBuf[:], n)])
	if cap(rd.buf) < int(n) {
		rd.buf = make([]byte, n)
	}
	rd.buf = rd.buf[:n]
	if err := rd.full(rd.buf); err != nil {
		return nil, err
	}
	return rd.buf, nil
}
