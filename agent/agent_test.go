package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

func TestScanPluginsListsExecutablesWithTheirChecksums(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ticker", 0o755, "binary one")
	write("batch", 0o755, "binary two")
	write("README", 0o644, "not a plugin")
	write("bad name!", 0o755, "unusable name")
	c, err := scanPlugins(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.plugins) != 2 || c.plugins[0].Name != "batch" || c.plugins[1].Name != "ticker" {
		t.Fatalf("catalogue %+v, want batch and ticker, sorted", c.plugins)
	}
	want, _ := host.FileSHA256(filepath.Join(dir, "ticker"))
	if e, ok := c.lookup("ticker"); !ok || e.SHA256 != want || e.path != filepath.Join(dir, "ticker") {
		t.Fatalf("lookup ticker = %+v %v", e, ok)
	}
	if _, ok := c.lookup("README"); ok {
		t.Fatal("a non-executable file is in the catalogue")
	}
	if _, err := scanPlugins(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("scanning a missing dir succeeded")
	}
}

func TestStateDBKeepsRunsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := runRecord{RunID: "r1", Component: "c", Epoch: 9, Kind: plugins.KindService, Attachment: host.Attachment{Pid: 42, Addr: "/tmp/x.sock", Network: "unix"}}
	if err := db.put(r); err != nil {
		t.Fatal(err)
	}
	if err := db.put(runRecord{RunID: "r2", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.delete("r2"); err != nil {
		t.Fatal(err)
	}
	if err := db.close(); err != nil {
		t.Fatal(err)
	}
	db, err = openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	runs, errs := db.all()
	if len(errs) != 0 || len(runs) != 1 || runs[0].RunID != "r1" || runs[0].Attachment.Pid != 42 || runs[0].Epoch != 9 {
		t.Fatalf("after reopen: %+v %v", runs, errs)
	}
}

// TestReportsAfterLeaseLoss: once the lease is lost, reports that move runs
// forward are dropped; reports that end runs are kept for retry.
func TestReportsAfterLeaseLoss(t *testing.T) {
	a := &Agent{logger: hclog.NewNullLogger()}
	kept := a.dropForward([]fsm.Transition{
		{Run: "fwd", To: fsm.StateContextReady},
		{Run: "end", To: fsm.StateTerminated},
		{Run: "abort", To: fsm.StateAborted, Reason: "crash"},
		{Run: "out", To: fsm.StateValidating, Output: "x"},
	})
	if len(kept) != 2 || kept[0].Run != "end" || kept[1].Run != "abort" {
		t.Fatalf("kept %+v, want the TERMINATED and ABORTED reports", kept)
	}
}

// TestReportOnce: the supervisor reports a transition derived from the
// committed state once per (state, target).
func TestReportOnce(t *testing.T) {
	a := &Agent{reports: newReportQueue()}
	s := newSupervisor(a)
	run := fsm.Run{ID: "x", State: fsm.StateCommitted}
	s.reportOnce(run, fsm.Transition{Run: "x", To: fsm.StateTerminated})
	s.reportOnce(run, fsm.Transition{Run: "x", To: fsm.StateTerminated})
	if got := a.reports.take(10); len(got) != 1 {
		t.Fatalf("%d reports queued for one transition, want 1", len(got))
	}
	run.State = fsm.StateTerminatedByRuntime
	s.reportOnce(run, fsm.Transition{Run: "x", To: fsm.StateTerminated})
	if got := a.reports.take(10); len(got) != 1 {
		t.Fatalf("%d reports queued for the same target from another state, want 1", len(got))
	}
}

func TestSimulatorNamesItsNodes(t *testing.T) {
	s, err := NewSimulator(SimConfig{Server: "127.0.0.1:1", Nodes: 3, Prefix: "rack"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.ids, ",") != "rack-0000,rack-0001,rack-0002" || !s.mine["rack-0002"] {
		t.Fatalf("simulated ids %v", s.ids)
	}
	if _, err := NewSimulator(SimConfig{Nodes: 0, Server: "x"}); err == nil {
		t.Fatal("a simulator of no nodes was accepted")
	}
}
