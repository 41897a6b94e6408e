package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/raftlogtest"
	"github.com/ice-run/ice/internal/testcluster"
)

// damageLog changes the newest component.put of a stopped server's log:
// flipping a byte of it (a bad disk: the checksum catches it), or
// rewriting its count with a valid checksum (what only the cross-server
// digest check can find). It returns the index.
func damageLog(t *testing.T, dataDir string, rechecksum bool) uint64 {
	t.Helper()
	spec := raftlogtest.Spec{Kind: raftlogtest.Flip, Type: fsm.ComponentPutType, Mask: 0x10}
	if rechecksum {
		spec.Kind, spec.Change = raftlogtest.Rewrite, func(c *fsm.Command) error {
			c.Body.(*fsm.ComponentPutRequest).Spec.Count += 3
			return nil
		}
	}
	r, err := raftlogtest.Damage(dataDir, spec)
	if err != nil {
		t.Fatal(err)
	}
	return r.Index
}

// alarmsOn reads the alarms a server's status shows.
func alarmsOn(t *testing.T, s *serverProc) []api.Alarm {
	c := s.client()
	c.Stale = true
	st, err := c.Status(tctx(t, 2*time.Second))
	if err != nil {
		return nil
	}
	return st.Alarms
}

// alarmGauge reads ice_alarm{type="corrupt"} from a server's /metrics.
func alarmGauge(t *testing.T, s *serverProc) string {
	t.Helper()
	tc, err := api.ClientTLS(s.creds.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	resp, err := hc.Get("https://" + s.http + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(line, "ice_alarm{") && strings.Contains(f[0], `type="corrupt"`) {
			return f[1]
		}
	}
	return ""
}

// TestCorruptServerIsAlarmedAndReplaced is issue 13's probe on real
// processes in the secure configuration: bytes flipped in a stopped
// server's log, then a whole entry rewritten with a valid checksum. Each
// time the restarted server is named in a committed alarm without anyone
// running `ice verify`, shown by `ice status` and /metrics on a healthy
// server, refuses reads, and `ice replay` names the damaged entry; the
// majority keeps serving; remove-peer, reset-data and a restart with --join
// bring it back with the cluster's state.
func TestCorruptServerIsAlarmedAndReplaced(t *testing.T) {
	servers := startServers(t, 3, "--corruption-check-interval", "1h")
	for round, rechecksum := range []bool{false, true} {
		leader := waitLeader(t, servers, 30*time.Second)
		name := fmt.Sprintf("web%d", round)
		count := 1
		if _, err := leader.client().PutComponent(tctx(t, 10*time.Second), &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count}, nil); err != nil {
			t.Fatal(err)
		}
		testcluster.WaitFor(t, 20*time.Second, "ice verify: equal digests", func() bool {
			out, err := runCLI(t, leader, "verify")
			return err == nil && strings.Contains(out, "OK: 3 servers")
		})
		var bad *serverProc
		for _, s := range servers {
			if s != leader {
				bad = s
				break
			}
		}
		if err := bad.proc.Stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		index := damageLog(t, bad.dataDir, rechecksum)
		if out, err := runCLI(t, nil, "replay", "--data-dir", bad.dataDir); !rechecksum && (err == nil || !strings.Contains(out, fmt.Sprint(index))) {
			t.Fatalf("replay of a log damaged at %d: %v\n%s", index, err, out)
		}
		restart(t, bad.proc)

		testcluster.WaitFor(t, 45*time.Second, bad.id+" named in a committed alarm", func() bool {
			return slices.ContainsFunc(alarmsOn(t, leader), func(a api.Alarm) bool { return a.Server == bad.id && a.Type == "corrupt" })
		})
		if got := alarmGauge(t, leader); got != "1" {
			t.Errorf("ice_alarm{type=\"corrupt\"} on %s = %q, want 1", leader.id, got)
		}
		out, err := runCLI(t, leader, "status")
		if err != nil || !strings.Contains(out, "ALARM:") || !strings.Contains(out, bad.id) {
			t.Errorf("ice status on %s: %v\n%s", leader.id, err, out)
		}
		testcluster.WaitFor(t, 15*time.Second, bad.id+" refuses reads", func() bool {
			c := bad.client()
			c.Stale = true
			_, err := c.Components(tctx(t, 2*time.Second))
			return api.IsStatus(err, http.StatusServiceUnavailable)
		})
		if _, err := runCLI(t, leader, "operator", "raft", "check"); err == nil {
			t.Error("ice operator raft check exits 0 with a corrupt server")
		}
		if _, err := leader.client().PutComponent(tctx(t, 10*time.Second), &api.ComponentSpec{Name: name + "-after", Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count}, nil); err != nil {
			t.Fatalf("write to the healthy majority: %v", err)
		}

		// Bring it back: remove-peer, stop, reset-data, start with --join.
		if out, err := runCLI(t, leader, "operator", "raft", "remove-peer", bad.id); err != nil {
			t.Fatalf("remove-peer: %v\n%s", err, out)
		}
		if err := bad.proc.Stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, nil, "operator", "raft", "reset-data", "--data-dir", bad.dataDir); err != nil {
			t.Fatalf("reset-data: %v\n%s", err, out)
		}
		args := bad.proc.Args()
		if i := slices.Index(args, "--bootstrap-expect"); i >= 0 {
			args = slices.Delete(args, i, i+2)
		}
		bad.proc = startIce(t, filepath.Dir(bad.dataDir), fmt.Sprintf("%s-rejoin%d", bad.id, round), args...)
		testcluster.WaitFor(t, 45*time.Second, bad.id+" rejoins with the cluster's state", func() bool {
			out, err := runCLI(t, leader, "verify")
			return err == nil && strings.Contains(out, "OK: 3 servers") && len(alarmsOn(t, leader)) == 0
		})
	}
}
