package e2e

import (
	"bytes"
	"encoding/json"
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

// cli runs an `ice` verb against server s (nil: a verb that reaches no
// server), fails the test if it fails, and returns its standard output
// (progress goes to standard error).
func cli(t *testing.T, s *serverProc, args ...string) string {
	t.Helper()
	cmd := cliCommand(s, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ice %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func writeSpec(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func stopServer(t *testing.T, s *serverProc) {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", s.id, err)
	}
	testcluster.WaitFor(t, 15*time.Second, s.id+" to exit", func() bool { return !s.proc.Running() })
}

// TestOperationsFromTheCLI runs the README's operations section with the
// real binary: a rolling update, a node drain, snapshot save, inspect and
// restore on another cluster, offline replay of every server, and recovery
// of a cluster that lost two of its three servers.
func TestOperationsFromTheCLI(t *testing.T) {
	servers, _ := agentCluster(t, "a", "b")
	s0 := servers[0]
	dir := t.TempDir()
	ticks := filepath.Join(dir, "ticks")
	spec := func(interval string) string {
		return fmt.Sprintf(`component "ticker" {
  plugin = "ticker"
  count  = 4
  config = { file = %q, interval = %q }
  update { max_parallel = 1 }
}
`, ticks, interval)
	}
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "v1.hcl", spec("100ms")))
	executing := func(gen uint64, node string) int {
		n := 0
		for _, r := range runsOf(t, servers[0], "ticker") {
			if r.State == fsm.StateExecuting && r.Generation >= gen && (node == "" || r.Node == node) {
				n++
			}
		}
		return n
	}
	testcluster.WaitFor(t, 30*time.Second, "4 ticker runs EXECUTING", func() bool { return executing(0, "") == 4 })

	// Rolling update: every run replaced by the new generation.
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "v2.hcl", spec("200ms")))
	testcluster.WaitFor(t, 60*time.Second, "4 runs of generation 2 EXECUTING", func() bool { return executing(2, "") == 4 })

	// Drain node a: its runs move to b, then it is ineligible.
	cli(t, s0, "node", "drain", "a", "--deadline", "1m")
	testcluster.WaitFor(t, 60*time.Second, "node a drained and ineligible with all runs on b", func() bool {
		nodes, err := servers[0].client().Nodes(tctx(t, 2*time.Second))
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "a" && n.Status != fsm.NodeIneligible {
				return false
			}
		}
		return executing(2, "b") == 4
	})
	cli(t, s0, "node", "eligibility", "a", "--enable")

	checkCollection(t, servers)

	// Snapshot save and inspect, then restore on a second cluster.
	archive := filepath.Join(dir, "backup.snap")
	cli(t, s0, "operator", "snapshot", "save", archive)
	var meta api.ArchiveMeta
	if err := json.Unmarshal([]byte(cli(t, nil, "operator", "snapshot", "inspect", archive, "--json")), &meta); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	if meta.Runs == 0 || meta.Digest == "" {
		t.Fatalf("inspect: %+v", meta)
	}
	other := startServers(t, 1)
	waitLeader(t, other, 20*time.Second)
	cli(t, other[0], "operator", "snapshot", "restore", archive)
	checkRestored(t, other[0], meta)

	// Quiesce, verify, stop every server, and replay each data dir offline.
	cli(t, s0, "stop", "ticker")
	testcluster.WaitFor(t, 30*time.Second, "all ticker runs TERMINATED", func() bool {
		for _, r := range runsOf(t, servers[0], "ticker") {
			if r.State != fsm.StateTerminated {
				return false
			}
		}
		return true
	})
	var verified string
	testcluster.WaitFor(t, 30*time.Second, "ice verify OK", func() bool {
		out, err := runCLI(t, s0, "verify")
		verified = out
		return err == nil && strings.Contains(out, "OK")
	})
	for _, s := range servers {
		stopServer(t, s)
	}
	digests := map[string]bool{}
	for _, s := range servers {
		out := cli(t, nil, "replay", "--data-dir", s.dataDir, "--json")
		var res struct {
			Digest        string `json:"digest"`
			ChainVerified bool   `json:"chain_verified"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || !res.ChainVerified {
			t.Fatalf("replay %s: %v %s", s.id, err, out)
		}
		digests[res.Digest] = true
		if !strings.Contains(verified, res.Digest) {
			t.Fatalf("replay of %s gives digest %s, not the one ice verify reported:\n%s", s.id, res.Digest, verified)
		}
	}
	if len(digests) != 1 {
		t.Fatalf("replays disagree: %v", digests)
	}

	// Two of three servers are lost for good: recover the survivor alone.
	s1 := servers[0]
	cli(t, nil, "operator", "recover", "--data-dir", s1.dataDir, "--server", s1.id+"="+s1.raft)
	restart(t, s1.proc)
	waitLeader(t, []*serverProc{s1}, 20*time.Second)
	comp, err := s1.client().Component(tctx(t, 5*time.Second), "ticker")
	if err != nil || comp.Status != fsm.ComponentStopped {
		t.Fatalf("after recovery: %+v %v", comp, err)
	}
	for d := range digests {
		if st, err := s1.client().Status(tctx(t, 5*time.Second)); err != nil || st.Digest != d {
			t.Fatalf("recovered server digest %s (%v), before %s", st.Digest, err, d)
		}
	}
	cli(t, s1, "deploy", "-f", writeSpec(t, dir, "after.hcl", `component "after" {
  plugin = "ticker"
  count  = 0
}
`))
}

// checkCollection runs the README's collection step: ended runs of the
// rolling update and the drain leave the state, keeping the newest of each
// slot, old events leave memory for the archives, and the history and
// every server's chain stay whole.
func checkCollection(t *testing.T, servers []*serverProc) {
	t.Helper()
	s0 := servers[0]
	ended := map[int][]string{} // slot -> TERMINATED run ids
	before := runsOf(t, s0, "ticker")
	for _, r := range before {
		if r.State == fsm.StateTerminated {
			ended[r.Slot] = append(ended[r.Slot], r.ID)
		}
	}
	want := 0
	for _, ids := range ended {
		want += len(ids) - 1 // all but the newest of each slot
	}
	var res struct {
		Index      uint64 `json:"index"`
		Runs       int    `json:"runs"`
		Archived   uint64 `json:"archived"`
		Checkpoint uint64 `json:"checkpoint"`
	}
	out := cli(t, s0, "operator", "gc", "--run-retention", "0s", "--keep-per-slot", "1",
		"--event-retention", "0s", "--event-retention-count", "10", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("operator gc --json: %v\n%s", err, out)
	}
	if res.Index == 0 || res.Runs != want || res.Archived == 0 {
		t.Fatalf("operator gc: %+v, want %d runs collected and events archived", res, want)
	}
	if after := runsOf(t, s0, "ticker"); len(after) != len(before)-want {
		t.Fatalf("%d runs after the collection, want %d", len(after), len(before)-want)
	}
	// The collected runs keep their history, read back from the archive.
	hist := cli(t, s0, "history", "ticker", "--json")
	for _, ids := range ended {
		for _, id := range ids {
			if !strings.Contains(hist, id) {
				t.Fatalf("ice history ticker lost collected run %s", id)
			}
		}
	}
	testcluster.WaitFor(t, 15*time.Second, "every server released the archived events", func() bool {
		for _, s := range servers {
			st, err := s.client().Status(tctx(t, 5*time.Second))
			if err != nil || st.Events == nil || st.Events.FirstHeld <= res.Checkpoint {
				return false
			}
		}
		return true
	})
	if out := cli(t, s0, "verify", "--chain"); !strings.Contains(out, "verified") {
		t.Fatalf("ice verify --chain:\n%s", out)
	}
	if out := cli(t, s0, "status"); !strings.Contains(out, "Archive:") || !strings.Contains(out, "Last GC:") {
		t.Fatalf("ice status shows no archive or collection:\n%s", out)
	}
}

// checkRestored checks that the cluster of s holds the state of the
// archive: its digest, or, once the server has committed after the
// restore (it registers its own grant-signing key at once, which the
// archive of another cluster lacks), the archive's counts and its chain as
// a prefix of the cluster's.
func checkRestored(t *testing.T, s *serverProc, meta api.ArchiveMeta) {
	t.Helper()
	st, err := s.client().Status(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("status of the restored cluster: %v", err)
	}
	if st.Digest == meta.Digest {
		return
	}
	if st.AppliedIndex <= meta.Index {
		t.Fatalf("restored cluster digest %s at index %d, archive %s at %d", st.Digest, st.AppliedIndex, meta.Digest, meta.Index)
	}
	if st.Components != meta.Components || st.Nodes != meta.Nodes || st.Runs != meta.Runs {
		t.Fatalf("restored cluster holds %d components, %d nodes, %d runs; the archive %d, %d, %d",
			st.Components, st.Nodes, st.Runs, meta.Components, meta.Nodes, meta.Runs)
	}
	events, err := s.client().Events(tctx(t, 5*time.Second), 0, "")
	if err != nil {
		t.Fatalf("events of the restored cluster: %v", err)
	}
	for _, e := range events {
		if e.Hash.String() == meta.ChainHead {
			return
		}
	}
	t.Fatalf("the restored cluster's chain (%d events) does not hold the archive's head %s", len(events), meta.ChainHead)
}
