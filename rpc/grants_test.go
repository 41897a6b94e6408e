package rpc_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// payCaps are the capabilities the grant tests deploy.
var payCaps = []api.CapabilitySpec{
	{Scope: "net:http:*", TTL: "10m", Effect: "external"},
	{Scope: "payments:refund", TTL: "10m", Effect: "irreversible", Approvals: 1},
}

// executingRun registers node with agent, waits for a run of component on
// it and drives the run to EXECUTING as its agent.
func executingRun(t *testing.T, agent *api.Client, node, component string) fsm.Run {
	t.Helper()
	n := fsm.Node{ID: node, Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}
	if _, err := agent.Register(tctx(t), n); err != nil {
		t.Fatalf("register %s: %v", node, err)
	}
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run of "+component+" placed on "+node, func() bool {
		_, _ = agent.Heartbeat(tctx(t), node)
		runs, _, err := agent.NodeRuns(tctx(t), node, nil)
		for _, r := range runs {
			if err == nil && r.Component == component && r.State == fsm.StateProvisioned {
				run = r
				return true
			}
		}
		return false
	})
	for _, to := range []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting} {
		res, err := agent.Report(tctx(t), node, []fsm.Transition{{Run: run.ID, To: to, Epoch: run.Epoch}})
		if err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s → %s: %v %+v", run.ID, to, err, res)
		}
	}
	return run
}

// TestGrantsWalk: deploy with capabilities under ACLs, an external grant
// granted, used, revoked and its use refused; an irreversible one pending,
// refused to its deployer and approved by another operator; the events tell
// it all with actors and purposes.
func TestGrantsWalk(t *testing.T) {
	c, leader, root := aclCluster(t)
	policies := map[string]string{
		"nocaps": `component "pay" { policy = "write" }`,
		"dev":    "component \"pay\" { policy = \"write\" }\ncapability \"net:\" { policy = \"write\" }\ncapability \"payments:\" { policy = \"write\" }",
		"ops":    "component \"\" { policy = \"read\" }\ncapability \"\" { policy = \"write\" }",
		"other":  `component "other" { policy = "read" }`,
	}
	tokens := map[string]*api.Client{}
	for name, rules := range policies {
		if _, err := root.ApplyPolicy(tctx(t), name, &api.ACLPolicyRequest{Rules: rules}); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: name, Policies: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = clientWith(c, c.Follower(t), tok.SecretID)
	}
	sp := &api.ComponentSpec{Name: "pay", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(1), Capabilities: payCaps}
	if _, err := tokens["nocaps"].PutComponent(tctx(t), sp, nil); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), `capability "net:http:*"`) {
		t.Fatalf("deploy without capability write: %v, want 403 naming the capability", err)
	}
	if _, err := tokens["dev"].PutComponent(tctx(t), sp, nil); err != nil {
		t.Fatalf("dev deploys: %v", err)
	}
	agent := clientWith(c, leader, mustNodeToken(t, root, "n1"))
	run := executingRun(t, agent, "n1", "pay")
	ops, dev := tokens["ops"], tokens["dev"]

	got, err := agent.RequestGrants(tctx(t), "n1", []fsm.GrantAsk{{Run: run.ID, Epoch: run.Epoch, Scope: "net:http:rates", Purpose: "fetch rates"}})
	if err != nil || len(got.Grants) != 1 {
		t.Fatalf("request a grant: %+v %v", got, err)
	}
	ext := got.Grants[0].Grant
	if got, err = agent.RequestGrants(tctx(t), "n1", []fsm.GrantAsk{
		{Run: run.ID, Epoch: run.Epoch, Scope: "net:http:rates"},
		{Run: run.ID, Epoch: run.Epoch + 1, Scope: "net:http:rates"},
		{Run: run.ID, Epoch: run.Epoch, Scope: "fs:tmp"},
	}); err != nil || len(got.Grants) != 3 {
		t.Fatalf("request grants: %+v %v", got, err)
	}
	if ext == nil || ext.Status != fsm.GrantGranted || ext.Effect != fsm.EffectExternal || ext.ExpireTime == 0 {
		t.Fatalf("external grant %+v, want GRANTED with an expiry", got.Grants[0])
	}
	if g := got.Grants[0].Grant; g == nil || g.Status != fsm.GrantGranted || g.ID == ext.ID {
		t.Fatalf("a second grant of the same scope: %+v, want another GRANTED grant", got.Grants[0])
	}
	if g := got.Grants[1]; g.Grant != nil || g.Status != http.StatusConflict || !strings.Contains(g.Error, "fenced") {
		t.Fatalf("request under a stale epoch: %+v, want refused outright (409 fenced)", g)
	}
	if g := got.Grants[2].Grant; g == nil || g.Status != fsm.GrantDenied || !strings.Contains(g.Reason, "declares no capability") {
		t.Fatalf("undeclared scope: %+v, want DENIED", got.Grants[2])
	}
	uses, err := agent.RecordGrantUses(tctx(t), "n1", []fsm.GrantUse{{ID: ext.ID, Epoch: run.Epoch, Detail: "GET /rates"}})
	if err != nil || uses.Uses[0].Status != http.StatusOK || uses.Uses[0].Grant.Uses != 1 {
		t.Fatalf("use: %+v %v", uses, err)
	}
	if _, err := ops.RevokeGrant(tctx(t), ext.ID, ""); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("revoke without a reason: %v, want 400", err)
	}
	if _, err := tokens["other"].RevokeGrant(tctx(t), ext.ID, "no"); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("revoke without capability write: %v, want 403", err)
	}
	if out, err := ops.RevokeGrant(tctx(t), ext.ID, "rates feed compromised"); err != nil || out.Grant.Status != fsm.GrantRevoked {
		t.Fatalf("revoke: %+v %v", out, err)
	}
	uses, err = agent.RecordGrantUses(tctx(t), "n1", []fsm.GrantUse{{ID: ext.ID, Epoch: run.Epoch}})
	if err != nil || uses.Uses[0].Status != http.StatusConflict || uses.Uses[0].Grant != nil {
		t.Fatalf("use after revoke: %+v %v, want the item refused with 409", uses, err)
	}

	got, err = agent.RequestGrants(tctx(t), "n1", []fsm.GrantAsk{{Run: run.ID, Epoch: run.Epoch, Scope: "payments:refund", Purpose: "refund order 7"}})
	if err != nil || got.Grants[0].Grant == nil || got.Grants[0].Grant.Status != fsm.GrantPending {
		t.Fatalf("irreversible request: %+v %v, want PENDING", got, err)
	}
	irr := got.Grants[0].Grant
	if _, err := dev.ApproveGrant(tctx(t), irr.ID, "mine"); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "deployed component pay") {
		t.Fatalf("deployer approves: %v, want 403", err)
	}
	if out, err := ops.ApproveGrant(tctx(t), irr.ID, "order 7 checked"); err != nil || out.Grant.Status != fsm.GrantGranted {
		t.Fatalf("ops approves: %+v %v, want GRANTED", out, err)
	}
	checkGrantReads(t, root, tokens["other"], run, irr.ID)
	checkGrantEvents(t, root)
}

func mustNodeToken(t *testing.T, root *api.Client, node string) string {
	t.Helper()
	tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: node, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return tok.SecretID
}

func checkGrantReads(t *testing.T, root, other *api.Client, run fsm.Run, id string) {
	t.Helper()
	all, err := root.Grants(tctx(t), api.GrantQuery{Run: run.ID})
	if err != nil || len(all) != 4 {
		t.Fatalf("grants of the run: %d %v, want 4", len(all), err)
	}
	granted, err := root.Grants(tctx(t), api.GrantQuery{Component: "pay", Status: fsm.GrantGranted})
	if err != nil || len(granted) != 2 || granted[1].ID != id || len(granted[1].Approvals) != 1 || granted[1].Approvals[0].Operator != "operator:ops" {
		t.Fatalf("granted grants: %+v %v", granted, err)
	}
	if _, err := root.Grants(tctx(t), api.GrantQuery{Status: "LOST"}); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("unknown status: %v, want 400", err)
	}
	if _, err := root.Grant(tctx(t), "nope"); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("unknown grant: %v, want 404", err)
	}
	if _, err := root.ApproveGrant(tctx(t), "nope", ""); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("approve an unknown grant: %v, want 404", err)
	}
	if _, err := other.Grant(tctx(t), id); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("read without component read: %v, want 403", err)
	}
	if gs, err := other.Grants(tctx(t), api.GrantQuery{}); err != nil || len(gs) != 0 {
		t.Fatalf("list without component read of pay: %+v %v, want none", gs, err)
	}
}

func checkGrantEvents(t *testing.T, root *api.Client) {
	t.Helper()
	evs, err := root.Events(tctx(t), 0, "pay")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "grant.") {
			seen = append(seen, e.Type+" "+e.Actor+" "+e.Purpose)
		}
	}
	want := []string{"grant.request agent:n1 fetch rates", "grant.request agent:n1 request 3 grants", "grant.request agent:n1 request 3 grants",
		"grant.use agent:n1 use grants", "grant.revoke operator:ops ", "grant.request agent:n1 refund order 7", "grant.approve operator:ops "}
	if len(seen) != len(want) {
		t.Fatalf("grant events:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(seen[i], want[i]) {
			t.Errorf("event %d: %q, want %q...", i, seen[i], want[i])
		}
	}
}
