package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestUnderstandFailures runs the verbs that explain a failure against an
// in-process cluster: ice runs RUN_ID in full, whole reasons in ice runs
// and ice components, and a misspelt component named as such.
func TestUnderstandFailures(t *testing.T) {
	addr, cl := memoryFixture(t)
	ctx := testCtx(t)
	done := map[string]bool{}

	// Dispatched runs, committed with output, reads and cost.
	if _, err := runCLI(t, "", "dispatch", "facts", "--meta", "doc=1", "--addr", addr); err != nil {
		t.Fatal(err)
	}
	finish(t, cl, provisioned(t, cl, "facts", done), `{"text":"one"}`, nil, nil, false)
	if _, err := runCLI(t, "", "dispatch", "sum", "--input", "doc one", "--meta", "doc=1", "--addr", addr); err != nil {
		t.Fatal(err)
	}
	run := provisioned(t, cl, "sum", done)
	finish(t, cl, run, `{"text":"one"}`, []fsm.MemoryRef{{Type: "fact", Key: "f-1", Version: 1}}, map[string]uint64{"tokens": 60}, false)

	out, err := runCLI(t, "", "runs", run.ID[:8], "--addr", addr)
	if err != nil {
		t.Fatalf("runs %s: %v", run.ID[:8], err)
	}
	for key, want := range map[string]string{
		"ID": run.ID, "Component": "sum", "Generation": "1", "Slot": "dispatch", "Node": "n1",
		"Epoch": fmt.Sprint(run.Epoch), "State": "TERMINATED", "Outcome": "COMMITTED", "Attempt": "0",
		"Reason": "-", "Meta": "doc=1", "Reads": "fact/f-1@1", "Cost": "tokens",
	} {
		if got := field(t, out, key); got != want {
			t.Errorf("runs RUN_ID: %s = %q, want %q\n%s", key, got, want, out)
		}
	}
	for _, want := range []string{"Input:\ndoc one\n", "Output:\n{\"text\":\"one\"}\n", "Created:", "(index ", "Executing:", "Modified:", "Not before:"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs RUN_ID lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "", "runs", run.ID, "--json", "--addr", addr)
	var got fsm.Run
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.ID != run.ID || got.Input != "doc one" || got.Cost["tokens"] != 60 {
		t.Errorf("runs RUN_ID --json: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "runs", "zzzz", "--addr", addr); err == nil || !strings.Contains(err.Error(), `no run has an id starting with "zzzz"`) {
		t.Errorf("runs of an unknown id: %v", err)
	}
	if _, err := runCLI(t, "", "runs", run.ID, "-c", "sum", "--addr", addr); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("runs RUN_ID -c: %v", err)
	}

	// A misspelt component is an error, not an empty answer.
	for _, args := range [][]string{{"runs", "-c", "nosuch"}, {"history", "nosuch"}} {
		out, err := runCLI(t, "", append(args, "--addr", addr)...)
		if err == nil || !strings.Contains(err.Error(), "no component nosuch") || out != "" {
			t.Errorf("%v: %v, output %q", args, err, out)
		}
	}

	// A component that fails: one run, no restart, aborted with a reason
	// longer than the REASON column.
	zero := 0
	one := 1
	if _, err := cl.PutComponent(ctx, &api.ComponentSpec{Name: "crash", Plugin: fsm.PluginRef{Name: "ticker"}, Count: &one,
		Restart: &api.RestartPolicySpec{Attempts: &zero}}, nil); err != nil {
		t.Fatal(err)
	}
	long := "execute failed: payments:charge denied: supplier not verified; payment of 120.00 EUR for invoice 43 to ACME not made"
	crash := provisioned(t, cl, "crash", done)
	for _, tr := range []fsm.Transition{{To: fsm.StateContextReady}, {To: fsm.StateExecuting}, {To: fsm.StateAborted, Reason: long}, {To: fsm.StateTerminated}} {
		tr.Run, tr.Epoch = crash.ID, crash.Epoch
		if res, err := cl.Report(ctx, "n1", []fsm.Transition{tr}); err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s: %v %+v", tr.To, err, res)
		}
	}
	var comp *fsm.Component
	testcluster.WaitFor(t, 10*time.Second, "crash failed", func() bool {
		comp, err = cl.Component(ctx, "crash")
		return err == nil && comp.Status == fsm.ComponentFailed
	})

	out, err = runCLI(t, "", "runs", "-c", "crash", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	if h := lines(out)[0]; strings.Join(h, " ") != "ID COMPONENT GENERATION SLOT NODE EPOCH STATE REASON" {
		t.Errorf("runs header %q", h)
	}
	if !wholeIn(out, long) || strings.Contains(out, "…") {
		t.Errorf("runs -c crash does not show the reason whole:\n%s", out)
	}
	out, err = runCLI(t, "", "runs", "-c", "crash", "--wide", "--addr", addr)
	if err != nil || !strings.Contains(lineWith(t, out, crash.ID[:8]), long) {
		t.Errorf("runs --wide: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "components", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	row := lineWith(t, out, "crash")
	if !strings.Contains(row, "failed") || !strings.Contains(out, "REASON") || comp.Reason == "" || !wholeIn(out, comp.Reason) {
		t.Errorf("components does not show why crash failed (%q):\n%s", comp.Reason, out)
	}
	out, err = runCLI(t, "", "components", "--wide", "--addr", addr)
	if err != nil || !strings.Contains(lineWith(t, out, "crash"), comp.Reason) {
		t.Errorf("components --wide: %v\n%s", err, out)
	}
	// The run's transition in history carries the whole reason too.
	out, err = runCLI(t, "", "history", "crash", "--wide", "--addr", addr)
	if err != nil || !strings.Contains(out, `reason="`+long+`"`) {
		t.Errorf("history --wide: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "events", "-c", "crash", "--addr", addr)
	if err != nil || !strings.HasPrefix(out, eventHeader()+"\n") || !strings.Contains(out, `reason="`+long+`"`) {
		t.Errorf("events: %v\n%s", err, out)
	}

	// A server's message without the sentinel suffix; the status stays.
	_, err = runCLI(t, "", "stop", "crash", "--purpose", strings.Repeat("p", 5000), "--addr", addr)
	if err == nil || !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("stop with a huge purpose: %v", err)
	}
	msg := humanError(err)
	if !strings.HasSuffix(msg, "(HTTP 400)") || strings.Contains(msg, ": invalid command") || strings.Contains(msg, ": bad request") {
		t.Errorf("humanError(%q) = %q", err, msg)
	}
}

// wholeIn reports whether the words of s appear in out in order, as a
// wrapped cell prints them.
func wholeIn(out, s string) bool {
	rest := strings.Join(strings.Fields(out), " ")
	for _, w := range strings.Fields(s) {
		i := strings.Index(rest, w)
		if i < 0 {
			return false
		}
		rest = rest[i+len(w):]
	}
	return true
}

func TestHumanError(t *testing.T) {
	api400 := func(m string) error { return &api.APIError{Status: 400, Message: m} }
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("deploy x: %w", api400(`component "x": count -1: invalid command`)), `deploy x: component "x": count -1 (HTTP 400)`},
		{fmt.Errorf("deploy x: %w", api400(`decode body: unexpected EOF: bad request`)), `deploy x: decode body: unexpected EOF (HTTP 400)`},
		{api400("read body: truncated: malformed encoding: bad request"), "read body: truncated (HTTP 400)"},
		// Sentinels that say what went wrong stay, as does a bare one.
		{&api.APIError{Status: 404, Message: `component "x": not found`}, `component "x": not found (HTTP 404)`},
		{&api.APIError{Status: 429, Message: "budget exhausted: tokens 110 of 100: over budget"}, "budget exhausted: tokens 110 of 100: over budget (HTTP 429)"},
		{api400("bad request"), "bad request (HTTP 400)"},
		// Not from the server: as it is.
		{errors.New("check x.hcl: invalid command"), "check x.hcl: invalid command"},
	}
	for _, c := range cases {
		if got := humanError(c.err); got != c.want {
			t.Errorf("humanError(%q) = %q, want %q", c.err, got, c.want)
		}
	}
	var buf bytes.Buffer
	printError(&buf, cases[0].err)
	if buf.String() != "error: "+cases[0].want+"\n" {
		t.Errorf("printError: %q", buf.String())
	}
}

// TestErrorsThroughCLI checks a fake server's 400 as the CLI prints it,
// and that --json outputs are the API's answers, untouched.
func TestErrorsThroughCLI(t *testing.T) {
	f := &fakeAPI{}
	srv := httptest.NewServer(f.handler(t, map[string]any{
		"DELETE /v1/components/x": &api.APIError{Status: http.StatusBadRequest, Message: `stop "x": purpose longer than 4096 bytes: invalid command`},
	}))
	defer srv.Close()
	_, err := runCLI(t, "", "stop", "x", "--json", "--addr", srv.URL)
	if err == nil || !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), ": invalid command") {
		t.Fatalf("stop: %v (the error value keeps the server's whole message)", err)
	}
	if got := humanError(err); got != `stop x: stop "x": purpose longer than 4096 bytes (HTTP 400)` {
		t.Errorf("printed as %q", got)
	}
}
