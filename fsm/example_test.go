package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/ice-run/ice/fsm"
)

// Example walks a run from deployment to execution: an operator deploys a
// component, an agent registers its node, the runtime creates and places a
// run, and the agent holding it reports progress. Every step is an encoded
// log entry applied at the next Raft index, with the leader's time stamped
// into it.
func Example() {
	st := fsm.New()
	var index uint64
	apply := func(typ fsm.MessageType, h fsm.Header, body any) *fsm.Result {
		index++
		h.Time = 1_700_000_000_000_000_000 + int64(index) // stamped by the leader
		entry, err := fsm.Encode(typ, h, body)
		if err != nil {
			panic(err)
		}
		return st.Apply(index, 1, entry)
	}
	operator := fsm.Header{Actor: fsm.OperatorActor("alice"), Purpose: "deploy ticker"}
	runtime := fsm.Header{Actor: fsm.RuntimeActor, Purpose: "reconcile"}
	agent := func(node string) fsm.Header {
		return fsm.Header{Actor: fsm.AgentActor(node), Node: node, Purpose: "report"}
	}

	res := apply(fsm.ComponentPutType, operator, &fsm.ComponentPutRequest{Spec: fsm.Spec{
		Name: "ticker", Plugin: fsm.PluginRef{Name: "ticker"}, Count: 1,
	}})
	fmt.Println("deployed ticker at generation", res.Generation)

	apply(fsm.NodeRegisterType, agent("n1"), &fsm.NodeRegisterRequest{Node: fsm.Node{
		ID: "n1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("ab", 32)}},
	}})

	// Operators do not create runs; the runtime does.
	res = apply(fsm.RunsCreateType, operator, &fsm.RunsCreateRequest{Runs: []fsm.NewRun{{Component: "ticker", Generation: 1}}})
	fmt.Println("operator creates a run:", errors.Is(res.Err, fsm.ErrNotAuthorized))
	res = apply(fsm.RunsCreateType, runtime, &fsm.RunsCreateRequest{Runs: []fsm.NewRun{{Component: "ticker", Generation: 1}}})
	id := res.RunIDs[0]

	move := func(h fsm.Header, t fsm.Transition) error {
		t.Run = id
		return apply(fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: []fsm.Transition{t}}).FirstErr()
	}
	if err := move(runtime, fsm.Transition{To: fsm.StateProvisioned, Node: "n1"}); err != nil {
		panic(err)
	}
	run, _ := st.Run(id)
	fmt.Printf("run %s on %s, epoch %d\n", run.State, run.Node, run.Epoch)

	// An agent must name the epoch it was handed: a stale one is fenced.
	err := move(agent("n1"), fsm.Transition{To: fsm.StateContextReady, Epoch: run.Epoch - 1})
	fmt.Println("stale epoch fenced:", errors.Is(err, fsm.ErrFenced))
	// And a transition the lifecycle does not have is refused.
	err = move(agent("n1"), fsm.Transition{To: fsm.StateExecuting, Epoch: run.Epoch})
	fmt.Println("skipping CONTEXT_READY refused:", errors.Is(err, fsm.ErrIllegalTransition))

	for _, to := range []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting} {
		if err := move(agent("n1"), fsm.Transition{To: to, Epoch: run.Epoch}); err != nil {
			panic(err)
		}
	}
	run, _ = st.Run(id)
	fmt.Println("run is", run.State)

	fmt.Println("events:")
	for _, e := range st.Events(0, "", 0) {
		fmt.Printf("  %d %-16s %s\n", e.Index, e.Type, e.Actor)
	}
	fmt.Println("chain verifies:", st.VerifyEvents() == nil)

	// A snapshot restores to the same state.
	var buf bytes.Buffer
	if _, err := st.Snapshot().WriteTo(&buf); err != nil {
		panic(err)
	}
	restored := fsm.New()
	if err := restored.Restore(&buf, nil); err != nil {
		panic(err)
	}
	fmt.Println("restored digest matches:", restored.Digest() == st.Digest(), "at index", restored.Index())

	// Output:
	// deployed ticker at generation 1
	// operator creates a run: true
	// run PROVISIONED on n1, epoch 5
	// stale epoch fenced: true
	// skipping CONTEXT_READY refused: true
	// run is EXECUTING
	// events:
	//   1 component.put    operator:alice
	//   2 node.registered  agent:n1
	//   4 run.created      runtime
	//   5 run.transition   runtime
	//   8 run.transition   agent:n1
	//   9 run.transition   agent:n1
	// chain verifies: true
	// restored digest matches: true at index 9
}
