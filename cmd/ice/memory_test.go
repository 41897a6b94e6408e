package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// memoryFixture starts a one-server cluster with a node n1 and two
// dispatched components: facts (memory fact f-${input.doc}, a budget of
// 100 tokens) and sum (memory summary s-${input.doc}, reading facts).
func memoryFixture(t *testing.T) (string, *api.Client) {
	t.Helper()
	isolateClientEnv(t)
	c := testcluster.New(t, 1)
	cl := c.Client(c.WaitLeader(t))
	ctx := testCtx(t)
	for _, sp := range []*api.ComponentSpec{
		{Name: "facts", Plugin: fsm.PluginRef{Name: "ticker"}, Dispatch: true,
			Memory: &api.MemorySpecWire{Type: "fact", Key: "f-${input.doc}", Format: "json", Required: []string{"text"}},
			Budget: &api.BudgetSpec{Limits: map[string]uint64{"tokens": 100}, Window: "24h"}},
		{Name: "sum", Plugin: fsm.PluginRef{Name: "ticker"}, Dispatch: true,
			Memory: &api.MemorySpecWire{Type: "summary", Key: "s-${input.doc}"}, Reads: []string{"fact"}},
	} {
		if _, err := cl.PutComponent(ctx, sp, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Register(ctx, fsm.Node{ID: "n1", Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}); err != nil {
		t.Fatal(err)
	}
	return "http://" + c.Nodes[0].HTTPAddr, cl
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// provisioned waits, heartbeating n1, for a PROVISIONED run of component
// on n1 not in done, and returns it.
func provisioned(t *testing.T, cl *api.Client, component string, done map[string]bool) fsm.Run {
	t.Helper()
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run of "+component+" placed on n1", func() bool {
		_, _ = cl.Heartbeat(testCtx(t), "n1")
		runs, _, err := cl.NodeRuns(testCtx(t), "n1", nil)
		for _, r := range runs {
			if err == nil && r.Component == component && r.State == fsm.StateProvisioned && !done[r.ID] {
				run = r
				done[r.ID] = true
				return true
			}
		}
		return false
	})
	return run
}

// finish drives a provisioned run, as n1's agent, to COMMITTED (with
// output, reads and cost) and TERMINATED; with abort, to ABORTED instead.
func finish(t *testing.T, cl *api.Client, run fsm.Run, output string, reads []fsm.MemoryRef, cost map[string]uint64, abort bool) {
	t.Helper()
	report := func(tr fsm.Transition) {
		t.Helper()
		tr.Run, tr.Epoch = run.ID, run.Epoch
		if res, err := cl.Report(testCtx(t), "n1", []fsm.Transition{tr}); err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s → %s: %v %+v", run.ID, tr.To, err, res)
		}
	}
	if abort {
		report(fsm.Transition{To: fsm.StateAborted, Reason: "plugin crashed"})
		report(fsm.Transition{To: fsm.StateTerminated})
		return
	}
	report(fsm.Transition{To: fsm.StateContextReady})
	report(fsm.Transition{To: fsm.StateExecuting})
	report(fsm.Transition{To: fsm.StateValidating, Output: output, Reads: reads, Cost: cost})
	testcluster.WaitFor(t, 10*time.Second, "run "+run.ID+" COMMITTED", func() bool {
		r, err := cl.Run(testCtx(t), run.ID)
		return err == nil && r.State == fsm.StateCommitted
	})
	report(fsm.Transition{To: fsm.StateTerminated})
}

type cliResult struct {
	out string
	err error
}

// runCLIAsync runs the command tree in a goroutine (a --wait that the test
// must drive).
func runCLIAsync(t *testing.T, stdin string, args ...string) <-chan cliResult {
	ch := make(chan cliResult, 1)
	root := newRootCmd()
	var out strings.Builder
	root.SetOut(&out)
	root.SetErr(&strings.Builder{})
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	go func() {
		err := root.Execute()
		ch <- cliResult{out.String(), err}
	}()
	return ch
}

func TestDispatchAndMemoryCommands(t *testing.T) {
	addr, cl := memoryFixture(t)
	done := map[string]bool{}

	// --wait follows the run to its end and prints its outcome and output.
	waiting := runCLIAsync(t, "", "dispatch", "facts", "--input", "doc one", "--meta", "doc=1", "--wait", "--addr", addr)
	run := provisioned(t, cl, "facts", done)
	if run.Input != "doc one" || run.Meta["doc"] != "1" {
		t.Fatalf("dispatched run %+v", run)
	}
	finish(t, cl, run, `{"text":"one"}`, nil, map[string]uint64{"tokens": 60}, false)
	res := <-waiting
	if res.err != nil {
		t.Fatalf("dispatch --wait: %v\n%s", res.err, res.out)
	}
	for _, want := range []string{"Dispatched run " + run.ID, "TERMINATED on n1 (COMMITTED)", "Outcome: COMMITTED", "Cost:    tokens 60", `{"text":"one"}`} {
		if !strings.Contains(res.out, want) {
			t.Errorf("dispatch --wait output lacks %q:\n%s", want, res.out)
		}
	}

	out, err := runCLI(t, "doc one, again", "dispatch", "facts", "--input-file", "-", "--meta", "doc=1", "--addr", addr)
	if err != nil || !strings.Contains(out, "Dispatched run ") {
		t.Fatalf("dispatch from stdin: %v\n%s", err, out)
	}
	run = provisioned(t, cl, "facts", done)
	if run.Input != "doc one, again" || !strings.Contains(out, run.ID) {
		t.Fatalf("dispatch printed %q for run %+v", out, run)
	}
	finish(t, cl, run, `{"text":"one, again"}`, nil, map[string]uint64{"tokens": 50}, false)
	if _, err := runCLI(t, "", "dispatch", "facts", "--meta", "doc=2", "--addr", addr); err == nil || !strings.Contains(err.Error(), "HTTP 429") || !strings.Contains(err.Error(), "budget exhausted: tokens 110 of 100") {
		t.Fatalf("dispatch over budget: %v, want 429 with the reason", err)
	}
	if _, err := runCLI(t, "", "dispatch", "facts", "--meta", "doc", "--addr", unreachable); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Errorf("bad --meta: %v", err)
	}
	if _, err := runCLI(t, "", "dispatch", "facts", "--input", "x", "--input-file", "f", "--addr", unreachable); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("--input and --input-file: %v", err)
	}

	if _, err := runCLI(t, "", "dispatch", "sum", "--meta", "doc=1", "--addr", addr); err != nil {
		t.Fatal(err)
	}
	finish(t, cl, provisioned(t, cl, "sum", done), "summary of one", []fsm.MemoryRef{{Type: "fact", Key: "f-1", Version: 2}}, nil, false)
	// An aborted run fails --wait.
	waiting = runCLIAsync(t, "", "dispatch", "sum", "--meta", "doc=9", "--wait", "--addr", addr)
	finish(t, cl, provisioned(t, cl, "sum", done), "", nil, nil, true)
	if res := <-waiting; res.err == nil || !strings.Contains(res.err.Error(), "ended ABORTED: plugin crashed") || !strings.Contains(res.out, "Outcome: ABORTED") {
		t.Fatalf("dispatch --wait of an aborted run: %v\n%s", res.err, res.out)
	}

	out, err = runCLI(t, "", "components", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	facts := lineWith(t, out, "facts")
	for _, want := range []string{"dispatch", "complete", "tokens 110/100 (budget exhausted)"} {
		if !strings.Contains(facts, want) {
			t.Errorf("components row of facts lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "BUDGET") || !strings.Contains(lineWith(t, out, "sum"), "complete") {
		t.Errorf("components:\n%s", out)
	}

	checkMemoryCommands(t, addr)
}

func checkMemoryCommands(t *testing.T, addr string) {
	t.Helper()
	out, err := runCLI(t, "", "memory", "ls", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RECORD", "STATUS", "fact/f-1@1", "SUPERSEDED", "fact/f-1@2", "summary/s-1@1", "ACTIVE"} {
		if !strings.Contains(out, want) {
			t.Errorf("memory ls lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "", "memory", "ls", "--type", "fact", "--status", "active", "--addr", addr)
	if err != nil || !strings.Contains(out, "fact/f-1@2") || strings.Contains(out, "f-1@1") || strings.Contains(out, "summary") {
		t.Fatalf("memory ls --type fact --status active: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "memory", "ls", "--status", "lost", "--addr", addr); err == nil {
		t.Error("memory ls --status lost: no error")
	}
	out, err = runCLI(t, "", "memory", "show", "fact/f-1@1", "--addr", addr)
	if err != nil || field(t, out, "Status") != "SUPERSEDED" || field(t, out, "Component") != "facts" || field(t, out, "Generation") != "1" || !strings.Contains(out, "superseded by version 2") {
		t.Fatalf("memory show fact/f-1@1: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "memory", "show", "summary/s-1", "--addr", addr)
	if err != nil || field(t, out, "Record") != "summary/s-1@1" || field(t, out, "Input") != "fact/f-1@2" || !strings.Contains(out, "Value:\nsummary of one\n") {
		t.Fatalf("memory show summary/s-1: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "memory", "show", "fact/f-1@7", "--addr", addr); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("show an unknown version: %v, want 404", err)
	}
	if _, err := runCLI(t, "", "memory", "show", "nokey", "--addr", addr); err == nil || !strings.Contains(err.Error(), "TYPE/KEY") {
		t.Errorf("show a bad reference: %v", err)
	}
	out, err = runCLI(t, "", "memory", "history", "fact/f-1", "--addr", addr)
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(lineWith(t, out, "SUPERSEDED"), "1") {
		t.Fatalf("memory history: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "memory", "lineage", "summary/s-1", "--addr", addr)
	if err != nil || !strings.Contains(out, "Derived from (inputs):\n  fact/f-1@2  ACTIVE") || !strings.Contains(out, "Derived into:\n  none") {
		t.Fatalf("memory lineage summary/s-1: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "memory", "lineage", "fact/f-1@2", "--addr", addr)
	if err != nil || !strings.Contains(out, "Derived into:\n  summary/s-1@1  ACTIVE") {
		t.Fatalf("memory lineage fact/f-1@2: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "memory", "invalidate", "fact/f-1", "--addr", addr); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("invalidate without --reason: %v", err)
	}
	out, err = runCLI(t, "", "memory", "invalidate", "fact/f-1", "--reason", "source retracted", "--addr", addr)
	if err != nil || !strings.Contains(out, "fact/f-1@2 is INVALIDATED: source retracted") || !strings.Contains(out, "summary/s-1@1 is INVALIDATED: derived from fact/f-1@2") {
		t.Fatalf("memory invalidate: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "memory", "deprecate", "fact/f-1@2", "--reason", "late", "--addr", addr); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("deprecate an invalidated record: %v, want 409", err)
	}
}

// lineWith returns the first line of out containing s.
func lineWith(t *testing.T, out, s string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	t.Fatalf("no line with %q in:\n%s", s, out)
	return ""
}
