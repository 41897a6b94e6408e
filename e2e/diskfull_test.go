package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

// tmpfsMiB is the size of the tmpfs a full server's data dir is on.
const tmpfsMiB = 64

// TestDiskFullSingleServerRefusesWritesAndRecovers fills the tmpfs the
// only server's data dir is on: writes are refused with 507 and a message
// naming the data dir, the server stays leader in the same term (no
// elections) and serves reads; once the filler is deleted, writes are
// accepted again without a restart. Every acknowledged write is there, no
// refused one is, also after a restart.
func TestDiskFullSingleServerRefusesWritesAndRecovers(t *testing.T) {
	requireRoot(t)
	servers := startServersOn(t, 1, "s1")
	s := servers[0]
	waitLeader(t, servers, 20*time.Second)
	var acked, refused []string
	for i := 0; i < 5; i++ {
		acked = append(acked, mustPut(t, s, fmt.Sprintf("before%d", i)))
	}
	before, err := s.client().Status(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	filler := fill(t, s.dataDir)
	n := 0
	err = proctest.Holds("writes refused with 507 by the leader, in the same term", 3*time.Second, 200*time.Millisecond, func() (bool, error) {
		name := fmt.Sprintf("full%d", n)
		n++
		if err := checkDiskFullRefusal(put(t, s, name), s.dataDir); err != nil {
			return false, err
		}
		refused = append(refused, name)
		st, err := s.client().Status(tctx(t, 2*time.Second))
		if err != nil {
			return false, err
		}
		if st.State != "Leader" || st.Term != before.Term || !s.proc.Running() {
			return false, fmt.Errorf("state %s term %d (was %d), running %v", st.State, st.Term, before.Term, s.proc.Running())
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes refused while the data dir was full; term stayed %d", len(refused), before.Term)
	checkComponents(t, s, false, acked, refused) // reads are served while full
	// A snapshot is not started on a full data dir (raft flattens the
	// error to text, so it is a 500 that says why).
	if err := s.client().SaveSnapshot(tctx(t, 10*time.Second), io.Discard); err == nil || !strings.Contains(err.Error(), "is out of space") {
		t.Fatalf("snapshot on a full data dir: %v", err)
	}
	checkDiskMetrics(t, s, "1")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 10*time.Second, "a write accepted after the filler was deleted", func() (bool, error) {
		err := put(t, s, "after0")
		return err == nil, err
	})
	t.Logf("writes accepted %s after space returned", time.Since(freed).Round(time.Millisecond))
	acked = append(acked, "after0")
	for i := 1; i < 5; i++ {
		acked = append(acked, mustPut(t, s, fmt.Sprintf("after%d", i)))
	}
	checkComponents(t, s, false, acked, refused)
	checkDiskMetrics(t, s, "0")
	if _, err := os.Stat(filepath.Join(s.dataDir, cluster.DiskReserveFile)); err != nil {
		t.Fatalf("disk reserve file not there once space returned: %v", err)
	}

	// What was acknowledged is on disk: a restart from the data dir has it.
	last, err := s.client().Status(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := s.proc.ExitCode(); code != 0 {
		t.Fatalf("server exited with status %d after SIGTERM, want 0", code)
	}
	restart(t, s.proc)
	waitLeader(t, servers, 20*time.Second)
	// Raft reports an entry applied once it is handed to the state machine,
	// so a consistent read just after the election may still see the state
	// before the replay: wait for the state machine itself.
	waitFor(t, 20*time.Second, "the log replayed after the restart", func() (bool, error) {
		st, err := s.client().Status(tctx(t, 2*time.Second))
		if err != nil {
			return false, err
		}
		return st.AppliedIndex >= last.AppliedIndex, fmt.Errorf("applied %d of %d", st.AppliedIndex, last.AppliedIndex)
	})
	checkComponents(t, s, false, acked, refused)
}

// TestDiskFullLeaderOfThreeHandsOverAndCatchesUp fills the tmpfs under the
// leader of three servers: it hands leadership to a server with space, the
// other two go on committing writes sent to any of the three, the full one
// lags without leaving, and once space returns it catches up by itself to
// the same digest at the same applied index.
func TestDiskFullLeaderOfThreeHandsOverAndCatchesUp(t *testing.T) {
	requireRoot(t)
	servers := startServersOn(t, 3, "s1")
	full := servers[0]
	makeLeader(t, servers, full)
	var acked []string
	for i := 0; i < 3; i++ {
		acked = append(acked, mustPut(t, full, fmt.Sprintf("before%d", i)))
	}

	filler := fill(t, full.dataDir)
	filled := time.Now()
	var refusals int
	waitFor(t, 20*time.Second, "a write through the full server committed by another leader", func() (bool, error) {
		err := put(t, full, "handover")
		if err == nil {
			return true, nil
		}
		if api.IsStatus(err, http.StatusInsufficientStorage) {
			refusals++
			return false, checkDiskFullRefusal(err, full.dataDir)
		}
		if api.IsStatus(err, http.StatusServiceUnavailable) {
			return false, err // the election
		}
		t.Fatalf("write while the leader's disk is full: %v", err)
		return false, err
	})
	acked = append(acked, "handover")
	leader := waitLeader(t, servers, 10*time.Second)
	if leader == full {
		t.Fatal("the full server still leads")
	}
	t.Logf("%s leads %s after the disk of %s filled (%d writes refused with 507 meanwhile)", leader.id, time.Since(filled).Round(time.Millisecond), full.id, refusals)

	for i := 0; i < 9; i++ {
		acked = append(acked, mustPut(t, servers[i%3], fmt.Sprintf("while-full%d", i)))
	}
	err := proctest.Holds(full.id+" running, following and behind", 2*time.Second, 200*time.Millisecond, func() (bool, error) {
		fs, err := full.client().Status(tctx(t, 2*time.Second))
		if err != nil {
			return false, err
		}
		ls, err := leader.client().Status(tctx(t, 2*time.Second))
		if err != nil {
			return false, err
		}
		if !full.proc.Running() || fs.State != "Follower" || fs.AppliedIndex >= ls.AppliedIndex {
			return false, fmt.Errorf("%s: running %v, %s, applied %d; leader applied %d", full.id, full.proc.Running(), fs.State, fs.AppliedIndex, ls.AppliedIndex)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitSameDigest(t, servers, 60*time.Second)
	t.Logf("%s caught up %s after space returned", full.id, time.Since(freed).Round(time.Millisecond))
	for _, s := range servers {
		checkComponents(t, s, true, acked, nil)
	}
	if !full.proc.Running() {
		t.Fatalf("%s is not running", full.id)
	}
	acked = append(acked, mustPut(t, full, "after"))
	waitSameDigest(t, servers, 30*time.Second)
	checkComponents(t, full, true, acked, nil)
}

// requireRoot fails a test that mounts file systems when it does not run as
// root: CI and the developers' machines do, so not running it would hide a
// failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("needs root to mount a tmpfs (CI=%q runs as root)", os.Getenv("CI"))
	}
}

// waitFor polls cond until it holds or timeout passes, and fails the test
// with cond's last error then.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := proctest.WaitFor(context.Background(), what, timeout, 100*time.Millisecond, cond); err != nil {
		t.Fatal(err)
	}
}

// checkDiskFullRefusal checks that err is the API's refusal of a write for
// want of space in dataDir.
func checkDiskFullRefusal(err error, dataDir string) error {
	if !api.IsStatus(err, http.StatusInsufficientStorage) {
		return fmt.Errorf("want 507 Insufficient Storage, got %v", err)
	}
	for _, want := range []string{"data dir " + dataDir + " is out of space", "free space or grow the volume", "the write was not committed"} {
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("refusal %q does not say %q", err, want)
		}
	}
	return nil
}

// makeLeader transfers leadership until s leads.
func makeLeader(t *testing.T, servers []*serverProc, s *serverProc) {
	t.Helper()
	waitFor(t, 60*time.Second, s.id+" to lead", func() (bool, error) {
		leader := waitLeader(t, servers, 20*time.Second)
		if leader == s {
			return true, nil
		}
		_, err := leader.client().TransferLeader(tctx(t, 10*time.Second))
		return false, err
	})
}

// waitSameDigest waits until every server reports the same applied index
// and the same state digest there.
func waitSameDigest(t *testing.T, servers []*serverProc, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the same digest at the same applied index on every server", func() (bool, error) {
		var first *api.Status
		for _, s := range servers {
			st, err := s.client().Status(tctx(t, 2*time.Second))
			if err != nil {
				return false, err
			}
			if first == nil {
				first = st
				continue
			}
			if st.AppliedIndex != first.AppliedIndex || st.Digest != first.Digest {
				return false, fmt.Errorf("%s at %d (%.8s), %s at %d (%.8s)", first.NodeID, first.AppliedIndex, first.Digest, st.NodeID, st.AppliedIndex, st.Digest)
			}
		}
		return true, nil
	})
}

// checkComponents checks that s has every acknowledged component and none
// of the refused ones (stale: its own state, not the leader's).
func checkComponents(t *testing.T, s *serverProc, stale bool, acked, refused []string) {
	t.Helper()
	c := s.client()
	c.Stale = stale
	comps, err := c.Components(tctx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("list components on %s: %v", s.id, err)
	}
	have := map[string]bool{}
	for _, comp := range comps {
		have[comp.Name] = true
	}
	for _, n := range acked {
		if !have[n] {
			t.Fatalf("acknowledged component %s missing on %s", n, s.id)
		}
	}
	for _, n := range refused {
		if have[n] {
			t.Fatalf("component %s, refused as not committed, is on %s", n, s.id)
		}
	}
}

func put(t *testing.T, s *serverProc, name string) error {
	count := 1
	_, err := s.client().PutComponent(tctx(t, 10*time.Second), &api.ComponentSpec{
		Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count,
	}, nil)
	return err
}

func mustPut(t *testing.T, s *serverProc, name string) string {
	t.Helper()
	if err := put(t, s, name); err != nil {
		t.Fatalf("put %s through %s: %v", name, s.id, err)
	}
	return name
}

// metricsOf returns the body of the server's /metrics.
func metricsOf(t *testing.T, s *serverProc) string {
	t.Helper()
	tc, err := api.ClientTLS(s.creds.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + s.http + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

// checkDiskMetrics checks that the server's /metrics counts refusals for
// want of space and that its disk_full alarm gauge is alarm ("1" or "0").
func checkDiskMetrics(t *testing.T, s *serverProc, alarm string) {
	t.Helper()
	body := metricsOf(t, s)
	var refusals, alarmed bool
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(l, "ice_disk_refused_total{") && strings.Contains(l, `op="propose"`):
			refusals = true
		case strings.HasPrefix(l, "ice_alarm{") && strings.Contains(l, `type="disk_full"`):
			alarmed = strings.HasSuffix(l, "} "+alarm)
		default:
			continue
		}
		lines = append(lines, l)
	}
	if !refusals || !alarmed {
		t.Fatalf("/metrics of %s: want refusals counted and the disk_full alarm at %s:\n%s", s.id, alarm, strings.Join(lines, "\n"))
	}
}

// mountTmpfs mounts a tmpfs of tmpfsMiB on dir; it is unmounted when the
// test ends, after the processes started later are killed.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", tmpfsMiB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fill writes dir/filler until the file system has no byte left, and
// returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		for {
			_, err := f.Write(chunk[:n])
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("fill %s: %v", path, err)
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s: %d bytes available", dir, st.Bavail*uint64(st.Bsize))
	return path
}

// startServersOn starts n servers as startServers does, with the data dirs
// of those named in onTmpfs each on a tmpfs of its own.
func startServersOn(t *testing.T, n int, onTmpfs ...string) []*serverProc {
	t.Helper()
	dir := t.TempDir()
	creds := credsOf(t)
	type addrs struct{ http, raft, gossip string }
	as := make([]addrs, n)
	for i := range as {
		as[i] = addrs{testcluster.FreeAddr(t), testcluster.FreeAddr(t), testcluster.FreeAddr(t)}
	}
	var out []*serverProc
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%d", i+1)
		dataDir := filepath.Join(dir, id)
		for _, m := range onTmpfs {
			if m == id {
				mountTmpfs(t, dataDir)
			}
		}
		args := []string{"server", "--node-id", id, "--data-dir", dataDir,
			"--http", as[i].http, "--raft", as[i].raft, "--gossip", as[i].gossip,
			"--bootstrap-expect", fmt.Sprint(n), "--log-level", "debug"}
		for j := 0; j < n; j++ {
			if j != i {
				args = append(args, "--join", as[j].gossip)
			}
		}
		args = append(args, secureFlags(t, creds, tlsutil.RoleServer, id)...)
		c, err := creds.Client(as[i].http)
		if err != nil {
			t.Fatalf("client of %s: %v", id, err)
		}
		out = append(out, &serverProc{id: id, http: as[i].http, raft: as[i].raft, gossip: as[i].gossip,
			dataDir: dataDir, proc: startIce(t, dir, id, args...), creds: creds, api: c})
	}
	bootstrapACLs(t, out)
	return out
}
