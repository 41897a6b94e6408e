package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestMain removes the plugins the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// builtDir holds testdata/vplugin built once per version for this
// package's tests.
var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// vplugin returns the path of testdata/vplugin built with version.
func vplugin(t *testing.T, version string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[version]; ok {
		return p
	}
	if builtDir == "" {
		dir, err := os.MkdirTemp("", "ice-agent-test-")
		if err != nil {
			t.Fatal(err)
		}
		builtDir = dir
	}
	out := filepath.Join(builtDir, "vplugin-"+version)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "./testdata/vplugin")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vplugin %s: %v\n%s", version, err, b)
	}
	built[version] = out
	return out
}

// install puts a copy of src into dir as name, atomically (a temporary
// file renamed over it), as a deploy tool would.
func install(t *testing.T, src, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// catalogueOf returns the rig's last registered catalogue by name.
func (r *rig) catalogueOf() map[string]fsm.PluginInfo {
	out := map[string]fsm.PluginInfo{}
	for _, p := range r.server.registered().Plugins {
		out[p.Name] = p
	}
	return out
}

// TestNewPluginFileJoinsTheCatalogue: while the agent runs, a plugin file
// that appears, changes or goes registers the node again with the new
// catalogue, with the version Info reports; unchanged files are not
// launched for Info again.
func TestNewPluginFileJoinsTheCatalogue(t *testing.T) {
	r := newRig(t, func(cfg *Config, r *rig) {
		cfg.PluginScanInterval = 10 * time.Millisecond
		cfg.PluginSettle = 50 * time.Millisecond
		r.host.versions["ticker"] = "1.0.0"
		r.host.versions["echo"] = "0.3.0"
	})
	r.start()
	if got := r.catalogueOf(); len(got) != 2 || got["ticker"].Version != "1.0.0" || got["batch"].Version != "" {
		t.Fatalf("registered catalogue %+v, want batch and ticker@1.0.0", got)
	}
	dir := r.a.cfg.PluginDir
	if err := os.WriteFile(filepath.Join(dir, "echo"), []byte("#!/bin/false\necho"), 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, "echo in the registered catalogue", func() bool { return r.catalogueOf()["echo"].Version == "0.3.0" })
	if !r.logs.contains("plugin catalogue changed; registering the node again: why=\"plugin dir changed\" changes=[\"+echo@0.3.0") {
		t.Fatalf("the change was not logged")
	}
	sum := r.catalogueOf()["echo"].SHA256
	if err := os.WriteFile(filepath.Join(dir, "echo"), []byte("#!/bin/false\necho, rebuilt"), 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rebuilt echo's sha256 registered", func() bool {
		p, ok := r.catalogueOf()["echo"]
		return ok && p.SHA256 != sum
	})
	if n := r.host.probed("echo"); n != 2 {
		t.Fatalf("echo launched %d times for Info, want 2 (one per binary)", n)
	}
	if err := os.Remove(filepath.Join(dir, "batch")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "batch gone from the registered catalogue", func() bool { _, ok := r.catalogueOf()["batch"]; return !ok })
	scans := r.a.catalog.scans.Load()
	eventually(t, "more scans", func() bool { return r.a.catalog.scans.Load() > scans+5 })
	if n := r.host.probed("ticker"); n != 1 {
		t.Fatalf("the unchanged ticker was launched %d times for Info, want once", n)
	}
	if n := r.host.launched(); n != 0 {
		t.Fatalf("%d run launches, want none", n)
	}
}

// TestSIGHUPRescansThePluginDir: with polling off, SIGHUP makes the agent
// rescan its plugin dir and register the new catalogue.
func TestSIGHUPRescansThePluginDir(t *testing.T) {
	r := newRig(t, func(cfg *Config, _ *rig) {
		cfg.RescanSignals = []os.Signal{syscall.SIGHUP}
	})
	r.start()
	if err := os.WriteFile(filepath.Join(r.a.cfg.PluginDir, "echo"), []byte("#!/bin/false\necho"), 0o755); err != nil {
		t.Fatal(err)
	}
	registers, _, _ := r.server.counts()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "echo registered after SIGHUP", func() bool { _, ok := r.catalogueOf()["echo"]; return ok })
	if n, _, _ := r.server.counts(); n != registers+1 {
		t.Fatalf("%d registrations after SIGHUP, want 1", n-registers)
	}
	if !r.logs.contains(`plugin catalogue changed; registering the node again: why="signal hangup"`) {
		t.Fatal("the rescan's cause was not logged")
	}
}

// clusterAgent is an agent with real plugin processes and its state on
// disk, registered with a one-server test cluster.
type clusterAgent struct {
	*rig
	leader *testcluster.Node
}

func newClusterAgent(t *testing.T, configure func(*Config)) *clusterAgent {
	t.Helper()
	c := testcluster.New(t, 1)
	leader := c.WaitLeader(t)
	server := dialHTTP(leader.HTTPAddr)
	r := newRig(t, func(cfg *Config, _ *rig) {
		for _, name := range []string{"ticker", "batch"} {
			_ = os.Remove(filepath.Join(cfg.PluginDir, name))
		}
		cfg.StopPluginsOnExit = true
		cfg.InfoTimeout = 10 * time.Second
		if configure != nil {
			configure(cfg)
		}
	})
	store, err := openState(r.a.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAgent(r.a.cfg, parts{host: processHost{}, store: store, members: r.members, dial: func(string) serverAPI { return server }})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.a.Run(ctx) }()
	return &clusterAgent{rig: r, leader: leader}
}

func (c *clusterAgent) apply(typ fsm.MessageType, body any) {
	c.t.Helper()
	res, err := c.leader.Server.Apply(context.Background(), typ, fsm.Header{Actor: fsm.OperatorActor("test"), Purpose: "test"}, body)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.t.Fatalf("apply %v: %v", typ, err)
	}
}

func (c *clusterAgent) deploy(spec fsm.Spec) {
	c.t.Helper()
	if spec.Count == 0 {
		spec.Count = 1
	}
	c.apply(fsm.ComponentPutType, &fsm.ComponentPutRequest{Spec: spec})
}

// node returns the committed catalogue of the agent's node.
func (c *clusterAgent) catalogue() map[string]fsm.PluginInfo {
	out := map[string]fsm.PluginInfo{}
	c.leader.Server.Read(func(st *fsm.State) {
		if n, ok := st.Node(c.a.cfg.NodeID); ok {
			for _, p := range n.Plugins {
				out[p.Name] = p
			}
		}
	})
	return out
}

// runs returns the committed runs of a component, oldest first.
func (c *clusterAgent) runs(component string) []fsm.Run {
	var out []fsm.Run
	c.leader.Server.Read(func(st *fsm.State) {
		for _, r := range st.Runs(component) {
			out = append(out, *r)
		}
	})
	slices.SortFunc(out, func(a, b fsm.Run) int { return int(a.CreateIndex) - int(b.CreateIndex) })
	return out
}

// waitRun waits until the component has a run of generation gen that
// satisfies cond, and returns it.
func (c *clusterAgent) waitRun(component string, gen uint64, what string, cond func(fsm.Run) bool) fsm.Run {
	c.t.Helper()
	var found fsm.Run
	testcluster.WaitFor(c.t, 30*time.Second, component+": "+what, func() bool {
		for _, r := range c.runs(component) {
			if r.Generation >= gen && cond(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

func (c *clusterAgent) generation(component string) uint64 {
	var gen uint64
	c.leader.Server.Read(func(st *fsm.State) {
		if comp, ok := st.Component(component); ok {
			gen = comp.Generation
		}
	})
	return gen
}

func executing(r fsm.Run) bool { return r.State == fsm.StateExecuting }

func aborted(r fsm.Run) bool {
	return r.State == fsm.StateAborted || r.Outcome == fsm.StateAborted
}

// TestVersionFromInfoPlacesAPinnedSpec: the agent learns each plugin's
// version from its Info, so a spec pinning that version places on the
// node; a binary that does not answer Info is listed without a version.
func TestVersionFromInfoPlacesAPinnedSpec(t *testing.T) {
	v1 := vplugin(t, "0.1.0")
	c := newClusterAgent(t, func(cfg *Config) {
		install(t, v1, cfg.PluginDir, "vplugin")
		if err := os.WriteFile(filepath.Join(cfg.PluginDir, "broken"), []byte("#!/bin/sh\necho 'broken: no config' >&2\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	testcluster.WaitFor(t, 20*time.Second, "the node registered with versions", func() bool {
		cat := c.catalogue()
		_, broken := cat["broken"]
		return cat["vplugin"].Version == "0.1.0" && broken
	})
	if v := c.catalogue()["broken"].Version; v != "" {
		t.Fatalf("broken plugin listed with version %q", v)
	}
	if !c.logs.contains("plugin did not report its Info; listed without a version: plugin=broken") || !c.logs.contains("broken: no config") {
		t.Fatal("the broken plugin's failure was not logged with its output")
	}
	c.deploy(fsm.Spec{Name: "pinned", Plugin: fsm.PluginRef{Name: "vplugin", Version: "0.1.0"}})
	c.waitRun("pinned", 1, "EXECUTING", executing)
	c.deploy(fsm.Spec{Name: "other", Plugin: fsm.PluginRef{Name: "vplugin", Version: "0.2.0"}})
	run := c.waitRun("other", 1, "unplaced for want of version 0.2.0", func(r fsm.Run) bool {
		return r.State == fsm.StateCreated && strings.Contains(r.Reason, "no ready node has plugin vplugin@0.2.0")
	})
	if run.Node != "" {
		t.Fatalf("a run pinned to a version the node lacks was placed: %+v", run)
	}
}

// TestRebuiltPluginRunsTheNewBinary: a plugin rebuilt while its component
// runs, deployed again, runs the new binary for the new run with no
// ABORTED run and no restart attempt, though the agent's catalogue was
// stale (no polling) when the run was placed; a run whose spec pins the
// sha256 of a binary replaced since aborts saying so.
func TestRebuiltPluginRunsTheNewBinary(t *testing.T) {
	v1, v2 := vplugin(t, "0.1.0"), vplugin(t, "0.2.0")
	var dir string
	c := newClusterAgent(t, func(cfg *Config) {
		cfg.PluginSettle = 100 * time.Millisecond
		dir = cfg.PluginDir
		install(t, v1, dir, "vplugin")
	})
	testcluster.WaitFor(t, 20*time.Second, "vplugin 0.1.0 registered", func() bool { return c.catalogue()["vplugin"].Version == "0.1.0" })
	c.deploy(fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "vplugin"}, Config: map[string]string{"n": "1"}})
	first := c.waitRun("web", 1, "EXECUTING", executing)

	install(t, v2, dir, "vplugin")
	c.deploy(fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "vplugin"}, Config: map[string]string{"n": "2"}})
	gen := c.generation("web")
	second := c.waitRun("web", gen, "EXECUTING on the rebuilt binary", executing)
	if second.ID == first.ID || second.Attempt != 0 {
		t.Fatalf("new run %+v, want another run at attempt 0", second)
	}
	for _, r := range c.runs("web") {
		if aborted(r) {
			t.Fatalf("run %s aborted: %s", r.ID, r.Reason)
		}
	}
	log, err := os.ReadFile(c.a.logPath(second.ID))
	if err != nil || !strings.Contains(string(log), "vplugin started: version=0.2.0") {
		t.Fatalf("the new run's log does not show the new binary (%v):\n%s", err, log)
	}
	if !c.logs.contains("plugin changed on disk; launched the new binary for the run: run=" + second.ID) {
		t.Fatal("the relaunch was not logged")
	}
	testcluster.WaitFor(t, 20*time.Second, "vplugin 0.2.0 registered", func() bool { return c.catalogue()["vplugin"].Version == "0.2.0" })

	// Pinned to the sha256 of 0.2.0, which is replaced by 0.1.0 again.
	sum2 := c.catalogue()["vplugin"].SHA256
	c.deploy(fsm.Spec{Name: "pinned", Plugin: fsm.PluginRef{Name: "vplugin", SHA256: sum2}, Config: map[string]string{"n": "1"}})
	c.waitRun("pinned", 1, "EXECUTING", executing)
	install(t, v1, dir, "vplugin")
	c.deploy(fsm.Spec{Name: "pinned", Plugin: fsm.PluginRef{Name: "vplugin", SHA256: sum2}, Config: map[string]string{"n": "2"}})
	gen = c.generation("pinned")
	run := c.waitRun("pinned", gen, "ABORTED", aborted)
	t.Logf("pinned run's reason: %s", run.Reason)
	want := "plugin changed on disk; the catalogue was refreshed: plugin vplugin now has sha256 "
	if !strings.HasPrefix(run.Reason, want) || !strings.HasSuffix(run.Reason, ", the spec pins "+sum2[:12]) {
		t.Fatalf("pinned run aborted with %q, want %q…", run.Reason, want)
	}
}

// TestPanicInStartNamesThePanic: a plugin that panics in Start fails its
// run with the panic's message and the log's path, not a transport error.
func TestPanicInStartNamesThePanic(t *testing.T) {
	v1 := vplugin(t, "0.1.0")
	c := newClusterAgent(t, func(cfg *Config) { install(t, v1, cfg.PluginDir, "vplugin") })
	testcluster.WaitFor(t, 20*time.Second, "vplugin registered", func() bool { _, ok := c.catalogue()["vplugin"]; return ok })
	c.deploy(fsm.Spec{Name: "crash", Plugin: fsm.PluginRef{Name: "vplugin"}, Config: map[string]string{"panic": "cannot open the frobnicator"},
		Restart: fsm.RestartPolicy{Attempts: 1}})
	run := c.waitRun("crash", 1, "ABORTED", aborted)
	t.Logf("reason: %s", run.Reason)
	want := "failed start: plugin exited during Start; its log " + c.a.logPath(run.ID) + " ends: panic: cannot open the frobnicator"
	if !strings.HasPrefix(run.Reason, want) {
		t.Fatalf("reason %q, want it to start with %q", run.Reason, want)
	}
	if strings.Contains(run.Reason, "EOF") || strings.Contains(run.Reason, "Unavailable") {
		t.Fatalf("reason %q carries the transport error", run.Reason)
	}
}
