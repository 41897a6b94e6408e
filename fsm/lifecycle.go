package fsm

// RunState is a state of the closed run lifecycle.
type RunState string

// The run lifecycle. TERMINATED is the only terminal state.
const (
	StateCreated             RunState = "CREATED"
	StateProvisioned         RunState = "PROVISIONED"
	StateContextReady        RunState = "CONTEXT_READY"
	StateExecuting           RunState = "EXECUTING"
	StateValidating          RunState = "VALIDATING"
	StateCommitted           RunState = "COMMITTED"
	StateAborted             RunState = "ABORTED"
	StateTerminatedByRuntime RunState = "TERMINATED_BY_RUNTIME"
	StateTerminated          RunState = "TERMINATED"
)

// AllRunStates lists every state in lifecycle order.
var AllRunStates = []RunState{
	StateCreated, StateProvisioned, StateContextReady, StateExecuting, StateValidating,
	StateCommitted, StateAborted, StateTerminatedByRuntime, StateTerminated,
}

// Valid reports whether s is a state of the lifecycle.
func (s RunState) Valid() bool {
	for _, x := range AllRunStates {
		if s == x {
			return true
		}
	}
	return false
}

// Terminal reports whether s is TERMINATED, the only terminal state.
func (s RunState) Terminal() bool { return s == StateTerminated }

// Ended reports whether a run in s has reached an outcome (committed, aborted
// or terminated by the runtime) and only awaits teardown, or is terminal.
func (s RunState) Ended() bool {
	switch s {
	case StateCommitted, StateAborted, StateTerminatedByRuntime, StateTerminated:
		return true
	}
	return false
}

// forward reports whether s is a step towards execution that an agent
// proposes (CONTEXT_READY, EXECUTING, VALIDATING).
func (s RunState) forward() bool {
	return s == StateContextReady || s == StateExecuting || s == StateValidating
}

// Proposer says who may propose a transition. It is a set of bits.
type Proposer uint8

const (
	// ByRuntime: the leader's runtime duties.
	ByRuntime Proposer = 1 << iota
	// ByAgent: the agent holding the run, fenced by node and epoch.
	ByAgent
	// ByRuntimeNodeGone: the runtime, but only when the run has no node or
	// its node is down or has left (its lease expired), so no agent is left
	// to report the teardown.
	ByRuntimeNodeGone
)

// Rule is one row of the lifecycle table.
type Rule struct {
	From RunState
	To   RunState
	By   Proposer
	// NeedsReason: the transition must carry a non-empty reason.
	NeedsReason bool
	// Places: the transition assigns the run to a node; the entry's Raft
	// index becomes the run's epoch.
	Places bool
}

// Lifecycle is the closed lifecycle and authority table (docs/design.md), one row
// per allowed (from, to) pair. A transition not listed here is illegal.
//
// "Any non-terminal → TERMINATED_BY_RUNTIME" is read as every state before an
// outcome (CREATED through VALIDATING): a run that already committed, aborted
// or was terminated only awaits teardown, and ending it again would record
// two outcomes for one run.
var Lifecycle = []Rule{
	{From: "", To: StateCreated, By: ByRuntime},
	{From: StateCreated, To: StateProvisioned, By: ByRuntime, Places: true},
	{From: StateProvisioned, To: StateContextReady, By: ByAgent},
	{From: StateContextReady, To: StateExecuting, By: ByAgent},
	{From: StateExecuting, To: StateValidating, By: ByAgent},
	{From: StateValidating, To: StateCommitted, By: ByRuntime},
	{From: StateValidating, To: StateAborted, By: ByRuntime, NeedsReason: true},
	{From: StateProvisioned, To: StateAborted, By: ByAgent, NeedsReason: true},
	{From: StateContextReady, To: StateAborted, By: ByAgent, NeedsReason: true},
	{From: StateExecuting, To: StateAborted, By: ByAgent, NeedsReason: true},
	{From: StateCreated, To: StateTerminatedByRuntime, By: ByRuntime, NeedsReason: true},
	{From: StateProvisioned, To: StateTerminatedByRuntime, By: ByRuntime, NeedsReason: true},
	{From: StateContextReady, To: StateTerminatedByRuntime, By: ByRuntime, NeedsReason: true},
	{From: StateExecuting, To: StateTerminatedByRuntime, By: ByRuntime, NeedsReason: true},
	{From: StateValidating, To: StateTerminatedByRuntime, By: ByRuntime, NeedsReason: true},
	{From: StateCommitted, To: StateTerminated, By: ByAgent | ByRuntimeNodeGone},
	{From: StateAborted, To: StateTerminated, By: ByAgent | ByRuntimeNodeGone},
	{From: StateTerminatedByRuntime, To: StateTerminated, By: ByAgent | ByRuntimeNodeGone},
}

// rulesByEdge indexes Lifecycle for lookup; it is built once and only read.
var rulesByEdge = func() map[[2]RunState]Rule {
	m := make(map[[2]RunState]Rule, len(Lifecycle))
	for _, r := range Lifecycle {
		m[[2]RunState{r.From, r.To}] = r
	}
	return m
}()

// LookupRule returns the lifecycle rule for from → to, if there is one.
func LookupRule(from, to RunState) (Rule, bool) {
	r, ok := rulesByEdge[[2]RunState{from, to}]
	return r, ok
}
