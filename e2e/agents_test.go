package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Lease timings of the agent tests: an agent fences itself after leaseTTL
// without renewal; the leader declares its node down after leaseTTL plus
// leaseMargin; plugins stop by themselves after 3/4 of leaseTTL without a
// call from their agent.
const (
	leaseTTL    = 3 * time.Second
	leaseMargin = 3 * time.Second
)

type agentProc struct {
	id        string
	dataDir   string
	pluginDir string
	proc      *proctest.Process
}

// startAgent starts an `ice agent` joined to the servers, with its own copy
// of the example plugins and an agent certificate naming its node id.
func startAgent(t *testing.T, id string, servers []*serverProc, extra ...string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	a := &agentProc{id: id, dataDir: filepath.Join(dir, "data"), pluginDir: filepath.Join(dir, "plugins")}
	copyDir(t, pluginDir, a.pluginDir)
	args := []string{"agent", "--node-id", id, "--data-dir", a.dataDir, "--gossip", testcluster.FreeAddr(t),
		"--plugin-dir", a.pluginDir, "--label", "name=" + id, "--log-level", "debug"}
	for _, s := range servers {
		args = append(args, "--join", s.gossip)
	}
	args = append(args, secureFlags(t, servers[0].creds, tlsutil.RoleAgent, id)...)
	args = append(args, extra...)
	a.proc = startIce(t, dir, "agent-"+id, args...)
	return a
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

// agentCluster is three servers and the named agents.
func agentCluster(t *testing.T, agents ...string) ([]*serverProc, map[string]*agentProc) {
	t.Helper()
	servers := startServers(t, 3, "--lease-ttl", leaseTTL.String(), "--lease-margin", leaseMargin.String())
	waitLeader(t, servers, 20*time.Second)
	out := map[string]*agentProc{}
	for _, id := range agents {
		out[id] = startAgent(t, id, servers)
	}
	waitNodesReady(t, servers[0], agents...)
	return servers, out
}

func waitNodesReady(t *testing.T, s *serverProc, ids ...string) {
	t.Helper()
	testcluster.WaitFor(t, 20*time.Second, fmt.Sprintf("nodes %v ready", ids), func() bool {
		nodes, err := s.client().Nodes(tctx(t, 2*time.Second))
		if err != nil {
			return false
		}
		ready := map[string]bool{}
		for _, n := range nodes {
			ready[n.ID] = n.Status == fsm.NodeReady
		}
		for _, id := range ids {
			if !ready[id] {
				return false
			}
		}
		return true
	})
}

func deploy(t *testing.T, s *serverProc, spec *api.ComponentSpec) {
	t.Helper()
	if _, err := s.client().PutComponent(tctx(t, 10*time.Second), spec, nil); err != nil {
		t.Fatalf("deploy %s: %v", spec.Name, err)
	}
}

func runsOf(t *testing.T, s *serverProc, component string) []fsm.Run {
	t.Helper()
	runs, _, err := s.client().Runs(tctx(t, 5*time.Second), component, nil)
	if err != nil {
		t.Logf("list runs of %s: %v", component, err)
		return nil
	}
	return runs
}

func live(runs []fsm.Run, state fsm.RunState) []fsm.Run {
	var out []fsm.Run
	for _, r := range runs {
		if r.State == state {
			out = append(out, r)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// pluginPIDs reads the plugin pids a stopped agent persisted, by run id.
func pluginPIDs(t *testing.T, a *agentProc) map[string]int {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(a.dataDir, "agent.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open agent state of %s: %v", a.id, err)
	}
	defer db.Close()
	out := map[string]int{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("runs")).ForEach(func(k, v []byte) error {
			var r struct {
				Attachment struct {
					Pid int `json:"pid"`
				} `json:"attachment"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out[string(k)] = r.Attachment.Pid
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read agent state of %s: %v", a.id, err)
	}
	return out
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestAgentsRunComponents drives real agents and plugin processes: runs
// spread over two agents, an agent restart that keeps plugin processes and
// run ids, SIGKILL of an agent and the replacement of its runs after the
// lease, a finite run committed with its output, a crash-looping plugin
// aborted with its reason and backed off until the component fails, and a
// tampered plugin binary that never executes.
func TestAgentsRunComponents(t *testing.T) {
	servers, agents := agentCluster(t, "a", "b")
	s := servers[0]
	ticks := filepath.Join(t.TempDir(), "ticks")
	deploy(t, s, &api.ComponentSpec{Name: "ticker", Plugin: fsm.PluginRef{Name: "ticker"}, Count: ptr(2),
		Config: map[string]any{"file": ticks, "interval": "100ms"}})

	var executing []fsm.Run
	testcluster.WaitFor(t, 20*time.Second, "2 ticker runs EXECUTING on both agents", func() bool {
		executing = live(runsOf(t, s, "ticker"), fsm.StateExecuting)
		return len(executing) == 2 && executing[0].Node != executing[1].Node
	})

	// A graceful restart of agent b keeps its plugin running and the run.
	agents["b"].proc.Signal(syscall.SIGTERM)
	testcluster.WaitFor(t, 10*time.Second, "agent b to exit", func() bool { return !agents["b"].proc.Running() })
	pids := pluginPIDs(t, agents["b"])
	if len(pids) != 1 {
		t.Fatalf("agent b persisted %d plugins, want 1: %v", len(pids), pids)
	}
	restart(t, agents["b"].proc)
	for id, pid := range pids {
		testcluster.WaitFor(t, 10*time.Second, "agent b back with its run still EXECUTING", func() bool {
			r, err := s.client().Run(tctx(t, 2*time.Second), id)
			return err == nil && r.State == fsm.StateExecuting && agentLog(t, agents["b"], "reattached plugin")
		})
		if !alive(pid) {
			t.Fatalf("plugin pid %d of run %s did not survive the agent restart", pid, id)
		}
	}
	if got := live(runsOf(t, s, "ticker"), fsm.StateExecuting); len(got) != 2 || !sameIDs(got, executing) {
		t.Fatalf("after agent restart runs are %v, want the same two EXECUTING runs %v", ids(got), ids(executing))
	}

	// SIGKILL of agent a: after the lease its run is replaced on b.
	var onA fsm.Run
	for _, r := range executing {
		if r.Node == "a" {
			onA = r
		}
	}
	if err := agents["a"].proc.Kill(); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, "the run of killed agent a replaced on b", func() bool {
		runs := runsOf(t, s, "ticker")
		ex := live(runs, fsm.StateExecuting)
		old, _ := find(runs, onA.ID)
		return len(ex) == 2 && ex[0].Node == "b" && ex[1].Node == "b" && old.State == fsm.StateTerminated
	})
	old, _ := find(runsOf(t, s, "ticker"), onA.ID)
	if !strings.Contains(old.Reason, "lost its lease") || old.Outcome != fsm.StateTerminatedByRuntime {
		t.Fatalf("run of the killed agent ended %s with %q, want TERMINATED_BY_RUNTIME for a lost lease", old.Outcome, old.Reason)
	}

	// A finite run commits with its output.
	deploy(t, s, &api.ComponentSpec{Name: "batch", Plugin: fsm.PluginRef{Name: "batch"}, Count: ptr(1),
		Config: map[string]any{"input": "hello"}, OutputPattern: "^sha256:[0-9a-f]{64}$"})
	testcluster.WaitFor(t, 20*time.Second, "the batch run TERMINATED after COMMITTED", func() bool {
		runs := runsOf(t, s, "batch")
		return len(runs) == 1 && runs[0].State == fsm.StateTerminated
	})
	b := runsOf(t, s, "batch")[0]
	if b.Outcome != fsm.StateCommitted || b.Output != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("batch run ended %s with output %q", b.Outcome, b.Output)
	}

	// A crash-looping plugin: ABORTED with its reason, backed off, then the
	// component fails.
	deploy(t, s, &api.ComponentSpec{Name: "flaky", Plugin: fsm.PluginRef{Name: "flaky"}, Count: ptr(1),
		Config:  map[string]any{"exit_after": "300ms"},
		Restart: &api.RestartPolicySpec{Attempts: ptr(2), Delay: "200ms", MaxDelay: "1s"}})
	testcluster.WaitFor(t, 40*time.Second, "component flaky failed", func() bool {
		c, err := s.client().Component(tctx(t, 2*time.Second), "flaky")
		return err == nil && c.Status == fsm.ComponentFailed
	})
	flaky := runsOf(t, s, "flaky")
	if len(flaky) != 3 {
		t.Fatalf("flaky has %d runs, want 3 (first try and 2 restarts)", len(flaky))
	}
	for i, r := range flaky {
		// "plugin exited", or "failed start: plugin exited" when the
		// plugin's 300ms ran out before its first health check.
		if r.Outcome != fsm.StateAborted || !strings.Contains(r.Reason, "plugin exited") || r.Attempt != i {
			t.Fatalf("flaky run %d: outcome %s reason %q attempt %d", i, r.Outcome, r.Reason, r.Attempt)
		}
		if i > 0 && r.NotBefore <= flaky[i-1].ModifyTime {
			t.Fatalf("flaky run %d not backed off: not_before %d, previous ended %d", i, r.NotBefore, flaky[i-1].ModifyTime)
		}
	}

	// A plugin binary changed on disk is picked up by the agent's rescan;
	// a spec that pins the old binary's sha256 never executes the new one:
	// its run either waits unplaced (the rescan came first) or is ABORTED
	// saying the plugin changed (the launch found it).
	var pinned string
	nodes, err := s.client().Nodes(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for _, p := range n.Plugins {
			if n.ID == "b" && p.Name == "httpecho" {
				pinned = p.SHA256
			}
		}
	}
	if pinned == "" {
		t.Fatal("node b lists no httpecho")
	}
	copyFile(t, filepath.Join(pluginDir, "flaky"), filepath.Join(agents["b"].pluginDir, "httpecho"))
	deploy(t, s, &api.ComponentSpec{Name: "web", Plugin: fsm.PluginRef{Name: "httpecho", SHA256: pinned}, Count: ptr(1),
		Config: map[string]any{"port": 0}, Restart: &api.RestartPolicySpec{Attempts: ptr(0)}})
	var web fsm.Run
	testcluster.WaitFor(t, 30*time.Second, "the pinned run unplaced or ABORTED for the changed plugin", func() bool {
		runs := runsOf(t, s, "web")
		if len(runs) == 0 {
			return false
		}
		web = runs[0]
		switch {
		case web.State == fsm.StateCreated && strings.Contains(web.Reason, "no ready node has plugin httpecho"):
			return true
		case web.State == fsm.StateTerminated:
			return true
		}
		return false
	})
	if web.State == fsm.StateTerminated && (web.Outcome != fsm.StateAborted || !strings.Contains(web.Reason, "plugin changed on disk; the catalogue was refreshed")) {
		t.Fatalf("pinned run of the changed plugin ended %s with %q, want ABORTED saying the plugin changed on disk", web.Outcome, web.Reason)
	}
	t.Logf("pinned run of the changed plugin: %s %q", web.State, web.Reason)
	events, err := s.client().Events(tctx(t, 5*time.Second), 0, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Subject == web.ID && strings.Contains(string(e.Payload), `"to":"EXECUTING"`) {
			t.Fatalf("tampered plugin reached EXECUTING: %s", e.Payload)
		}
	}
}

func agentLog(t *testing.T, a *agentProc, substr string) bool {
	b, err := os.ReadFile(a.proc.LogPath())
	return err == nil && strings.Contains(string(b), substr)
}

func find(runs []fsm.Run, id string) (fsm.Run, bool) {
	for _, r := range runs {
		if r.ID == id {
			return r, true
		}
	}
	return fsm.Run{}, false
}

func ids(runs []fsm.Run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func sameIDs(a, b []fsm.Run) bool {
	if len(a) != len(b) {
		return false
	}
	for _, r := range a {
		if _, ok := find(b, r.ID); !ok {
			return false
		}
	}
	return true
}
