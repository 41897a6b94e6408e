package jepsen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/ice-run/ice/fsm"
)

// GrantsInput is what the grants checker judges.
type GrantsInput struct {
	// Events is the whole committed event log, in order (GET /v1/events
	// from the start).
	Events []fsm.Event
	// EventsError says why Events may be incomplete ("": read whole).
	EventsError string
	// Entries is the history; its grant operations (workload_grants.go) are
	// compared with the log.
	Entries []Entry
}

// grantEventPayload is the payload of the grant.* events (fsm's
// grantPayload).
type grantEventPayload struct {
	Run      string          `json:"run"`
	Scope    string          `json:"scope"`
	Status   fsm.GrantStatus `json:"status"`
	Reason   string          `json:"reason,omitempty"`
	Purpose  string          `json:"purpose,omitempty"`
	Operator string          `json:"operator,omitempty"`
	Expires  int64           `json:"expires,omitempty"`
	Detail   string          `json:"detail,omitempty"`
	Uses     uint64          `json:"uses,omitempty"`
}

// gRun is a run as the log describes it, for the grants checker.
type gRun struct {
	id, component string
	slot          int
	state         fsm.RunState
	node          string
	epoch         uint64
	// leftAt is the index at which it left EXECUTING (0: it did not).
	leftAt uint64
	// fencedAt is the index from which its epoch has no authority (it left
	// EXECUTING, or its node lost its lease), fenceWhy says which.
	fencedAt   uint64
	fenceWhy   string
	fenceKind  string
	grants     []*gGrant
	pendingEnd []*gGrant // grants live when it was fenced, until they end
}

// gGrant is a grant as the log describes it.
type gGrant struct {
	id, run, component, node, scope string
	epoch                           uint64
	status                          fsm.GrantStatus
	requested                       fsm.GrantStatus // the status grant.request recorded
	created, granted, ended         uint64          // indexes
	endWhy                          string
	// invalidAt is the index from which no use is valid: its end, or the
	// fence of its run's epoch, whichever came first.
	invalidAt  uint64
	invalidWhy string
	expires    int64
	uses       uint64
}

// grantModel replays the log's runs, nodes and grants.
type grantModel struct {
	v        *Verdict
	runs     map[string]*gRun
	runOrder []string
	slots    map[slotKey][]*gRun
	grants   map[string]*gGrant
	nodes    map[string]fsm.NodeStatus
	// purposes maps the workload's ask purposes to the grants they
	// recorded; details its use details to the indexes of their uses.
	purposes map[string]*gGrant
	details  map[string][]useAt
	// decisions maps "grant.release"/"grant.revoke" (by an operator)/
	// "grant.approve"/"grant.deny" and a grant id to the event's index.
	decisions map[string]map[string]uint64
	types     map[string]int
	fences    map[string]int
}

type useAt struct {
	grant string
	index uint64
}

func newGrantModel(v *Verdict) *grantModel {
	return &grantModel{v: v, runs: map[string]*gRun{}, slots: map[slotKey][]*gRun{}, grants: map[string]*gGrant{},
		nodes: map[string]fsm.NodeStatus{}, purposes: map[string]*gGrant{}, details: map[string][]useAt{},
		decisions: map[string]map[string]uint64{}, types: map[string]int{}, fences: map[string]int{}}
}

// CheckGrants checks the capability grants of the committed event log and
// the grant operations of the history:
//
//	(a) every accepted use of a grant sits, by index, after the grant
//	    became GRANTED and before its end (expire, revoke, release, the run
//	    leaving EXECUTING, its node losing its lease), before its expiry by
//	    leader time, and was made by the agent holding the run at its epoch;
//	(b) once a run's epoch is fenced (the run left EXECUTING or its node
//	    lost its lease), every grant of that epoch ends, at that index or
//	    before any later request, approval or use of the run; no grant is
//	    GRANTED (nor PENDING) for a run that is not EXECUTING at an epoch
//	    with authority, nor while a grant of another run of its slot lives;
//	    every grant the server answered with names the run's node and epoch;
//	(c) every acknowledged request, use, release, revocation, approval and
//	    denial of the workload is in the log, and none the server refused.
func CheckGrants(in GrantsInput) *Verdict {
	v := &Verdict{Checker: "grants"}
	m := newGrantModel(v)
	for _, e := range in.Events {
		m.event(e)
	}
	m.finish()
	acked, stale := m.checkOps(Pair(in.Entries))
	granted, uses := 0, 0
	for _, g := range m.grants {
		if g.granted != 0 {
			granted++
		}
		uses += int(g.uses)
	}
	v.stat("grants", len(m.grants))
	v.stat("grants_granted", granted)
	v.stat("uses_in_log", uses)
	v.stat("grant_events", m.types)
	v.stat("fenced_epochs", m.fences)
	v.stat("acknowledged_operations", acked)
	fenced := 0
	for _, n := range m.fences {
		fenced += n
	}
	if in.EventsError != "" {
		v.note("the event log was not read completely (%s): operations missing from it may be in the part not read", in.EventsError)
		if v.Result != Fail {
			v.Result = Unknown
			v.Summary = "undecided: the event log was not read completely: " + in.EventsError
		}
	}
	v.stat("stale_outcomes", stale.by)
	return v.finish(fmt.Sprintf("%d grants (%d GRANTED), %d uses, all within their grants' validity; %d fenced epochs, their grants ended with them; "+
		"%d acknowledged grant operations all in the log; %d stale operations (old epochs, ended runs and grants, other nodes), %d of them accepted",
		len(m.grants), granted, uses, fenced, acked, stale.total, stale.accepted))
}

// event applies one event of the log.
func (m *grantModel) event(e fsm.Event) {
	switch {
	case e.Type == "node.registered":
		var p struct {
			Status fsm.NodeStatus `json:"status"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		if p.Status == "" {
			p.Status = fsm.NodeReady
		}
		m.nodes[e.Subject] = p.Status
		m.unfenceNode(e, e.Subject)
	case e.Type == "node.status":
		var p struct {
			To fsm.NodeStatus `json:"to"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		m.nodes[e.Subject] = p.To
		if p.To == fsm.NodeDown || p.To == fsm.NodeLeft {
			m.fenceNode(e, e.Subject, p.To)
		}
	case e.Type == "run.created":
		var p fsm.NewRun
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return // the lifecycle checker reports it
		}
		if _, dup := m.runs[e.Subject]; dup {
			return
		}
		r := &gRun{id: e.Subject, component: p.Component, slot: p.Slot, state: fsm.StateCreated}
		m.runs[r.id] = r
		m.runOrder = append(m.runOrder, r.id)
		k := slotKey{p.Component, p.Slot}
		m.slots[k] = append(m.slots[k], r)
	case e.Type == "run.transition":
		m.transition(e)
	case strings.HasPrefix(e.Type, "grant."):
		m.grantEvent(e)
	}
}

func (m *grantModel) transition(e fsm.Event) {
	var p fsm.TransitionPayload
	r, ok := m.runs[e.Subject]
	if !ok || json.Unmarshal(e.Payload, &p) != nil {
		return // the lifecycle checker reports it
	}
	if rule, ok := fsm.LookupRule(r.state, p.To); ok && rule.Places {
		r.node, r.epoch = p.Node, p.Epoch
	}
	left := r.state == fsm.StateExecuting && p.To != fsm.StateExecuting
	r.state = p.To
	if left {
		r.leftAt = e.Index
		m.fence(r, e.Index, fmt.Sprintf("the run left EXECUTING for %s", p.To), fenceLeft)
	}
}

// fenceNode fences the epochs of the runs on a node that lost its lease.
func (m *grantModel) fenceNode(e fsm.Event, node string, to fsm.NodeStatus) {
	for _, id := range m.runOrder {
		if r := m.runs[id]; r.node == node && r.state != fsm.StateTerminated {
			m.fence(r, e.Index, fmt.Sprintf("node %s lost its lease (%s)", node, to), fenceLease)
		}
	}
}

// unfenceNode gives the runs still EXECUTING on a node whose agent
// registered again back the authority of their epoch: the runtime had not
// ended them, and they go on. The grants they held ended with the lease
// and stay ended; new requests are decided afresh.
func (m *grantModel) unfenceNode(e fsm.Event, node string) {
	for _, id := range m.runOrder {
		r := m.runs[id]
		if r.node != node || r.state != fsm.StateExecuting || r.fenceKind != fenceLease {
			continue
		}
		m.checkPendingEnd(r, e)
		r.fencedAt, r.fenceWhy, r.fenceKind = 0, "", ""
	}
}

// Kinds of fence.
const (
	fenceLease = "node lost its lease"
	fenceLeft  = "run left EXECUTING"
)

// fence ends the authority of a run's epoch at index.
func (m *grantModel) fence(r *gRun, index uint64, why, kind string) {
	if r.fencedAt != 0 {
		return
	}
	r.fencedAt, r.fenceWhy, r.fenceKind = index, why, kind
	m.fences[kind]++
	for _, g := range r.grants {
		if g.ended != 0 {
			continue
		}
		if g.invalidAt == 0 {
			g.invalidAt, g.invalidWhy = index, why
		}
		r.pendingEnd = append(r.pendingEnd, g)
	}
}

// checkPendingEnd reports the grants of a fenced epoch of r still live at
// a later request, approval or use of the run (each once).
func (m *grantModel) checkPendingEnd(r *gRun, e fsm.Event) {
	if r == nil {
		return
	}
	for _, g := range r.pendingEnd {
		if g.ended == 0 {
			m.v.violate("(b) index %d: %s of run %s while grant %s of its epoch %d, fenced at index %d (%s), has not ended",
				e.Index, e.Type, r.id, g.id, g.epoch, r.fencedAt, r.fenceWhy)
		}
	}
	r.pendingEnd = nil
}

func (m *grantModel) grantEvent(e fsm.Event) {
	var p grantEventPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		m.v.violate("event %d (index %d): %s of %s has a bad payload: %v", e.Seq, e.Index, e.Type, e.Subject, err)
		return
	}
	m.types[e.Type]++
	if e.Type == "grant.request" {
		m.request(e, p)
		return
	}
	g, ok := m.grants[e.Subject]
	if !ok {
		m.v.violate("index %d: %s of grant %s, which no grant.request recorded", e.Index, e.Type, e.Subject)
		return
	}
	r := m.runs[g.run]
	where := fmt.Sprintf("index %d: %s of grant %s (run %s, epoch %d, node %s)", e.Index, e.Type, g.id, g.run, g.epoch, g.node)
	switch e.Type {
	case "grant.use":
		m.checkPendingEnd(r, e)
		m.use(e, p, g, r, where)
	case "grant.approve":
		m.checkPendingEnd(r, e)
		m.approve(e, p, g, r, where)
	case "grant.expire", "grant.revoke", "grant.release", "grant.deny":
		m.end(e, p, g, r, where)
	default:
		m.v.note("%s: an event type this checker does not know", where)
	}
}

func (m *grantModel) request(e fsm.Event, p grantEventPayload) {
	if _, dup := m.grants[e.Subject]; dup {
		m.v.violate("index %d: grant %s requested twice", e.Index, e.Subject)
		return
	}
	g := &gGrant{id: e.Subject, run: p.Run, component: e.Component, scope: p.Scope, status: p.Status, requested: p.Status, created: e.Index}
	m.grants[g.id] = g
	if strings.HasPrefix(p.Purpose, "jepsen ") {
		m.purposes[p.Purpose] = g
	}
	r, ok := m.runs[p.Run]
	if !ok {
		m.v.violate("index %d: grant %s recorded for run %s, which no run.created made", e.Index, g.id, p.Run)
		g.ended = e.Index
		return
	}
	g.node, g.epoch = r.node, r.epoch
	r.grants = append(r.grants, g)
	m.checkPendingEnd(r, e)
	where := fmt.Sprintf("index %d: grant.request of %s (%s) for run %s", e.Index, g.id, p.Scope, r.id)
	if e.Actor != fsm.AgentActor(r.node) {
		m.v.violate("(b) %s recorded for %s, but the run is held by node %q at epoch %d", where, e.Actor, r.node, r.epoch)
	}
	switch p.Status {
	case fsm.GrantGranted, fsm.GrantPending:
		m.granting(g, r, where, p.Status)
		if p.Status == fsm.GrantGranted {
			g.granted, g.expires = e.Index, p.Expires
		}
	case fsm.GrantDenied:
		g.ended, g.endWhy, g.invalidAt, g.invalidWhy = e.Index, "denied at its request", e.Index, "denied at its request"
	default:
		m.v.violate("%s: recorded as %q, want GRANTED, PENDING or DENIED", where, p.Status)
	}
}

// granting checks that g may become (or wait to become) GRANTED now:
// its run EXECUTING at an epoch with authority, no live grant of another
// run of its slot.
func (m *grantModel) granting(g *gGrant, r *gRun, where string, to fsm.GrantStatus) {
	switch {
	case r.state != fsm.StateExecuting:
		m.v.violate("(b) %s: %s while the run is %s, not EXECUTING", where, to, r.state)
	case r.fencedAt != 0:
		m.v.violate("(b) %s: %s for epoch %d, fenced at index %d (%s)", where, to, r.epoch, r.fencedAt, r.fenceWhy)
	case g.epoch != r.epoch || g.node != r.node:
		m.v.violate("(b) %s: %s for node %s epoch %d, the run is at node %s epoch %d", where, to, g.node, g.epoch, r.node, r.epoch)
	}
	if st := m.nodes[r.node]; st == "" || fsm.NodeGone(&fsm.Node{Status: st}) {
		m.v.violate("(b) %s: %s while node %q is %q", where, to, r.node, st)
	}
	for _, o := range m.slots[slotKey{r.component, r.slot}] {
		if o == r {
			continue
		}
		for _, og := range o.grants {
			if og.ended == 0 && (og.granted != 0 || og.status == fsm.GrantPending) {
				m.v.violate("(b) %s: %s at epoch %d while grant %s of run %s of the same slot (epoch %d) is still live",
					where, to, r.epoch, og.id, o.id, og.epoch)
			}
		}
	}
}

// use checks an accepted use against its grant's validity (a).
func (m *grantModel) use(e fsm.Event, p grantEventPayload, g *gGrant, r *gRun, where string) {
	if p.Detail != "" {
		m.details[p.Detail] = append(m.details[p.Detail], useAt{g.id, e.Index})
	}
	var why []string
	switch {
	case g.granted == 0:
		why = append(why, "it was never GRANTED")
	case g.ended != 0:
		why = append(why, fmt.Sprintf("it ended at index %d (%s)", g.ended, g.endWhy))
	case g.invalidAt != 0:
		why = append(why, fmt.Sprintf("its validity ended at index %d: %s", g.invalidAt, g.invalidWhy))
	}
	if g.granted != 0 && e.Time >= g.expires {
		why = append(why, fmt.Sprintf("its leader time %s is at or after the expiry %s", fmtNanos(e.Time), fmtNanos(g.expires)))
	}
	if e.Actor != fsm.AgentActor(g.node) {
		why = append(why, fmt.Sprintf("it was made by %s, not the agent of node %s", e.Actor, g.node))
	}
	if r != nil && (r.state != fsm.StateExecuting || r.epoch != g.epoch) {
		why = append(why, fmt.Sprintf("the run is %s at epoch %d", r.state, r.epoch))
	}
	if p.Uses != g.uses+1 {
		why = append(why, fmt.Sprintf("it counts %d uses, the grant had %d before", p.Uses, g.uses))
	}
	g.uses++
	if len(why) > 0 {
		m.v.violate("(a) %s (detail %q) accepted although %s", where, p.Detail, strings.Join(why, "; "))
	}
}

func (m *grantModel) approve(e fsm.Event, p grantEventPayload, g *gGrant, r *gRun, where string) {
	m.decided("grant.approve", g.id, e.Index)
	if g.ended != 0 || g.status != fsm.GrantPending {
		m.v.violate("%s: approved while %s (ended at index %d)", where, g.status, g.ended)
	}
	if p.Operator == "" {
		m.v.violate("%s: approved by %s, not an operator", where, e.Actor)
	}
	if p.Status == fsm.GrantGranted {
		if r != nil {
			m.granting(g, r, where, p.Status)
		}
		g.granted, g.expires, g.status = e.Index, p.Expires, fsm.GrantGranted
	}
}

func (m *grantModel) decided(typ, grant string, index uint64) {
	if m.decisions[typ] == nil {
		m.decisions[typ] = map[string]uint64{}
	}
	if _, ok := m.decisions[typ][grant]; !ok {
		m.decisions[typ][grant] = index
	}
}

// end checks and applies an expiry, revocation, release or denial.
func (m *grantModel) end(e fsm.Event, p grantEventPayload, g *gGrant, r *gRun, where string) {
	if g.ended != 0 {
		m.v.violate("%s: the grant had ended already at index %d (%s)", where, g.ended, g.endWhy)
		return
	}
	switch e.Type {
	case "grant.expire":
		if g.granted == 0 || e.Time < g.expires || e.Actor != fsm.RuntimeActor {
			m.v.violate("%s by %s at %s: it was GRANTED at index %d, expires at %s", where, e.Actor, fmtNanos(e.Time), g.granted, fmtNanos(g.expires))
		}
	case "grant.release":
		m.decided(e.Type, g.id, e.Index)
		switch {
		case g.granted == 0 || e.Actor != fsm.AgentActor(g.node):
			m.v.violate("%s by %s: only the holding agent releases a GRANTED grant (GRANTED at index %d)", where, e.Actor, g.granted)
		case g.invalidAt != 0:
			m.v.violate("(b) %s: released by the agent after its epoch was fenced at index %d (%s)", where, g.invalidAt, g.invalidWhy)
		}
	case "grant.deny":
		m.decided(e.Type, g.id, e.Index)
		if g.status != fsm.GrantPending || p.Operator == "" {
			m.v.violate("%s by %s: only an operator denies a PENDING grant (it was %s)", where, e.Actor, g.status)
		}
	case "grant.revoke":
		if p.Operator != "" {
			m.decided(e.Type, g.id, e.Index)
		} else if r == nil || (r.leftAt != e.Index && r.fencedAt != e.Index) {
			m.v.violate("%s by %s without an operator (%q), and neither did its run leave EXECUTING nor its node lose its lease at that index", where, e.Actor, p.Reason)
		}
	}
	if r != nil && r.fencedAt != 0 && g.invalidAt == r.fencedAt && e.Index != r.fencedAt {
		m.v.violate("(b) %s: ended at index %d, not in the entry that fenced its epoch (index %d: %s)", where, e.Index, r.fencedAt, r.fenceWhy)
	}
	g.ended, g.endWhy, g.status = e.Index, strings.TrimPrefix(e.Type, "grant."), p.Status
	if g.invalidAt == 0 {
		g.invalidAt, g.invalidWhy = e.Index, g.endWhy
	}
}

// finish reports the grants of fenced epochs that never ended, and uses
// recorded twice.
func (m *grantModel) finish() {
	for _, id := range m.runOrder {
		r := m.runs[id]
		for _, g := range r.pendingEnd {
			if g.ended == 0 {
				m.v.violate("(b) grant %s of run %s (epoch %d) never ended, although its epoch was fenced at index %d (%s)",
					g.id, r.id, g.epoch, r.fencedAt, r.fenceWhy)
			}
		}
	}
	details := make([]string, 0, len(m.details))
	for d, us := range m.details {
		if len(us) > 1 && strings.HasPrefix(d, "jepsen ") {
			details = append(details, d)
		}
	}
	sort.Strings(details)
	for _, d := range details {
		m.v.violate("use %q recorded %d times (indexes %d and %d): one use took effect twice", d, len(m.details[d]), m.details[d][0].index, m.details[d][1].index)
	}
}

// staleCounts counts the stale operations by kind and answer, and those
// accepted though the workload expected a refusal.
type staleCounts struct {
	total, accepted int
	by              map[string]int
}

// outcome says how an operation ended: "refused 409", "GRANTED", "DENIED",
// "accepted", "indeterminate".
func outcome(c Entry) string {
	switch c.Type {
	case TFail:
		return fmt.Sprintf("refused %d", c.Status)
	case TInfo:
		return "indeterminate"
	}
	if c.Grant == nil || len(c.Grant.Items) == 0 {
		return "accepted"
	}
	it := c.Grant.Items[0]
	switch {
	case it.Status != http.StatusOK:
		return fmt.Sprintf("refused %d", it.Status)
	case it.GrantStatus != "" && c.F == FGrantRequest:
		return string(it.GrantStatus)
	}
	return "accepted"
}

// opTally counts one grant's decisions of one kind that the workload
// sent: those that may have taken effect, and those refused.
type opTally struct{ tried, refused int }

// decisionTypes maps the workload's decisions to their events.
var decisionTypes = map[string]string{FGrantRelease: "grant.release", FGrantRevoke: "grant.revoke", FGrantApprove: "grant.approve", FGrantDeny: "grant.deny"}

// checkOps compares the workload's grant operations with the log (c) and
// the grants the server answered with with the runs (b); it returns how
// many operations were acknowledged and the stale ones' outcomes.
func (m *grantModel) checkOps(ops []Op) (int, *staleCounts) {
	stale := &staleCounts{by: map[string]int{}}
	tally := map[[2]string]*opTally{}
	acked := 0
	for _, op := range ops {
		inv, c := op.Invoke, op.Complete
		if !isGrantF(inv.F) || inv.Grant == nil {
			continue
		}
		req := inv.Grant
		if req.Stale != "" {
			out := outcome(c)
			stale.total++
			stale.by[req.Stale+" "+out]++
			if req.Stale != StaleUndeclared && (out == "accepted" || out == string(fsm.GrantGranted) || out == string(fsm.GrantPending)) {
				stale.accepted++
				m.v.note("stale %s %s at t=%.3fs was accepted (%s); (a) and (b) judge it against the log", req.Stale, inv.F, secs(inv.Mono), out)
			}
		}
		if c.Type == TOK {
			acked++
		}
		where := fmt.Sprintf("%s by p%d at t=%.3fs (as %s)", inv.F, inv.Process, secs(inv.Mono), req.Cert)
		var items []GrantAnswer
		if c.Type == TOK && c.Grant != nil {
			items = c.Grant.Items
		}
		switch inv.F {
		case FGrantRequest:
			m.checkAsks(where, req, c, items)
		case FGrantUse:
			m.checkUses(where, req, c, items)
		default:
			m.checkDecision(where, inv.F, req, c, items, tally)
		}
	}
	keys := make([][2]string, 0, len(tally))
	for k := range tally {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		if t := tally[k]; t.tried == 0 && t.refused > 0 {
			if idx, ok := m.decisions[k[0]][k[1]]; ok {
				m.v.violate("(c) %s of grant %s is in the log at index %d, but all %d the workload sent were refused", k[0], k[1], idx, t.refused)
			}
		}
	}
	return acked, stale
}

// refusal describes why an item was refused ("" when it was accepted or
// the operation is indeterminate).
func refusal(c Entry, items []GrantAnswer, i int) string {
	switch {
	case c.Type == TFail:
		return fmt.Sprintf("HTTP %d: %s", c.Status, truncate(c.Error, 160))
	case c.Type == TOK && i < len(items) && items[i].Status != http.StatusOK:
		return fmt.Sprintf("item %d: %s", items[i].Status, truncate(items[i].Error, 160))
	}
	return ""
}

func (m *grantModel) checkAsks(where string, req *GrantOp, c Entry, items []GrantAnswer) {
	if c.Type == TOK && len(items) != len(req.Asks) {
		m.v.violate("%s: %d answers to %d asks", where, len(items), len(req.Asks))
		return
	}
	for i, a := range req.Asks {
		g := m.purposes[a.Purpose]
		if why := refusal(c, items, i); why != "" {
			if g != nil {
				m.v.violate("(c) %s: ask %d (%s for run %s epoch %d) was refused (%s) but is grant %s at index %d", where, i, a.Scope, a.Run, a.Epoch, why, g.id, g.created)
			}
			continue
		}
		if c.Type != TOK {
			continue
		}
		it := items[i]
		switch {
		case g == nil:
			m.v.violate("(c) %s: ask %d (%s for run %s epoch %d) acknowledged as grant %s %s at index %d is not in the event log",
				where, i, a.Scope, a.Run, a.Epoch, it.Grant, it.GrantStatus, c.Grant.Index)
		case g.id != it.Grant || g.requested != it.GrantStatus:
			m.v.violate("(c) %s: ask %d acknowledged as grant %s %s, the log recorded it as grant %s %s", where, i, it.Grant, it.GrantStatus, g.id, g.requested)
		}
		m.answerFits(where, it)
	}
}

func (m *grantModel) checkUses(where string, req *GrantOp, c Entry, items []GrantAnswer) {
	if c.Type == TOK && len(items) != len(req.Uses) {
		m.v.violate("%s: %d answers to %d uses", where, len(items), len(req.Uses))
		return
	}
	for i, u := range req.Uses {
		at := m.details[u.Detail]
		if why := refusal(c, items, i); why != "" {
			if len(at) > 0 {
				m.v.violate("(c) %s: use %q of grant %s (epoch %d) was refused (%s) but is in the log at index %d", where, u.Detail, u.ID, u.Epoch, why, at[0].index)
			}
			continue
		}
		if c.Type != TOK {
			continue
		}
		switch {
		case len(at) == 0:
			m.v.violate("(c) %s: use %q of grant %s acknowledged at index %d is not in the event log: an acknowledged use was lost", where, u.Detail, u.ID, c.Grant.Index)
		case at[0].grant != u.ID:
			m.v.violate("(c) %s: use %q of grant %s is in the log as a use of grant %s", where, u.Detail, u.ID, at[0].grant)
		}
		m.answerFits(where, items[i])
	}
}

func (m *grantModel) checkDecision(where, f string, req *GrantOp, c Entry, items []GrantAnswer, tally map[[2]string]*opTally) {
	typ := decisionTypes[f]
	k := [2]string{typ, req.Grant}
	t := tally[k]
	if t == nil {
		t = &opTally{}
		tally[k] = t
	}
	switch c.Type {
	case TFail:
		t.refused++
		return
	case TInfo:
		t.tried++
		return
	}
	t.tried++
	if _, ok := m.decisions[typ][req.Grant]; !ok {
		m.v.violate("(c) %s: %s of grant %s acknowledged at index %d is not in the event log", where, typ, req.Grant, c.Grant.Index)
	}
	if len(items) > 0 {
		m.answerFits(where, items[0])
	}
}

// answerFits checks a grant the server answered with against the log: it
// exists, for its run's node and epoch.
func (m *grantModel) answerFits(where string, it GrantAnswer) {
	if it.Grant == "" {
		return
	}
	g, ok := m.grants[it.Grant]
	if !ok {
		m.v.violate("(c) %s: answered with grant %s, which is not in the event log", where, it.Grant)
		return
	}
	if r := m.runs[g.run]; it.Run != g.run || r == nil || it.Node != r.node || it.Epoch != r.epoch {
		node, epoch := "", uint64(0)
		if r != nil {
			node, epoch = r.node, r.epoch
		}
		m.v.violate("(b) %s: answered with grant %s of run %s at node %s epoch %d; the log has it for run %s, placed on node %q at epoch %d",
			where, it.Grant, it.Run, it.Node, it.Epoch, g.run, node, epoch)
	}
}
