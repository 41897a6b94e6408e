package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins/host"
)

// examplesOnce builds plugins/examples batch and extract once for the
// package's tests.
var (
	examplesOnce sync.Once
	examplesDir  string
	examplesErr  error
)

// examplePlugins returns a plugin dir holding the real batch and extract.
func examplePlugins(t *testing.T) string {
	t.Helper()
	examplesOnce.Do(func() {
		buildMu.Lock()
		if builtDir == "" {
			builtDir, examplesErr = os.MkdirTemp("", "ice-agent-test-")
		}
		dir := builtDir
		buildMu.Unlock()
		if examplesErr != nil {
			return
		}
		examplesDir = filepath.Join(dir, "examples")
		for _, name := range []string{"batch", "extract"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(examplesDir, name), "../plugins/examples/"+name)
			if b, err := cmd.CombinedOutput(); err != nil {
				examplesErr = fmt.Errorf("build %s: %w\n%s", name, err, b)
				return
			}
		}
	})
	if examplesErr != nil {
		t.Fatal(examplesErr)
	}
	return examplesDir
}

// countingHost is the production host, counting the processes it launches
// for runs (the catalogue's Info probes are not counted).
type countingHost struct {
	processHost
	mu   sync.Mutex
	pids []int
}

func (h *countingHost) Launch(cfg host.Config) (pluginProcess, error) {
	p, err := h.processHost.Launch(cfg)
	if err == nil {
		h.mu.Lock()
		h.pids = append(h.pids, p.Attachment().Pid)
		h.mu.Unlock()
	}
	return p, err
}

func (h *countingHost) launched() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pids)
}

// newProcessRig is a rig whose agent launches the real example plugins.
func newProcessRig(t *testing.T) (*rig, *countingHost) {
	t.Helper()
	r := &rig{t: t, host: newFakeHost(), store: newFakeStore(), server: newFakeServer(), members: &fakeMembers{}, logs: &logBuffer{}}
	cfg := testConfig(t, r.logs)
	cfg.PluginDir = examplePlugins(t)
	cfg.StopPluginsOnExit = true
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "runs"), 0o750); err != nil { // as New does
		t.Fatal(err)
	}
	h := &countingHost{}
	a, err := newAgent(cfg, parts{host: h, store: r.store, members: r.members, dial: func(string) serverAPI { return r.server }})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	r.server.setSpec("batch", "batch", nil)
	r.server.setSpec("extract", "extract", nil)
	t.Cleanup(func() {
		if r.done != nil {
			r.stop()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", r.logs.String())
		}
	})
	return r, h
}

// dispatchRun places a dispatched run and takes it to TERMINATED as the
// runtime would (COMMITTED once VALIDATING), checking that it had its own
// transitions and output, and that its plugin logged its start to the run's
// own log with the run's epoch.
func (r *rig) dispatchRun(id, component string, epoch uint64, input, wantOutput string) {
	r.t.Helper()
	run := provisioned(id, component, epoch)
	run.Dispatch, run.Input, run.Meta = true, input, map[string]string{"doc": id}
	r.server.mu.Lock()
	run.Generation = r.server.specs[component].RunGeneration
	r.server.mu.Unlock()
	r.server.place(run)
	r.waitState(id, fsm.StateValidating)
	r.server.setState(id, fsm.StateCommitted)
	r.waitState(id, fsm.StateTerminated)
	got := r.server.reportsOf(id)
	want := []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting, fsm.StateValidating, fsm.StateTerminated}
	if states := r.states(id); !slices.Equal(states, want) {
		r.t.Fatalf("run %s reported %v, want %v", id, states, want)
	}
	for _, tr := range got {
		if tr.Epoch != epoch {
			r.t.Fatalf("run %s report %+v does not carry its epoch %d", id, tr, epoch)
		}
	}
	if got[2].Output != wantOutput {
		r.t.Fatalf("run %s output %q, want %q", id, got[2].Output, wantOutput)
	}
	b, err := os.ReadFile(r.a.logPath(id))
	if err != nil || !strings.Contains(string(b), "run="+id) || !strings.Contains(string(b), fmt.Sprintf("epoch=%d", epoch)) {
		r.t.Fatalf("run %s log (%v) does not record its start at epoch %d:\n%s", id, err, epoch, b)
	}
}

func batchOutput(input string) string {
	sum := sha256.Sum256([]byte(input))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// idleWarm returns the pids of the idle warm processes.
func (r *rig) idleWarm() []int {
	var pids []int
	for _, l := range r.a.warm.idleProcs() {
		for _, wp := range l {
			pids = append(pids, wp.proc.Attachment().Pid)
		}
	}
	return pids
}

// gone reports whether no process of pid is left.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestReusablePluginServesSuccessiveRunsInOneProcess: successive runs of
// batch (reusable) are served by one process, each with its own
// transitions, epoch, output and log; after a SIGKILL of the idle process
// the next run gets a new one and succeeds; a change of the component's
// run generation stops the warm process, and so does the agent's stop.
func TestReusablePluginServesSuccessiveRunsInOneProcess(t *testing.T) {
	r, h := newProcessRig(t)
	r.start()
	for i := 1; i <= 4; i++ {
		in := fmt.Sprintf("doc %d", i)
		r.dispatchRun(fmt.Sprintf("w%d", i), "batch", uint64(10+i), in, batchOutput(in))
	}
	if pids := h.launched(); len(pids) != 1 {
		t.Fatalf("4 successive runs launched %d processes %v, want 1", len(pids), pids)
	}
	if recs, _ := r.store.all(); len(recs) != 0 {
		t.Fatalf("run records %+v left, want none (a warm run writes none)", recs)
	}

	first := h.launched()[0]
	eventually(t, "the warm process idle", func() bool { return slices.Equal(r.idleWarm(), []int{first}) })
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.dispatchRun("w5", "batch", 20, "after kill", batchOutput("after kill"))
	pids := h.launched()
	if len(pids) != 2 || pids[1] == first {
		t.Fatalf("after SIGKILL of %d the launches are %v, want one new process", first, pids)
	}
	r.dispatchRun("w6", "batch", 21, "again", batchOutput("again"))
	if n := len(h.launched()); n != 2 {
		t.Fatalf("the replacement was not reused: %d launches", n)
	}

	second := pids[1]
	eventually(t, "the replacement idle", func() bool { return slices.Equal(r.idleWarm(), []int{second}) })
	r.server.setGenerations("batch", 2, 2)
	eventually(t, "the outdated warm process stopped", func() bool { return len(r.idleWarm()) == 0 && gone(second) })

	r.server.setGenerations("batch", 3, 3)
	r.dispatchRun("w7", "batch", 22, "gen 3", batchOutput("gen 3"))
	third := h.launched()[2]
	eventually(t, "the new generation's process idle", func() bool { return slices.Equal(r.idleWarm(), []int{third}) })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if !gone(third) {
		t.Fatalf("warm process %d still running after the agent stopped", third)
	}
	if n := r.a.tasks.Running(); n != 0 {
		t.Fatalf("%d goroutines still running after the agent stopped", n)
	}
}

// TestNonReusablePluginGetsAProcessPerRun: extract does not say it is
// reusable, so each of its runs launches a process of its own, stopped when
// the run ends.
func TestNonReusablePluginGetsAProcessPerRun(t *testing.T) {
	r, h := newProcessRig(t)
	r.start()
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("x%d", i)
		r.dispatchRun(id, "extract", uint64(30+i), "three little words", fmt.Sprintf(`{"doc":%q,"text":"three little words","words":3}`, id))
	}
	pids := h.launched()
	if len(pids) != 3 {
		t.Fatalf("3 runs launched %d processes %v, want 3", len(pids), pids)
	}
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("process %d of an ended run gone", pid), func() bool { return gone(pid) })
	}
	if n := len(r.idleWarm()); n != 0 {
		t.Fatalf("%d warm processes of a plugin that is not reusable", n)
	}
}
