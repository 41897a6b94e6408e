package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestRunLog reads a ticker run's plugin log with `ice logs` on real
// processes: three secure servers and two `ice agent`s, n1 with its log
// listener on by default (--http unset), n2 with --http off. The log is
// read through the leader and, with --stale, through a follower's own
// proxy; a run on n2 is "node n2 serves no logs"; a token that may not read
// the component is refused; an unknown run is an error.
func TestRunLog(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 30*time.Second)
	startAgent(t, "n1", servers)
	startAgent(t, "n2", servers, "--http", "off")
	waitNodesReady(t, servers[0], "n1", "n2")
	dir := t.TempDir()

	deploy := func(name, node string) fsm.Run {
		t.Helper()
		spec := filepath.Join(dir, name+".hcl")
		hcl := fmt.Sprintf(`component %q {
  plugin = "ticker"
  count  = 1
  config = { file = %q, interval = "200ms" }
  constraint {
    label = "name"
    value = %q
  }
}
`, name, filepath.Join(dir, name+".ticks"), node)
		if err := os.WriteFile(spec, []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, leader, "deploy", "-f", spec); err != nil {
			t.Fatalf("ice deploy -f %s: %v\n%s", spec, err, out)
		}
		var run fsm.Run
		testcluster.WaitFor(t, 60*time.Second, name+"'s run EXECUTING on "+node, func() bool {
			runs, _, err := leader.client().Runs(tctx(t, 2*time.Second), name, nil)
			for _, r := range runs {
				if err == nil && r.State == fsm.StateExecuting && r.Node == node {
					run = r
					return true
				}
			}
			return false
		})
		return run
	}
	run := deploy("ticker", "n1")

	// The ticker plugin logs "ticking" with its file and interval once it
	// started (plugins/examples/ticker): wait for the line to reach the log.
	tickFile := filepath.Join(dir, "ticker.ticks")
	var out string
	testcluster.WaitFor(t, 30*time.Second, "ice logs shows the ticker's \"ticking\" line", func() bool {
		var err error
		out, err = runCLI(t, leader, "logs", run.ID)
		return err == nil && strings.Contains(out, "ticking") && strings.Contains(out, tickFile)
	})
	t.Logf("ice logs %s:\n%s", run.ID, tail(out, 600))

	// A prefix of the id, a tail, and a follower's own proxy (--stale)
	// answer the same log.
	for _, s := range servers {
		if s.id == leader.id {
			continue
		}
		got, err := runCLI(t, s, "logs", "--stale", run.ID[:8])
		if err != nil || !strings.Contains(got, "ticking") {
			t.Errorf("ice logs --stale %s on follower %s: %v\n%s", run.ID[:8], s.id, err, got)
		}
		got, err = runCLI(t, s, "logs", run.ID)
		if err != nil || !strings.Contains(got, "ticking") {
			t.Errorf("ice logs %s on follower %s (forwarded to the leader): %v\n%s", run.ID, s.id, err, got)
		}
	}
	if got, err := runCLI(t, leader, "logs", "--tail", "20", run.ID); err != nil || len(got) != 20 {
		t.Errorf("ice logs --tail 20: %v, %d bytes %q", err, len(got), got)
	}
	chunk, err := leader.client().RunLog(tctx(t, 10*time.Second), run.ID, api.LogRange{Offset: 0, Limit: 10})
	if err != nil || len(chunk.Data) != 10 || chunk.Offset != 0 || chunk.Size < int64(len(out)) {
		t.Errorf("RunLog(offset 0, limit 10) = %+v, %v; want 10 bytes of a log of at least %d", chunk, err, len(out))
	}

	// A run on the node whose agent serves no logs.
	quiet := deploy("quiet", "n2")
	if got, err := runCLI(t, leader, "logs", quiet.ID); err == nil || !strings.Contains(got, "node n2 serves no logs") {
		t.Errorf("ice logs of a run on n2 (--http off): %v\n%s; want \"node n2 serves no logs\"", err, got)
	}
	if _, err := leader.client().RunLog(tctx(t, 10*time.Second), quiet.ID, api.LogRange{}); !api.IsStatus(err, http.StatusNotFound) {
		t.Errorf("GET /v1/runs/%s/log on n2: %v, want 404", quiet.ID, err)
	}

	// A token that may read only "quiet" may not read ticker's log.
	root := leader.client()
	if _, err := root.ApplyPolicy(tctx(t, 10*time.Second), "quiet-only", &api.ACLPolicyRequest{Rules: `component "quiet" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(tctx(t, 10*time.Second), &api.ACLTokenRequest{Name: "quiet-reader", Policies: []string{"quiet-only"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := cliCommand(leader, "logs", run.ID)
	cmd.Env = append(cmd.Env, "ICE_TOKEN="+tok.SecretID)
	refused, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "may not read component \"ticker\"") {
		t.Errorf("ice logs with a token that may not read ticker: %v\n%s", err, refused)
	}
	if strings.Contains(string(refused), "ticking") {
		t.Errorf("the refused token was shown the log:\n%s", refused)
	}

	if got, err := runCLI(t, leader, "logs", "ffffffff-ffff"); err == nil || !strings.Contains(got, "no run") {
		t.Errorf("ice logs of an unknown run: %v\n%s", err, got)
	}

	// --follow ends by itself once the run is TERMINATED, with its outcome.
	follow := cliCommand(leader, "logs", "-f", "--poll-interval", "200ms", run.ID)
	var followed bytes.Buffer
	follow.Stdout, follow.Stderr = &followed, &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	if out, err := runCLI(t, leader, "stop", "ticker"); err != nil {
		t.Fatalf("ice stop ticker: %v\n%s", err, out)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(followed.String(), "ticking") || !strings.Contains(followed.String(), "ice logs: run "+run.ID+" ended TERMINATED_BY_RUNTIME") {
			t.Errorf("ice logs -f after ice stop: %v\n%s", err, tail(followed.String(), 600))
		}
	case <-time.After(60 * time.Second):
		_ = follow.Process.Kill()
		<-done
		t.Errorf("ice logs -f still following 60s after ice stop ticker:\n%s", tail(followed.String(), 600))
	}
}
