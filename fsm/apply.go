package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Result is what Apply returns for one log entry.
type Result struct {
	Index uint64
	Type  MessageType
	// Err is set when the whole command was rejected; the state is unchanged.
	Err error
	// Items holds one entry per item of a batch command (RunsCreate,
	// RunTransition): nil where the item was applied, the reason otherwise.
	Items []error
	// Generation is the component's generation after a component command.
	Generation uint64
	// RunIDs are the ids of created runs, in item order ("" where rejected).
	RunIDs []string
	// GrantIDs are the ids of the grants a grant.request recorded, in item
	// order ("" where refused outright).
	GrantIDs []string
	// Events is the number of events the command produced.
	Events int
	// Batch holds one result per command of a batch entry.
	Batch []*Result
}

// Rejected returns the number of rejected items (1 if the whole command was
// rejected; the sum over its commands for a batch).
func (r *Result) Rejected() int {
	if r.Err != nil {
		return 1
	}
	n := 0
	for _, b := range r.Batch {
		n += b.Rejected()
	}
	for _, e := range r.Items {
		if e != nil {
			n++
		}
	}
	return n
}

// FirstErr returns Err, or the first item error.
func (r *Result) FirstErr() error {
	if r.Err != nil {
		return r.Err
	}
	for _, b := range r.Batch {
		if err := b.FirstErr(); err != nil {
			return err
		}
	}
	for _, e := range r.Items {
		if e != nil {
			return e
		}
	}
	return nil
}

// applyCtx carries what every apply function needs about its entry.
type applyCtx struct {
	index uint64
	term  uint64
	sub   int
	typ   MessageType
	// version is the entry's body version.
	version int
	header  Header
	actor   Actor
	res     *Result
}

// Apply applies one committed log entry. It never panics on any input and
// leaves the state unchanged when it rejects the command.
func (s *State) Apply(index, term uint64, data []byte) (res *Result) {
	res = &Result{Index: index}
	defer func() {
		// A panic here is a bug in this package, not bad input; recovering
		// keeps the server up, and the deterministic error keeps every
		// server in agreement.
		if p := recover(); p != nil {
			res.Err = fmt.Errorf("apply entry %d: internal error: %v: %w", index, p, ErrInvalid)
		}
	}()
	s.index, s.term = index, term
	if len(data) > 0 && MessageType(data[0]) == BatchType {
		res.Type = BatchType
		s.applyBatch(index, term, data, res)
		return res
	}
	s.applyOne(index, term, 0, data, res)
	return res
}

// applyOne applies one command; sub is its position in a batch entry (0
// for an entry of its own), which keeps run ids unique within the entry.
func (s *State) applyOne(index, term uint64, sub int, data []byte, res *Result) {
	cmd, err := Decode(data)
	if err != nil {
		res.Err = fmt.Errorf("apply entry %d: %w", index, err)
		return
	}
	res.Type = cmd.Type
	s.bodyVersionSeen = max(s.bodyVersionSeen, cmd.Version)
	if err := s.applyCommand(index, term, sub, cmd, res); err != nil {
		res.Err = fmt.Errorf("apply %s at %d: %w", cmd.Type, index, err)
	}
}

func (s *State) applyCommand(index, term uint64, sub int, cmd Command, res *Result) error {
	actor, err := ParseActor(cmd.Header.Actor)
	if err != nil {
		return err
	}
	if allowed := CommandAuthority[cmd.Type]; allowed&actor.Kind == 0 {
		return fmt.Errorf("%s may not issue %s (allowed: %s): %w", cmd.Header.Actor, cmd.Type, allowed, ErrNotAuthorized)
	}
	if actor.Kind == KindAgent && cmd.Header.Node != actor.Name {
		return fmt.Errorf("agent %q sent a command for node %q: %w", actor.Name, cmd.Header.Node, ErrNotAuthorized)
	}
	if cmd.Header.Time <= 0 {
		return fmt.Errorf("command carries no leader time: %w", ErrInvalid)
	}
	if cmd.Version >= 5 && cmd.Header.Time < s.lastTime {
		// The leader stamps a command when it is proposed, and group commit
		// may order two concurrent proposals the other way round: committed
		// time never goes back, so the later entry takes the earlier time.
		// (Entries of older body versions are applied as older builds did,
		// so that a mixed cluster does not diverge.)
		cmd.Header.Time = s.lastTime
	}
	if len(cmd.Header.Purpose) > maxReasonLen {
		return fmt.Errorf("purpose longer than %d bytes: %w", maxReasonLen, ErrInvalid)
	}
	ctx := &applyCtx{index: index, term: term, sub: sub, typ: cmd.Type, version: cmd.Version, header: cmd.Header, actor: actor, res: res}
	switch body := cmd.Body.(type) {
	case *ComponentPutRequest:
		return s.applyComponentPut(ctx, body)
	case *ComponentDeleteRequest:
		return s.applyComponentDelete(ctx, body)
	case *RunsCreateRequest:
		return s.applyRunsCreate(ctx, body)
	case *RunTransitionRequest:
		return s.applyRunTransition(ctx, body)
	case *NodeRegisterRequest:
		return s.applyNodeRegister(ctx, body)
	case *NodeStatusRequest:
		return s.applyNodeStatus(ctx, body)
	case *ComponentFailRequest:
		return s.applyComponentFail(ctx, body)
	case *RunsNoteRequest:
		return s.applyRunsNote(ctx, body)
	case *ClusterInitRequest:
		return s.applyClusterInit(ctx, body)
	case *ACLBootstrapRequest:
		return s.applyACLBootstrap(ctx, body)
	case *ACLPolicyPutRequest:
		return s.applyACLPolicyPut(ctx, body)
	case *ACLPolicyDeleteRequest:
		return s.applyACLPolicyDelete(ctx, body)
	case *ACLTokenCreateRequest:
		return s.applyACLTokenCreate(ctx, body)
	case *ACLTokenDeleteRequest:
		return s.applyACLTokenDelete(ctx, body)
	case *DigestMarkRequest:
		return s.applyDigestMark(ctx, body)
	case *AlarmRaiseRequest:
		return s.applyAlarmRaise(ctx, body)
	case *AlarmClearRequest:
		return s.applyAlarmClear(ctx, body)
	case *StateGCRequest:
		return s.applyStateGC(ctx, body)
	case *GrantRequestRequest:
		return s.applyGrantRequest(ctx, body)
	case *GrantApproveRequest:
		return s.applyGrantApprove(ctx, body)
	case *GrantEndRequest:
		if cmd.Type == GrantDenyType {
			return s.applyGrantDeny(ctx, body)
		}
		return s.applyGrantRevoke(ctx, body)
	case *GrantExpireRequest:
		return s.applyGrantExpire(ctx, body)
	case *GrantReleaseRequest:
		return s.applyGrantRelease(ctx, body)
	case *GrantUseRequest:
		return s.applyGrantUse(ctx, body)
	case *SigningKeyRegisterRequest:
		return s.applySigningKeyRegister(ctx, body)
	case *SigningKeyRetireRequest:
		return s.applySigningKeyRetire(ctx, body)
	case *ComponentDispatchRequest:
		return s.applyComponentDispatch(ctx, body)
	case *MemoryExpireRequest:
		return s.applyMemoryExpire(ctx, body)
	case *MemoryEndRequest:
		if cmd.Type == MemoryDeprecateType {
			return s.applyMemoryDeprecate(ctx, body)
		}
		return s.applyMemoryInvalidate(ctx, body)
	}
	return fmt.Errorf("no apply function for %s: %w", cmd.Type, ErrUnknownType)
}

// emit appends an event to the chain.
func (s *State) emit(ctx *applyCtx, typ, subject, component string, payload any) {
	var raw []byte
	if p, ok := payload.(interface{ appendJSON([]byte) []byte }); ok {
		raw = p.appendJSON(s.payloadBuf[:0])
		s.payloadBuf = raw
	} else {
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			// Payloads are this package's own plain structs; this cannot fail.
			raw = []byte(`null`)
		}
	}
	s.head = s.events.emit(s.head, ctx.index, ctx.term, ctx.header.Time, typ, subject, component, ctx.header.Actor, ctx.header.Purpose, raw)
	s.lastTime = ctx.header.Time
	ctx.res.Events++
}

func checkCAS(what string, cas *uint64, current uint64) error {
	if cas != nil && *cas != current {
		return fmt.Errorf("%s: cas %d does not match generation %d: %w", what, *cas, current, ErrConflict)
	}
	return nil
}

func (s *State) applyComponentPut(ctx *applyCtx, req *ComponentPutRequest) error {
	sp := req.Spec
	if err := ValidateSpec(&sp); err != nil {
		return err
	}
	old, exists := s.components[sp.Name]
	var gen uint64
	if exists {
		gen = old.Generation
	}
	if err := checkCAS("put component "+sp.Name, req.CAS, gen); err != nil {
		return err
	}
	if exists && old.Status == ComponentRunning && specEqual(&old.Spec, &sp) {
		ctx.res.Generation = gen
		return nil
	}
	c := &Component{
		Spec:          sp,
		Generation:    gen + 1,
		RunGeneration: gen + 1,
		Status:        ComponentRunning,
		CreateIndex:   ctx.index,
		ModifyIndex:   ctx.index,
		ModifyTime:    ctx.header.Time,
	}
	if ctx.version >= BodyVersion && len(sp.Capabilities) > 0 {
		// Who deployed capabilities may not approve them (grant.go).
		// Entries of older versions carry no capabilities, and a state
		// without them keeps the form older builds read.
		c.Deployer = ctx.header.Actor
	}
	if exists {
		c.CreateIndex = old.CreateIndex
		if old.Status == ComponentRunning && runSpecEqual(&old.Spec, &sp) {
			c.RunGeneration = old.RunGeneration
		}
	}
	s.components[sp.Name] = c
	ctx.res.Generation = c.Generation
	s.emit(ctx, "component.put", sp.Name, sp.Name, &componentPutPayload{c.Generation, sp})
	return nil
}

// runSpecEqual reports whether two specs differ at most in count.
func runSpecEqual(a, b *Spec) bool {
	x, y := *a, *b
	x.Count, y.Count = 0, 0
	return specEqual(&x, &y)
}

// specEqual reports whether two specs are the same, by comparing their
// binary encodings: a field added to Spec and to its codec is compared with
// no more code (nil and empty maps and slices encode alike, map keys in
// order). TestSpecFieldsEverywhere fails for a field the codec misses.
func specEqual(a, b *Spec) bool {
	var x, y encoder
	putSpec(&x, a)
	putSpec(&y, b)
	return bytes.Equal(x.b, y.b)
}

func (s *State) applyComponentDelete(ctx *applyCtx, req *ComponentDeleteRequest) error {
	old, ok := s.components[req.Name]
	if !ok {
		return fmt.Errorf("stop component %q: %w", req.Name, ErrNotFound)
	}
	if err := checkCAS("stop component "+req.Name, req.CAS, old.Generation); err != nil {
		return err
	}
	ctx.res.Generation = old.Generation
	if old.Status == ComponentStopped {
		return nil
	}
	c := *old
	c.Status = ComponentStopped
	c.Generation++
	c.ModifyIndex = ctx.index
	c.ModifyTime = ctx.header.Time
	s.components[req.Name] = &c
	ctx.res.Generation = c.Generation
	s.emit(ctx, "component.stop", req.Name, req.Name, struct {
		Generation uint64 `json:"generation"`
	}{c.Generation})
	return nil
}

// RunID derives the id of the run created by item i of the entry at index,
// in a state without a cluster id (logs written before cluster.init). It is
// formatted like a UUID so that it reads like the ids operators know.
func RunID(index uint64, i int) string { return ClusterRunID("", index, i) }

// ClusterRunID derives a run id in the cluster of the given id: the cluster
// id is hashed in, so two clusters never give their runs the same ids.
func ClusterRunID(cluster string, index uint64, i int) string {
	b := make([]byte, 16, 16+len(cluster))
	binary.BigEndian.PutUint64(b[:8], index)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	b = append(b, cluster...)
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// runID is the id of the run item i of the entry at index creates.
func (s *State) runID(index uint64, i int) string { return ClusterRunID(s.clusterID, index, i) }

func (s *State) applyRunsCreate(ctx *applyCtx, req *RunsCreateRequest) error {
	if len(req.Runs) == 0 {
		return fmt.Errorf("no runs to create: %w", ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Runs))
	ctx.res.RunIDs = make([]string, len(req.Runs))
	for i, nr := range req.Runs {
		id, err := s.createRun(ctx, i, nr)
		ctx.res.Items[i] = err
		ctx.res.RunIDs[i] = id
	}
	return nil
}

func (s *State) createRun(ctx *applyCtx, i int, nr NewRun) (string, error) {
	c, ok := s.components[nr.Component]
	if !ok {
		return "", fmt.Errorf("create run of %q: %w", nr.Component, ErrNotFound)
	}
	if c.Status != ComponentRunning || c.Generation != nr.Generation {
		return "", fmt.Errorf("create run of %q generation %d: component is %s at generation %d: %w", nr.Component, nr.Generation, c.Status, c.Generation, ErrConflict)
	}
	if reason, out := BudgetExhausted(c, ctx.header.Time); out {
		return "", fmt.Errorf("create run of %q: %s: %w", nr.Component, reason, ErrBudgetExhausted)
	}
	if nr.Slot < 0 || nr.Slot >= c.Count {
		return "", fmt.Errorf("create run of %q: slot %d outside 0..%d: %w", nr.Component, nr.Slot, c.Count-1, ErrInvalid)
	}
	key := slotKey{nr.Component, nr.Slot}
	if other, busy := s.slots[key]; busy {
		return "", fmt.Errorf("create run of %q slot %d: run %s still holds it: %w", nr.Component, nr.Slot, other, ErrConflict)
	}
	if nr.Attempt < 0 {
		return "", fmt.Errorf("create run of %q: negative attempt: %w", nr.Component, ErrInvalid)
	}
	r := &Run{
		ID:          s.runID(ctx.index, ctx.sub<<20|i),
		Component:   nr.Component,
		Generation:  nr.Generation,
		Slot:        nr.Slot,
		State:       StateCreated,
		Attempt:     nr.Attempt,
		NotBefore:   nr.NotBefore,
		CreateIndex: ctx.index,
		ModifyIndex: ctx.index,
		CreateTime:  ctx.header.Time,
		ModifyTime:  ctx.header.Time,
	}
	if _, dup := s.runs[r.ID]; dup {
		return "", fmt.Errorf("create run %s: id exists: %w", r.ID, ErrConflict)
	}
	s.runs[r.ID] = r
	s.slots[key] = r.ID
	s.emit(ctx, "run.created", r.ID, r.Component, nr)
	return r.ID, nil
}

// TransitionPayload is the payload of a run.transition event.
type TransitionPayload struct {
	From   RunState `json:"from"`
	To     RunState `json:"to"`
	Node   string   `json:"node,omitempty"`
	Epoch  uint64   `json:"epoch,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Output string   `json:"output,omitempty"`
	// Reads and Cost are what the agent reported (body version 8 on).
	Reads []MemoryRef       `json:"reads,omitempty"`
	Cost  map[string]uint64 `json:"cost,omitempty"`
}

func (s *State) applyRunTransition(ctx *applyCtx, req *RunTransitionRequest) error {
	if len(req.Transitions) == 0 {
		return fmt.Errorf("no transitions: %w", ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Transitions))
	for i := range req.Transitions {
		ctx.res.Items[i] = s.transition(ctx, &req.Transitions[i])
	}
	return nil
}

func (s *State) transition(ctx *applyCtx, t *Transition) error {
	old, ok := s.runs[t.Run]
	if !ok {
		return fmt.Errorf("transition run %q: %w", t.Run, ErrNotFound)
	}
	rule, ok := LookupRule(old.State, t.To)
	if !ok {
		return fmt.Errorf("transition run %s %s → %s: %w", t.Run, old.State, t.To, ErrIllegalTransition)
	}
	if !mayProposeTransition(rule, ctx.actor, s.nodeGone(old.Node)) {
		return fmt.Errorf("transition run %s %s → %s by %s: %w", t.Run, old.State, t.To, ctx.header.Actor, ErrNotAuthorized)
	}
	if ctx.actor.Kind == KindAgent && (old.Node != ctx.header.Node || old.Epoch != t.Epoch) {
		return fmt.Errorf("transition run %s by node %q epoch %d: run is held by node %q epoch %d: %w", t.Run, ctx.header.Node, t.Epoch, old.Node, old.Epoch, ErrFenced)
	}
	if ctx.actor.Kind == KindAgent && t.To.forward() && s.nodeGone(old.Node) {
		// A node declared down or gone has lost the authority to move its
		// runs forward: its agent must register again, and its runs were
		// or will be replaced. Reporting an abort or a teardown stays open.
		return fmt.Errorf("transition run %s by node %q: node is down or has left: %w", t.Run, ctx.header.Node, ErrFenced)
	}
	if rule.NeedsReason && t.Reason == "" {
		return fmt.Errorf("transition run %s %s → %s: a reason is required: %w", t.Run, old.State, t.To, ErrInvalid)
	}
	if len(t.Reason) > maxReasonLen || len(t.Output) > maxOutputLen {
		return fmt.Errorf("transition run %s: reason over %d or output over %d bytes: %w", t.Run, maxReasonLen, maxOutputLen, ErrInvalid)
	}
	if t.Output != "" && t.To != StateValidating {
		return fmt.Errorf("transition run %s: output is only carried into %s: %w", t.Run, StateValidating, ErrInvalid)
	}
	if err := s.checkRunReport(ctx, old, t); err != nil {
		return err
	}
	var promo *MemoryRecord
	if old.State == StateValidating && t.To == StateCommitted {
		var err error
		if promo, err = s.promotion(ctx, old); err != nil {
			return fmt.Errorf("commit run %s: %w", t.Run, err)
		}
	}
	r := *old
	if rule.Places {
		n, ok := s.nodes[t.Node]
		if !ok {
			return fmt.Errorf("place run %s on node %q: %w", t.Run, t.Node, ErrNotFound)
		}
		if c, ok := s.components[old.Component]; ok {
			if err := CheckPlacement(n, &c.Spec); err != nil {
				return fmt.Errorf("place run %s: %w", t.Run, err)
			}
		} else if !NodeSchedulable(n) {
			return fmt.Errorf("place run %s on node %s: node is %s: %w", t.Run, n.ID, n.Status, ErrIneligible)
		}
		r.Node = t.Node
		r.Epoch = ctx.index
	} else if t.Node != "" && t.Node != old.Node {
		return fmt.Errorf("transition run %s: node may only be named when placing: %w", t.Run, ErrInvalid)
	}
	r.State = t.To
	// A run keeps the reason of its outcome: the teardown's own reason is
	// in its event.
	if t.Reason != "" && (t.To != StateTerminated || r.Reason == "") {
		r.Reason = t.Reason
	}
	if t.To == StateValidating {
		r.Output = t.Output
	}
	reportInto(&r, t)
	if t.To == StateExecuting {
		r.ExecTime = ctx.header.Time
	}
	if t.To == StateTerminated {
		r.Outcome = old.State
		delete(s.slots, slotKey{r.Component, r.Slot})
	}
	r.ModifyIndex = ctx.index
	r.ModifyTime = ctx.header.Time
	s.runs[r.ID] = &r
	s.indexLive(&r)
	s.emit(ctx, "run.transition", r.ID, r.Component, &TransitionPayload{
		From: old.State, To: t.To, Node: r.Node, Epoch: r.Epoch, Reason: t.Reason, Output: t.Output, Reads: t.Reads, Cost: t.Cost,
	})
	if len(t.Cost) > 0 {
		s.addSpend(ctx, r.Component, t.Cost)
	}
	if promo != nil {
		s.promote(ctx, promo)
	}
	if old.State == StateExecuting {
		s.endRunGrants(ctx, r.ID, t.To)
	}
	return nil
}

func (s *State) applyComponentFail(ctx *applyCtx, req *ComponentFailRequest) error {
	old, ok := s.components[req.Name]
	if !ok {
		return fmt.Errorf("fail component %q: %w", req.Name, ErrNotFound)
	}
	if old.Status != ComponentRunning || old.Generation != req.Generation {
		return fmt.Errorf("fail component %q at generation %d: it is %s at generation %d: %w", req.Name, req.Generation, old.Status, old.Generation, ErrConflict)
	}
	if req.Reason == "" || len(req.Reason) > maxReasonLen {
		return fmt.Errorf("fail component %q: a reason of at most %d bytes is required: %w", req.Name, maxReasonLen, ErrInvalid)
	}
	c := *old
	c.Status, c.Reason = ComponentFailed, req.Reason
	c.ModifyIndex, c.ModifyTime = ctx.index, ctx.header.Time
	s.components[c.Name] = &c
	ctx.res.Generation = c.Generation
	s.emit(ctx, "component.failed", c.Name, c.Name, req)
	return nil
}

func (s *State) applyRunsNote(ctx *applyCtx, req *RunsNoteRequest) error {
	if len(req.Notes) == 0 {
		return fmt.Errorf("no notes: %w", ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Notes))
	for i, n := range req.Notes {
		ctx.res.Items[i] = s.noteRun(ctx, n)
	}
	return nil
}

func (s *State) noteRun(ctx *applyCtx, n RunNote) error {
	old, ok := s.runs[n.Run]
	if !ok {
		return fmt.Errorf("note run %q: %w", n.Run, ErrNotFound)
	}
	if old.State != StateCreated {
		return fmt.Errorf("note run %s: it is %s, notes are for %s runs: %w", n.Run, old.State, StateCreated, ErrConflict)
	}
	if n.Reason == "" || len(n.Reason) > maxReasonLen {
		return fmt.Errorf("note run %s: a reason of at most %d bytes is required: %w", n.Run, maxReasonLen, ErrInvalid)
	}
	if old.Reason == n.Reason {
		return nil
	}
	r := *old
	r.Reason, r.ModifyIndex, r.ModifyTime = n.Reason, ctx.index, ctx.header.Time
	s.runs[r.ID] = &r
	s.emit(ctx, "run.waiting", r.ID, r.Component, n)
	return nil
}

// nodeGone reports whether no agent can report for runs on node.
func (s *State) nodeGone(node string) bool {
	if node == "" {
		return true
	}
	return NodeGone(s.nodes[node])
}

// nodeStatus is a node's status, "unknown" for a node the state lacks.
func (s *State) nodeStatus(node string) NodeStatus {
	if n, ok := s.nodes[node]; ok {
		return n.Status
	}
	return "unknown"
}

func (s *State) applyNodeRegister(ctx *applyCtx, req *NodeRegisterRequest) error {
	n := req.Node
	if n.ID != ctx.header.Node {
		return fmt.Errorf("register node %q from agent of %q: %w", n.ID, ctx.header.Node, ErrNotAuthorized)
	}
	if err := validateNode(&n); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	n.Status, n.Reason = NodeReady, ""
	n.CreateIndex, n.ModifyIndex, n.ModifyTime = ctx.index, ctx.index, ctx.header.Time
	if old, ok := s.nodes[n.ID]; ok {
		n.CreateIndex = old.CreateIndex
		if old.Status == NodeDraining {
			n.Status = NodeDraining
		}
	}
	s.nodes[n.ID] = &n
	s.emit(ctx, "node.registered", n.ID, "", struct {
		Address string            `json:"address,omitempty"`
		Labels  map[string]string `json:"labels,omitempty"`
		Plugins []PluginInfo      `json:"plugins,omitempty"`
		Status  NodeStatus        `json:"status"`
	}{n.Address, n.Labels, n.Plugins, n.Status})
	return nil
}

func (s *State) applyNodeStatus(ctx *applyCtx, req *NodeStatusRequest) error {
	old, ok := s.nodes[req.ID]
	if !ok {
		return fmt.Errorf("set status of node %q: %w", req.ID, ErrNotFound)
	}
	if !req.Status.valid() {
		return fmt.Errorf("set status of node %q: unknown status %q: %w", req.ID, req.Status, ErrInvalid)
	}
	if ctx.actor.Kind == KindAgent && req.ID != ctx.header.Node {
		return fmt.Errorf("agent of %q set status of node %q: %w", ctx.header.Node, req.ID, ErrNotAuthorized)
	}
	allowed := false
	for _, st := range nodeStatusAuthority[ctx.actor.Kind] {
		allowed = allowed || st == req.Status
	}
	if !allowed {
		return fmt.Errorf("%s may not set node %q %s: %w", ctx.header.Actor, req.ID, req.Status, ErrNotAuthorized)
	}
	if len(req.Reason) > maxReasonLen {
		return fmt.Errorf("set status of node %q: reason over %d bytes: %w", req.ID, maxReasonLen, ErrInvalid)
	}
	if req.DrainDeadline != 0 && req.Status != NodeDraining {
		return fmt.Errorf("set node %q %s: a drain deadline only goes with %s: %w", req.ID, req.Status, NodeDraining, ErrInvalid)
	}
	if old.Status == req.Status && old.DrainDeadline == req.DrainDeadline {
		return nil
	}
	if (old.Status == NodeDown || old.Status == NodeLeft) && req.Status != NodeDown && req.Status != NodeLeft {
		return fmt.Errorf("set node %q %s: it is %s; only its agent registering again makes it %s: %w", req.ID, req.Status, old.Status, NodeReady, ErrConflict)
	}
	n := *old
	n.Status, n.Reason, n.DrainDeadline = req.Status, req.Reason, req.DrainDeadline
	n.ModifyIndex, n.ModifyTime = ctx.index, ctx.header.Time
	s.nodes[n.ID] = &n
	s.emit(ctx, "node.status", n.ID, "", struct {
		From          NodeStatus `json:"from"`
		To            NodeStatus `json:"to"`
		Reason        string     `json:"reason,omitempty"`
		DrainDeadline int64      `json:"drain_deadline,omitempty"`
	}{old.Status, n.Status, req.Reason, req.DrainDeadline})
	if NodeGone(&n) && !NodeGone(old) {
		s.endNodeGrants(ctx, n.ID, n.Status)
	}
	return nil
}
