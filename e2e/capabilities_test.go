package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// grantsOf lists the grants of a component.
func grantsOf(t *testing.T, s *serverProc, component string) []fsm.Grant {
	t.Helper()
	gs, err := s.client().Grants(tctx(t, 5*time.Second), api.GrantQuery{Component: component})
	if err != nil {
		t.Logf("list grants of %s: %v", component, err)
		return nil
	}
	return gs
}

// waitGrant waits for a grant of component that cond accepts.
func waitGrant(t *testing.T, s *serverProc, component, what string, cond func(fsm.Grant) bool) fsm.Grant {
	t.Helper()
	var found fsm.Grant
	testcluster.WaitFor(t, 30*time.Second, what, func() bool {
		for _, g := range grantsOf(t, s, component) {
			if cond(g) {
				found = g
				return true
			}
		}
		return false
	})
	return found
}

// runLog reads a run's plugin log on agent a.
func runLog(a *agentProc, run string) string {
	b, _ := os.ReadFile(filepath.Join(a.dataDir, "runs", run+".log"))
	return string(b)
}

// TestCapabilityGrantUsedRevokedAndEndedWithLease runs real processes: the
// fetch plugin requests a grant of net:http:127.0.0.1, calls httpecho with
// its signed token (httpecho verifies it against the cluster's JWKS and
// asks the cluster whether the grant still lives) and records each use; an
// operator revokes it and httpecho refuses the next call with the old
// token; the history shows request, decision, uses and revocation with
// actor and purpose. Then the agent of a new grant is killed, and that
// grant ends with the node's lease.
func TestCapabilityGrantUsedRevokedAndEndedWithLease(t *testing.T) {
	servers, agents := agentCluster(t, "a1")
	s0, a1 := servers[0], agents["a1"]
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(s0.api.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	echo := testcluster.FreeAddr(t)
	_, port, _ := strings.Cut(echo, ":")
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "httpecho.hcl", fmt.Sprintf(`component "echo" {
  plugin = "httpecho"
  config = {
    port           = %s
    require_scope  = "net:http:127.0.0.1"
    ice_addr       = "https://%s"
    ca_file        = %q
    ice_token_file = %q
  }
}`, port, s0.http, s0.creds.CAFile, tokenFile)))
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "fetch.hcl", fmt.Sprintf(`component "fetch" {
  plugin = "fetch"
  capability "net:http:127.0.0.1" {
    ttl    = "10m"
    effect = "external"
  }
  config = {
    url       = "http://%s/report"
    interval  = "200ms"
    purpose   = "read the report"
    after_end = "keep-token"
  }
}`, echo)))

	g := waitGrant(t, s0, "fetch", "a fetch grant used twice", func(g fsm.Grant) bool {
		return g.Status == fsm.GrantGranted && g.Uses >= 2
	})
	if g.Scope != "net:http:127.0.0.1" || g.Effect != fsm.EffectExternal || g.Purpose != "read the report" || g.Node != "a1" {
		t.Fatalf("grant %+v", g)
	}
	if out := cli(t, s0, "grants"); !strings.Contains(out, "GRANTED") || !strings.Contains(out, "fetch") {
		t.Fatalf("ice grants does not show the grant:\n%s", out)
	}
	cli(t, s0, "grants", "revoke", g.ID, "--reason", "e2e: revoked")
	testcluster.WaitFor(t, 30*time.Second, "httpecho refuses the revoked grant's token", func() bool {
		return strings.Contains(runLog(a1, g.Run), "call refused")
	})
	ended := waitGrant(t, s0, "fetch", "the grant revoked", func(x fsm.Grant) bool { return x.ID == g.ID && x.Status == fsm.GrantRevoked })
	if ended.Reason != "e2e: revoked" {
		t.Fatalf("revoked grant's reason %q", ended.Reason)
	}
	hist := cli(t, s0, "history", "fetch") + cli(t, s0, "history", "fetch", "--json")
	for _, want := range []string{"grant.request", "grant.use", "grant.revoke", "read the report", "revoke net:http:127.0.0.1: e2e: revoked", "agent:a1", "operator:"} {
		if !strings.Contains(hist, want) {
			t.Errorf("ice history fetch lacks %q:\n%s", want, hist)
		}
	}

	// A well-behaved fetch asks again; kill its agent and the new grant
	// ends with the lease.
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "fetch2.hcl", fmt.Sprintf(`component "fetch2" {
  plugin = "fetch"
  capability "net:http:*" {
    ttl    = "10m"
    effect = "external"
  }
  config = {
    url      = "http://%s/report"
    interval = "200ms"
  }
}`, echo)))
	live := waitGrant(t, s0, "fetch2", "a fetch2 grant used", func(g fsm.Grant) bool {
		return g.Status == fsm.GrantGranted && g.Uses >= 1
	})
	if err := a1.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone := waitGrant(t, servers[1], "fetch2", "the grant ended with the lease", func(x fsm.Grant) bool {
		return x.ID == live.ID && !x.Status.Live()
	})
	t.Logf("grant %s of the killed agent's run ended %s: %s", gone.ID, gone.Status, gone.Reason)
	if gone.Status != fsm.GrantRevoked || !strings.Contains(gone.Reason, "lost its lease") {
		t.Errorf("the killed agent's grant ended %s (%q), want REVOKED because its node lost its lease", gone.Status, gone.Reason)
	}
}

// TestIrreversibleGrantWaitsForTwoApprovers: payout's irreversible
// capability with approvals = 2 stays PENDING after one approval, is not
// approved twice by the same operator, and is GRANTED by a second; the run
// pays and commits. A denied request reaches the plugin with its reason.
func TestIrreversibleGrantWaitsForTwoApprovers(t *testing.T) {
	servers, _ := agentCluster(t, "a1")
	s0 := servers[0]
	dir := t.TempDir()
	root := s0.client()
	if _, err := root.ApplyPolicy(tctx(t, 5*time.Second), "approver", &api.ACLPolicyRequest{
		Rules: `capability "payments:" { policy = "write" }
component "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	approver := func(name string) []string {
		tok, err := root.CreateToken(tctx(t, 5*time.Second), &api.ACLTokenRequest{Name: name, Policies: []string{"approver"}})
		if err != nil {
			t.Fatal(err)
		}
		return []string{"ICE_TOKEN=" + tok.SecretID}
	}
	alice, bob := approver("alice"), approver("bob")
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "payout.hcl", `component "payout" {
  plugin = "payout"
  capability "payments:charge" {
    ttl       = "1m"
    effect    = "irreversible"
    approvals = 2
  }
  config = {
    amount = "42"
  }
}`))
	g := waitGrant(t, s0, "payout", "a pending payout grant", func(g fsm.Grant) bool { return g.Status == fsm.GrantPending })
	if out := cli(t, s0, "grants", "--pending"); !strings.Contains(out, "PENDING") {
		t.Fatalf("ice grants --pending:\n%s", out)
	}
	cliAs(t, s0, alice, "grants", "approve", g.ID, "--reason", "alice ok")
	if out, err := cliAsErr(t, s0, alice, "grants", "approve", g.ID, "--reason", "alice again"); err == nil {
		t.Fatalf("a second approval by the same operator was accepted:\n%s", out)
	}
	if got := waitGrant(t, s0, "payout", "one approval", func(x fsm.Grant) bool { return x.ID == g.ID }); got.Status != fsm.GrantPending || len(got.Approvals) != 1 {
		t.Fatalf("after one approval: %s with %d approvals", got.Status, len(got.Approvals))
	}
	// The second approval comes later than the plugin's agent watchdog
	// (3/4 of leaseTTL): the agent keeps the plugin fed while its Execute
	// waits, so the run is still there to pay.
	testcluster.WaitFor(t, 20*time.Second, "the request pending longer than the plugin's agent timeout", func() bool {
		return time.Since(time.Unix(0, g.CreateTime)) > leaseTTL
	})
	cliAs(t, s0, bob, "grants", "approve", g.ID, "--reason", "bob ok")
	testcluster.WaitFor(t, 30*time.Second, "payout committed", func() bool {
		runs := runsOf(t, s0, "payout")
		return len(runs) > 0 && runs[0].State == fsm.StateTerminated && strings.Contains(runs[0].Output, "paid")
	})
	used := waitGrant(t, s0, "payout", "the payout grant used and released", func(x fsm.Grant) bool {
		return x.ID == g.ID && x.Uses == 1 && x.Status == fsm.GrantReleased
	})
	t.Logf("payout grant %s: %d uses, %s", used.ID, used.Uses, used.Status)

	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "payout2.hcl", `component "payout2" {
  plugin = "payout"
  capability "payments:charge" {
    ttl    = "1m"
    effect = "irreversible"
  }
  config = {
    amount = "1000000"
  }
}`))
	g2 := waitGrant(t, s0, "payout2", "a pending payout2 grant", func(g fsm.Grant) bool { return g.Status == fsm.GrantPending })
	cliAs(t, s0, alice, "grants", "deny", g2.ID, "--reason", "amount too large")
	testcluster.WaitFor(t, 30*time.Second, "payout2's run failed with the denial's reason", func() bool {
		for _, r := range runsOf(t, s0, "payout2") {
			if strings.Contains(r.Reason, "amount too large") {
				return true
			}
		}
		return false
	})
}

func cliAs(t *testing.T, s *serverProc, env []string, args ...string) string {
	t.Helper()
	out, err := cliAsErr(t, s, env, args...)
	if err != nil {
		t.Fatalf("ice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cliAsErr(t *testing.T, s *serverProc, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := cliCommand(s, args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
