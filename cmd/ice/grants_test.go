package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// grantsFixture starts a one-server cluster, deploys a component with
// capabilities, drives a run to EXECUTING and requests an external and an
// irreversible grant for it; it returns the API address and the grants.
func grantsFixture(t *testing.T) (string, *fsm.Grant, *fsm.Grant) {
	t.Helper()
	isolateClientEnv(t)
	c := testcluster.New(t, 1)
	cl := c.Client(c.WaitLeader(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	one := 1
	sp := &api.ComponentSpec{Name: "pay", Plugin: fsm.PluginRef{Name: "ticker"}, Count: &one, Capabilities: []api.CapabilitySpec{
		{Scope: "net:http:*", TTL: "10m", Effect: "external"}, {Scope: "payments:refund", TTL: "1m", Effect: "irreversible"}}}
	if _, err := cl.PutComponent(ctx, sp, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Register(ctx, fsm.Node{ID: "n1", Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}); err != nil {
		t.Fatal(err)
	}
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run placed on n1", func() bool {
		_, _ = cl.Heartbeat(ctx, "n1")
		runs, _, err := cl.NodeRuns(ctx, "n1", nil)
		if err != nil || len(runs) == 0 || runs[0].State != fsm.StateProvisioned {
			return false
		}
		run = runs[0]
		return true
	})
	for _, to := range []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting} {
		if res, err := cl.Report(ctx, "n1", []fsm.Transition{{Run: run.ID, To: to, Epoch: run.Epoch}}); err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s: %v %+v", to, err, res)
		}
	}
	got, err := cl.RequestGrants(ctx, "n1", []fsm.GrantAsk{
		{Run: run.ID, Epoch: run.Epoch, Scope: "net:http:rates", Purpose: "fetch rates"},
		{Run: run.ID, Epoch: run.Epoch, Scope: "payments:refund", Purpose: "refund order 7"},
	})
	if err != nil || got.Grants[0].Grant == nil || got.Grants[1].Grant == nil {
		t.Fatalf("request grants: %+v %v", got, err)
	}
	return "http://" + c.Nodes[0].HTTPAddr, got.Grants[0].Grant, got.Grants[1].Grant
}

func TestGrantsCommands(t *testing.T) {
	addr, ext, irr := grantsFixture(t)
	out, err := runCLI(t, "", "grants", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "RUN", "COMPONENT", "SCOPE", "EFFECT", "STATUS", "EXPIRES", "USES", "REASON", ext.ID[:8], "net:http:rates", "GRANTED", "PENDING (0/1)", "irreversible"} {
		if !strings.Contains(out, want) {
			t.Errorf("grants table lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "", "grants", "--pending", "--component", "pay", "--json", "--addr", addr)
	var pending []fsm.Grant
	if err != nil || json.Unmarshal([]byte(out), &pending) != nil || len(pending) != 1 || pending[0].ID != irr.ID {
		t.Fatalf("grants --pending --json: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "", "grants", "--run", "nope", "--json", "--addr", addr); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("grants of an unknown run: %v %q", err, out)
	}
	out, err = runCLI(t, "", "grants", "show", irr.ID, "--addr", addr)
	if err != nil || field(t, out, "Purpose") != "refund" || field(t, out, "Status") != "PENDING" || field(t, out, "Scope") != "payments:refund" {
		t.Fatalf("grants show: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "grants", "show", "nope", "--addr", addr); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("show an unknown grant: %v, want 404", err)
	}
	if _, err := runCLI(t, "", "grants", "deny", irr.ID, "--addr", addr); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("deny without --reason: %v", err)
	}
	out, err = runCLI(t, "", "grants", "approve", irr.ID, "--reason", "order checked", "--addr", addr)
	if err != nil || !strings.Contains(out, "is GRANTED") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "grants", "revoke", ext.ID, "--reason", "feed compromised", "--addr", addr)
	if err != nil || !strings.Contains(out, "is REVOKED") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "grants", "revoke", ext.ID, "--reason", "again", "--addr", addr); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("revoke a revoked grant: %v, want 409", err)
	}
	out, err = runCLI(t, "", "grants", "show", irr.ID, "--addr", addr)
	if err != nil || !strings.Contains(out, "Approval:") || !strings.Contains(out, "order checked") || field(t, out, "Expires") == "" {
		t.Fatalf("show after approval: %v\n%s", err, out)
	}
}
