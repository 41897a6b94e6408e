// Package scheduler decides what the runtime proposes: Reconcile compares
// every component's desired state with its runs and the nodes, and returns a
// Plan of runtime commands (end, fail, create, place, note, mark drained)
// that move the cluster towards it; placement spreads each component's runs
// over the nodes that may take them.
//
// It is a pure function of a state view (a *fsm.State or an *fsm.Snapshot),
// the leader's time and a batch size, like Nomad's scheduler beside its
// FSM: no Raft, no clock of its own, no I/O. It imports fsm/ and nothing of
// cluster/; cluster/'s leader loop calls it and proposes the plan. It never
// has the last word: the state machine checks every proposal against the
// same rules (fsm.CheckPlacement, fsm.NodeGone) and rejects what breaks them,
// so a bug here cannot place a run where the FSM would not.
//
// SimulatePlacement measures it without Raft or processes, through the real
// encoding and state machine (BenchmarkPlacement*, `icebench`).
package scheduler
