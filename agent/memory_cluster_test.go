package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/plugins"
)

// TestMemoryLineageOnACluster: on a real cluster, an agent runs dispatched
// writers whose outputs become fact records, then a reader whose plugin
// reads facts through the agent; the committed summary record names
// exactly the versions served as its inputs, and the run's cost reached
// the run and its component's spend.
func TestMemoryLineageOnACluster(t *testing.T) {
	c := testcluster.New(t, 1)
	leader := c.WaitLeader(t)
	server := dialHTTP(leader.HTTPAddr)
	r := newRig(t, func(_ *Config, r *rig) {
		r.host.kind = plugins.KindFinite
		r.host.wrap = func(p *fakeProcess) pluginProcess { return newReaderProcess(p) }
	})
	a, err := newAgent(r.a.cfg, parts{host: r.host, store: r.store, members: r.members, dial: func(string) serverAPI { return server }})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.a.Run(ctx) }()

	apply := func(typ fsm.MessageType, body any) *fsm.Result {
		t.Helper()
		res, err := leader.Server.Apply(context.Background(), typ, fsm.Header{Actor: fsm.OperatorActor("test"), Purpose: "test"}, body)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("apply %v: %v", typ, err)
		}
		return res
	}
	for _, sp := range []fsm.Spec{
		{Name: "extract", Memory: &fsm.MemorySpec{Type: "fact", Key: "doc-${input.doc}"}},
		{Name: "summarize", Memory: &fsm.MemorySpec{Type: "summary", Key: "all"}, Reads: []string{"fact"},
			Budget: &fsm.Budget{Limits: map[string]uint64{"tokens": 1000}}},
	} {
		sp.Plugin, sp.Dispatch = fsm.PluginRef{Name: "batch"}, true
		apply(fsm.ComponentPutType, &fsm.ComponentPutRequest{Spec: sp})
	}
	committed := func(id string) *fsm.Run {
		t.Helper()
		var run *fsm.Run
		testcluster.WaitFor(t, 20*time.Second, "run "+id+" committed", func() bool {
			leader.Server.Read(func(st *fsm.State) {
				if got, ok := st.Run(id); ok {
					cp := *got
					run = &cp
				}
			})
			return run != nil && (run.State == fsm.StateCommitted || run.State == fsm.StateTerminated || run.State == fsm.StateAborted)
		})
		if run.State == fsm.StateAborted {
			t.Fatalf("run %s aborted: %s", id, run.Reason)
		}
		return run
	}
	dispatch := func(component string, meta map[string]string) *fsm.Run {
		t.Helper()
		res := apply(fsm.ComponentDispatchType, &fsm.ComponentDispatchRequest{Name: component, Input: "in", Meta: meta})
		return committed(res.RunIDs[0])
	}
	dispatch("extract", map[string]string{"doc": "1", "write": "fact one"})
	dispatch("extract", map[string]string{"doc": "1", "write": "fact one, again"})
	dispatch("extract", map[string]string{"doc": "2", "write": "fact two"})
	sum := dispatch("summarize", map[string]string{"doc": "1"})

	if !slices.Equal(sum.Reads, wantReads) {
		t.Fatalf("the summarize run's reads %v, want %v", sum.Reads, wantReads)
	}
	if len(sum.Cost) != 1 || sum.Cost["tokens"] != 7 {
		t.Fatalf("the summarize run's cost %v, want tokens 7", sum.Cost)
	}
	var rec *fsm.MemoryRecord
	var spend *fsm.Spend
	leader.Server.Read(func(st *fsm.State) {
		if m, ok := st.MemoryRecordOf(fsm.MemoryRef{Type: "summary", Key: "all"}); ok {
			cp := *m
			rec = &cp
		}
		if comp, ok := st.Component("summarize"); ok && comp.Spend != nil {
			cp := *comp.Spend
			spend = &cp
		}
	})
	if rec == nil || rec.Status != fsm.MemoryActive || rec.Run != sum.ID || !slices.Equal(rec.Inputs, wantReads) {
		t.Fatalf("summary record %+v, want ACTIVE from run %s with inputs %v", rec, sum.ID, wantReads)
	}
	if rec.Value != `1 fact one, again@2 of 2, input "in"` {
		t.Fatalf("summary value %q", rec.Value)
	}
	if spend == nil || spend.Units["tokens"] != 7 {
		t.Fatalf("summarize spend %+v, want tokens 7", spend)
	}
}
