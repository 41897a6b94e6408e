package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Tests of the secure configuration with real processes: what an agent's
// certificate may not do, who may run operator commands, and who the log
// names as the actor of a write. The Raft transport and server identity
// are in security_raft_test.go.

// agentClient returns an API client of server s that presents agent
// node's certificate and no token: what a compromised agent holds.
func agentClient(t *testing.T, s *serverProc, node string) *api.Client {
	t.Helper()
	cert, key, err := s.creds.Cert(tlsutil.RoleAgent, node)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClientConfig(api.Config{Address: "https://" + s.http, CACert: s.creds.CAFile, ClientCert: cert, ClientKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenClient returns an API client of server s with the token secret.
func tokenClient(t *testing.T, s *serverProc, secret string) *api.Client {
	t.Helper()
	cfg := s.creds.ClientConfig(s.http)
	cfg.Token = secret
	c, err := api.NewClientConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// want403 fails the test unless err is a 403 answer.
func want403(t *testing.T, what string, err error) {
	t.Helper()
	if !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("%s: got %v, want 403", what, err)
	}
	t.Logf("%s: refused: %v", what, err)
}

// nodeOf reads one node through the management client.
func nodeOf(t *testing.T, s *serverProc, id string) fsm.Node {
	t.Helper()
	nodes, err := s.client().Nodes(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %s not registered", id)
	return fsm.Node{}
}

// TestAgentCertificateSpeaksOnlyForItsNode uses agent a's certificate, as a
// compromised agent would, to report transitions for agent b's run, to
// register as b, to renew b's lease and to make b leave, through the leader
// and through a follower (which vouches for the agent it saw): each is
// refused with 403 and b's run and node are unchanged. Then b is killed:
// heartbeats forged for it do not keep its lease, and its run is replaced
// once the lease runs out.
func TestAgentCertificateSpeaksOnlyForItsNode(t *testing.T) {
	servers, agents := agentCluster(t, "a", "b")
	leader := waitLeader(t, servers, 20*time.Second)
	var follower *serverProc
	for _, s := range servers {
		if s != leader {
			follower = s
			break
		}
	}
	deploy(t, leader, &api.ComponentSpec{Name: "ticker", Plugin: fsm.PluginRef{Name: "ticker"}, Count: ptr(2),
		Config: map[string]any{"file": filepath.Join(t.TempDir(), "ticks"), "interval": "100ms"}})
	var runB fsm.Run
	testcluster.WaitFor(t, 30*time.Second, "one EXECUTING ticker run on each agent", func() bool {
		ex := live(runsOf(t, leader, "ticker"), fsm.StateExecuting)
		if len(ex) != 2 || ex[0].Node == ex[1].Node {
			return false
		}
		for _, r := range ex {
			if r.Node == "b" {
				runB = r
			}
		}
		return true
	})
	nodeB := nodeOf(t, leader, "b")

	for _, s := range []*serverProc{leader, follower} {
		asA := agentClient(t, s, "a")
		via := " through " + s.id
		// The certificate is a's and works for a: the refusals below are
		// about whom it speaks for.
		if _, err := asA.Heartbeat(tctx(t, 5*time.Second), "a"); err != nil {
			t.Fatalf("agent a's own heartbeat%s: %v", via, err)
		}
		_, err := asA.Report(tctx(t, 5*time.Second), "b", []fsm.Transition{
			{Run: runB.ID, To: fsm.StateValidating, Epoch: runB.Epoch, Output: "forged"},
		})
		want403(t, "a reports b's run VALIDATING"+via, err)
		_, err = asA.Report(tctx(t, 5*time.Second), "b", []fsm.Transition{
			{Run: runB.ID, To: fsm.StateAborted, Epoch: runB.Epoch, Reason: "forged crash"},
		})
		want403(t, "a reports b's run ABORTED"+via, err)
		_, err = asA.Register(tctx(t, 5*time.Second), fsm.Node{ID: "b", Address: "192.0.2.66",
			Labels: map[string]string{"name": "forged"}, Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("0", 64)}}})
		want403(t, "a registers as b"+via, err)
		_, err = asA.Heartbeat(tctx(t, 5*time.Second), "b")
		want403(t, "a heartbeats for b"+via, err)
		_, err = asA.HeartbeatMany(tctx(t, 5*time.Second), []string{"a", "b"})
		want403(t, "a heartbeats for a and b"+via, err)
		err = asA.Leave(tctx(t, 5*time.Second), "b")
		want403(t, "a sends leave for b"+via, err)
		want403(t, "a claims b in "+api.HeaderForwardedAgent+via, forwardedAgentHeartbeat(t, s, "a", "b"))

		// Under its own name, a may not move b's run either: the state
		// machine's fencing refuses a transition of a run a does not hold.
		resp, err := asA.Report(tctx(t, 5*time.Second), "a", []fsm.Transition{
			{Run: runB.ID, To: fsm.StateAborted, Epoch: runB.Epoch, Reason: "forged crash"},
		})
		if err == nil && (len(resp.Errors) != 1 || resp.Errors[0] == "") {
			t.Fatalf("a reported b's run as its own%s and it was accepted: %+v", via, resp)
		}
		t.Logf("a reports b's run under its own name%s: refused: %v %v", via, err, resp.Errors)
	}

	after, err := leader.client().Run(tctx(t, 5*time.Second), runB.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != runB.State || after.Epoch != runB.Epoch || after.Node != runB.Node || after.ModifyIndex != runB.ModifyIndex ||
		after.Output != runB.Output || after.Reason != runB.Reason {
		t.Fatalf("b's run changed after forged requests:\nbefore %+v\nafter  %+v", runB, *after)
	}
	if got := nodeOf(t, leader, "b"); got.Status != nodeB.Status || got.Address != nodeB.Address ||
		!reflect.DeepEqual(got.Labels, nodeB.Labels) || !reflect.DeepEqual(got.Plugins, nodeB.Plugins) || got.ModifyIndex != nodeB.ModifyIndex {
		t.Fatalf("node b changed after forged requests:\nbefore %+v\nafter  %+v", nodeB, got)
	}

	// Agent b dies; a keeps forging its heartbeats. The lease runs out
	// all the same and b's run is replaced on a.
	if err := agents["b"].proc.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var forged sync.WaitGroup
	var accepted []error
	var mu sync.Mutex
	asA := agentClient(t, follower, "a")
	forged.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := asA.Heartbeat(rctx, "b")
			cancel()
			if ctx.Err() != nil {
				return
			}
			if !api.IsStatus(err, http.StatusForbidden) {
				mu.Lock()
				accepted = append(accepted, err)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	testcluster.WaitFor(t, 40*time.Second, "b's run ended for a lost lease and its slot EXECUTING on a", func() bool {
		runs := runsOf(t, leader, "ticker")
		old, _ := find(runs, runB.ID)
		for _, r := range live(runs, fsm.StateExecuting) {
			if r.Slot == runB.Slot && r.Node == "a" {
				return old.State == fsm.StateTerminated
			}
		}
		return false
	})
	stop()
	forged.Wait()
	if len(accepted) > 0 {
		t.Fatalf("%d forged heartbeats for b were not refused with 403: first %v", len(accepted), accepted[0])
	}
	old, _ := find(runsOf(t, leader, "ticker"), runB.ID)
	if old.Outcome != fsm.StateTerminatedByRuntime || !strings.Contains(old.Reason, "lost its lease") {
		t.Fatalf("b's run ended %s with %q, want TERMINATED_BY_RUNTIME for a lost lease", old.Outcome, old.Reason)
	}
}

// forwardedAgentHeartbeat sends a heartbeat for node claim with agent
// node's certificate and an X-Ice-Forwarded-Agent header naming claim:
// the header only counts when a server's certificate sends it.
func forwardedAgentHeartbeat(t *testing.T, s *serverProc, node, claim string) error {
	t.Helper()
	cert, key, err := s.creds.Cert(tlsutil.RoleAgent, node)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := api.ClientTLS(s.creds.CAFile, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "https://"+s.http+"/v1/agent/heartbeat", strings.NewReader(`{"node":"`+claim+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderForwardedAgent, claim)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &api.APIError{Status: resp.StatusCode, Message: "heartbeat with a forged forwarding header"}
	}
	return nil
}

// TestOperatorCommandsNeedOperatorWrite: with a read-only token (it reads
// components, nodes and the Raft peers) transfer-leader, remove-peer and
// snapshot restore are refused with 403, through the API and the CLI, and
// nothing changes; without a token too; a token whose policy grants
// operator write transfers the leadership.
func TestOperatorCommandsNeedOperatorWrite(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 20*time.Second)
	mgmt := leader.client()
	ctx := tctx(t, 2*time.Minute)
	for name, rules := range map[string]string{
		"read-only": "component \"\" { policy = \"read\" }\nnode \"\" { policy = \"read\" }\noperator { policy = \"read\" }\n",
		"ops":       "operator { policy = \"write\" }\n",
	} {
		if _, err := mgmt.ApplyPolicy(ctx, name, &api.ACLPolicyRequest{Rules: rules}); err != nil {
			t.Fatalf("apply policy %s: %v", name, err)
		}
	}
	viewerTok, err := mgmt.CreateToken(ctx, &api.ACLTokenRequest{Name: "viewer", Policies: []string{"read-only"}})
	if err != nil {
		t.Fatal(err)
	}
	opsTok, err := mgmt.CreateToken(ctx, &api.ACLTokenRequest{Name: "ops", Policies: []string{"read-only", "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := mgmt.SaveSnapshot(ctx, &archive); err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	// Written after the snapshot: a restore would remove it.
	deploy(t, leader, &api.ComponentSpec{Name: "after-snapshot", Plugin: fsm.PluginRef{Name: "ticker"}, Count: ptr(0)})
	archivePath := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(archivePath, archive.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var follower *serverProc
	for _, s := range servers {
		if s != leader {
			follower = s
		}
	}

	for _, s := range []*serverProc{leader, follower} {
		viewer := tokenClient(t, s, viewerTok.SecretID)
		anon := tokenClient(t, s, "")
		via := " through " + s.id
		if _, err := viewer.RaftPeers(ctx); err != nil {
			t.Fatalf("read-only token lists the raft peers%s: %v", via, err)
		}
		if _, err := viewer.Components(ctx); err != nil {
			t.Fatalf("read-only token lists components%s: %v", via, err)
		}
		for _, c := range []struct {
			who string
			c   *api.Client
		}{{"read-only token", viewer}, {"no token", anon}} {
			_, err := c.c.TransferLeader(ctx)
			want403(t, c.who+": transfer-leader"+via, err)
			want403(t, c.who+": remove-peer "+follower.id+via, c.c.RemovePeer(ctx, follower.id))
			_, err = c.c.RestoreSnapshot(ctx, bytes.NewReader(archive.Bytes()))
			want403(t, c.who+": snapshot restore"+via, err)
		}
	}
	for _, args := range [][]string{
		{"operator", "raft", "transfer-leader"},
		{"operator", "raft", "remove-peer", follower.id},
		{"operator", "snapshot", "restore", archivePath},
	} {
		cmd := cliCommand(leader, args...)
		cmd.Env = append(cmd.Env, "ICE_TOKEN="+viewerTok.SecretID)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "403") {
			t.Fatalf("ice %s with a read-only token: %v, want a 403 failure:\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("ice %s with a read-only token: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}

	// Nothing changed: the same leader, three voters, the component
	// written after the snapshot still there.
	peers, err := mgmt.RaftPeers(ctx)
	if err != nil || len(peers) != 3 {
		t.Fatalf("raft peers after the refused commands: %v %v", peers, err)
	}
	if st, err := mgmt.Status(ctx); err != nil || st.Leader != leader.id {
		t.Fatalf("leader after refused transfer-leader: %+v %v, want %s", st, err, leader.id)
	}
	if _, err := mgmt.Component(ctx, "after-snapshot"); err != nil {
		t.Fatalf("component written after the snapshot: %v (was the state restored?)", err)
	}

	// An operator-write token may.
	newLeader, err := tokenClient(t, leader, opsTok.SecretID).TransferLeader(ctx)
	if err != nil {
		t.Fatalf("transfer-leader with an operator-write token: %v", err)
	}
	if newLeader == leader.id {
		t.Fatalf("transfer-leader answered the old leader %s", newLeader)
	}
	if got := waitLeader(t, servers, 20*time.Second); got == leader {
		t.Fatalf("leader still %s after transfer-leader", leader.id)
	}
}

// TestEventActorIsTheTokensPrincipal writes with X-Ice-Operator naming
// someone else (mallory, the runtime, an agent): the event log names the
// token's principal as the actor, never the header.
func TestEventActorIsTheTokensPrincipal(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 20*time.Second)
	ctx := tctx(t, time.Minute)
	mgmt := leader.client()
	if _, err := mgmt.ApplyPolicy(ctx, "writer", &api.ACLPolicyRequest{Rules: "component \"audited\" { policy = \"write\" }\n"}); err != nil {
		t.Fatal(err)
	}
	alice, err := mgmt.CreateToken(ctx, &api.ACLTokenRequest{Name: "alice", Policies: []string{"writer"}})
	if err != nil {
		t.Fatal(err)
	}
	var follower *serverProc
	for _, s := range servers {
		if s != leader {
			follower = s
		}
	}
	asAlice := tokenClient(t, follower, alice.SecretID)
	want := map[uint64]string{} // index of a write → actor it must carry
	for i, w := range []struct {
		c        *api.Client
		operator string
		actor    string
	}{
		{follower.client(), "mallory", "operator:bootstrap"},
		{asAlice, "mallory", "operator:alice"},
		{asAlice, "runtime", "operator:alice"},
		{asAlice, "agent:a", "operator:alice"},
		{mgmt, "alice", "operator:bootstrap"},
	} {
		w.c.Operator = w.operator
		res, err := w.c.PutComponent(ctx, &api.ComponentSpec{Name: "audited", Plugin: fsm.PluginRef{Name: "ticker"}, Count: ptr(0),
			Config: map[string]any{"v": i}}, nil)
		if err != nil {
			t.Fatalf("write %d (X-Ice-Operator %s): %v", i, w.operator, err)
		}
		want[res.Index] = w.actor
	}
	res, err := asAlice.StopComponent(ctx, "audited", nil)
	if err != nil {
		t.Fatal(err)
	}
	want[res.Index] = "operator:alice"

	events, err := mgmt.Events(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, e := range events {
		if strings.Contains(e.Actor, "mallory") {
			t.Fatalf("event %d names %q as its actor", e.Seq, e.Actor)
		}
		actor, ok := want[e.Index]
		if !ok || e.Subject != "audited" {
			continue
		}
		seen[e.Index] = true
		if e.Actor != actor {
			t.Fatalf("event %d (%s of %s at index %d) has actor %q, want %q", e.Seq, e.Type, e.Subject, e.Index, e.Actor, actor)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("events found for %d of the %d writes (%v)", len(seen), len(want), want)
	}
	out, err := runCLI(t, leader, "history", "audited")
	if err != nil || !strings.Contains(out, "operator:alice") || !strings.Contains(out, "operator:bootstrap") || strings.Contains(out, "mallory") {
		t.Fatalf("ice history audited: %v\n%s", err, out)
	}
}

// TestInsecureStartNeedsTheFlag: `ice server` and `ice agent` without TLS
// material and a gossip key refuse to start unless --insecure is given.
// A server started with --insecure says so in its status (plaintext on
// purpose: that is what is tested).
func TestInsecureStartNeedsTheFlag(t *testing.T) {
	dir := t.TempDir()
	creds := credsOf(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"server", []string{"server", "--node-id", "s1", "--data-dir", filepath.Join(dir, "s1"),
			"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t)}},
		{"server with only a CA", []string{"server", "--node-id", "s1", "--data-dir", filepath.Join(dir, "s1"), "--tls-ca", creds.CAFile,
			"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t)}},
		{"agent", []string{"agent", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"),
			"--gossip", testcluster.FreeAddr(t), "--join", testcluster.FreeAddr(t)}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, iceBin, c.args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("ice %s without TLS material: %v, want a non-zero exit\n%s", c.name, err, out)
		}
		if !strings.Contains(string(out), "ICE is secure by default") || !strings.Contains(string(out), "--insecure") {
			t.Fatalf("ice %s without TLS material: the refusal does not say why:\n%s", c.name, out)
		}
		t.Logf("ice %s without TLS material: exit %d: %s", c.name, ee.ExitCode(), lastLine(string(out)))
	}

	httpAddr := testcluster.FreeAddr(t)
	p := startIce(t, dir, "insecure", "server", "--insecure", "--node-id", "s1", "--data-dir", filepath.Join(dir, "insecure"),
		"--http", httpAddr, "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t), "--bootstrap-expect", "1")
	var st *api.Status
	testcluster.WaitFor(t, 20*time.Second, "the insecure server to answer plain HTTP", func() bool {
		var err error
		st, err = api.NewClient("http://" + httpAddr).Status(tctx(t, time.Second))
		return err == nil
	})
	if st.Secure || st.ACLs {
		t.Fatalf("insecure server's status says secure=%v acls=%v", st.Secure, st.ACLs)
	}
	if !strings.Contains(p.LogTail(64<<10), "INSECURE") {
		t.Fatalf("insecure server logged no warning:\n%s", p.LogTail(4000))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
