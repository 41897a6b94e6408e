package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

type serverProc struct {
	id      string
	http    string
	raft    string
	gossip  string
	dataDir string
	proc    *proctest.Process
	creds   *clustercreds.Creds
	// api is the server's management client, which client copies.
	api *api.Client
}

// startServers starts n `ice server` processes that bootstrap together,
// secure with the test's credentials (credsOf), and bootstraps their ACLs;
// extra flags go to every server.
func startServers(t *testing.T, n int, extra ...string) []*serverProc {
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
		args := []string{"server",
			"--node-id", id,
			"--data-dir", filepath.Join(dir, id),
			"--http", as[i].http, "--raft", as[i].raft, "--gossip", as[i].gossip,
			"--bootstrap-expect", fmt.Sprint(n),
			"--log-level", "debug",
		}
		for j := 0; j < n; j++ {
			if j != i {
				args = append(args, "--join", as[j].gossip)
			}
		}
		args = append(args, secureFlags(t, creds, tlsutil.RoleServer, id)...)
		args = append(args, extra...)
		c, err := creds.Client(as[i].http)
		if err != nil {
			t.Fatalf("client of %s: %v", id, err)
		}
		out = append(out, &serverProc{id: id, http: as[i].http, raft: as[i].raft, gossip: as[i].gossip,
			dataDir: filepath.Join(dir, id), proc: startIce(t, dir, id, args...), creds: creds, api: c})
	}
	bootstrapACLs(t, out)
	return out
}

// credsByTest holds each running test's credentials.
var credsByTest sync.Map // *testing.T → *clustercreds.Creds

// credsOf returns the credentials of the test (a CA, certificates, a
// gossip key and a management token), made on first use: every cluster a
// test starts shares them, so that a snapshot of one restores onto another
// with the same management token.
func credsOf(t *testing.T) *clustercreds.Creds {
	t.Helper()
	if c, ok := credsByTest.Load(t); ok {
		return c.(*clustercreds.Creds)
	}
	c, err := clustercreds.New(filepath.Join(t.TempDir(), "creds"))
	if err != nil {
		t.Fatalf("make credentials: %v", err)
	}
	credsByTest.Store(t, c)
	t.Cleanup(func() { credsByTest.Delete(t) })
	return c
}

// secureFlags are the TLS and gossip-key flags of a server or agent.
func secureFlags(t *testing.T, creds *clustercreds.Creds, role tlsutil.Role, node string) []string {
	t.Helper()
	flags, err := creds.Flags(role, node)
	if err != nil {
		t.Fatalf("credentials of %s %s: %v", role, node, err)
	}
	return flags
}

// bootstrapACLs creates the management token once a leader exists, and
// waits until every server knows it in its own state (a follower checks
// some requests, such as the Raft peers, against its local state).
func bootstrapACLs(t *testing.T, servers []*serverProc) {
	t.Helper()
	creds := servers[0].creds
	if err := creds.Bootstrap(tctx(t, 60*time.Second), servers[0].http, 45*time.Second); err != nil {
		t.Fatalf("bootstrap ACLs: %v", err)
	}
	for _, s := range servers {
		testcluster.WaitFor(t, 20*time.Second, "the management token known to "+s.id, func() bool {
			c := s.client()
			c.Stale = true
			_, err := c.TokenSelf(tctx(t, 2*time.Second))
			return err == nil
		})
	}
}

// startIce starts the ice binary with args for the test, its output in
// dir/name.log.
func startIce(t *testing.T, dir, name string, args ...string) *proctest.Process {
	t.Helper()
	return proctest.StartT(t, proctest.Spec{Name: name, Bin: iceBin, Args: args, LogPath: filepath.Join(dir, name+".log")})
}

// restart starts a stopped process again with the same arguments.
func restart(t *testing.T, p *proctest.Process) {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// client returns a management client of the server (HTTPS, the test's
// CA and management token). Clients of one server share their
// connections; each call returns a copy the caller may change (Stale,
// Operator).
func (s *serverProc) client() *api.Client {
	c := *s.api
	return &c
}

func tctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitLeader waits until every listed server names the same leader.
func waitLeader(t *testing.T, servers []*serverProc, timeout time.Duration) *serverProc {
	t.Helper()
	var leader *serverProc
	testcluster.WaitFor(t, timeout, "one leader all running servers agree on", func() bool {
		leader = nil
		id := ""
		for _, s := range servers {
			st, err := s.client().Status(tctx(t, time.Second))
			if err != nil || st.Leader == "" || (id != "" && st.Leader != id) {
				return false
			}
			id = st.Leader
		}
		for _, s := range servers {
			if s.id == id {
				leader = s
			}
		}
		return leader != nil
	})
	return leader
}

// runCLI runs an `ice` verb against server s (its address, CA and the
// management token in the environment; s nil: a verb that reaches no
// server) and returns its combined output.
func runCLI(t *testing.T, s *serverProc, args ...string) (string, error) {
	t.Helper()
	out, err := cliCommand(s, args...).CombinedOutput()
	return string(out), err
}

// cliCommand is the command of an `ice` verb against s (nil: none).
func cliCommand(s *serverProc, args ...string) *exec.Cmd {
	cmd := exec.Command(iceBin, args...)
	cmd.Env = os.Environ()
	if s != nil {
		cmd.Env = append(cmd.Env, s.creds.Env(s.http)...)
	}
	return cmd
}

// TestThreeServerProcessesSurviveLeaderKill is the end-to-end check of the
// replicated core: three real `ice server` processes, writes through a
// follower, SIGKILL of the leader, a new leader, every acknowledged write
// present, the killed server restarted, and equal digests everywhere.
func TestThreeServerProcessesSurviveLeaderKill(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 20*time.Second)
	var follower *serverProc
	for _, s := range servers {
		if s != leader {
			follower = s
			break
		}
	}

	// Writes through a follower are forwarded to the leader.
	var acked []string
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("web%d", i)
		count := 2
		_, err := follower.client().PutComponent(tctx(t, 10*time.Second), &api.ComponentSpec{
			Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count,
		}, nil)
		if err != nil {
			t.Fatalf("put %s through follower %s: %v", name, follower.id, err)
		}
		acked = append(acked, name)
	}
	testcluster.WaitFor(t, 10*time.Second, "20 CREATED runs", func() bool {
		runs, _, err := follower.client().Runs(tctx(t, 2*time.Second), "", nil)
		return err == nil && len(runs) == 20
	})

	// SIGKILL the leader; the survivors elect a new one.
	killed := time.Now()
	if err := leader.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	var survivors []*serverProc
	for _, s := range servers {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	newLeader := waitLeader(t, survivors, 15*time.Second)
	if newLeader == leader {
		t.Fatal("killed server still reported as leader")
	}
	// Writes are accepted again (measured, not asserted: speed belongs to
	// the benchmark).
	name := "after-kill"
	count := 1
	testcluster.WaitFor(t, 15*time.Second, "a write accepted after the leader was killed", func() bool {
		_, err := survivors[0].client().PutComponent(tctx(t, 3*time.Second), &api.ComponentSpec{
			Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count,
		}, nil)
		return err == nil
	})
	acked = append(acked, name)
	t.Logf("writes accepted %s after SIGKILL of leader %s; new leader %s", time.Since(killed).Round(time.Millisecond), leader.id, newLeader.id)

	// Every acknowledged write is on every survivor.
	for _, s := range survivors {
		comps, err := s.client().Components(tctx(t, 5*time.Second))
		if err != nil {
			t.Fatalf("list components on %s: %v", s.id, err)
		}
		have := map[string]bool{}
		for _, c := range comps {
			have[c.Name] = true
		}
		for _, n := range acked {
			if !have[n] {
				t.Fatalf("acknowledged component %s lost on %s", n, s.id)
			}
		}
	}

	// Restart the killed server from its data dir; all three converge.
	restart(t, leader.proc)
	waitLeader(t, servers, 20*time.Second)
	var out string
	testcluster.WaitFor(t, 20*time.Second, "ice verify to report equal digests on all three servers", func() bool {
		var err error
		out, err = runCLI(t, survivors[0], "verify")
		return err == nil && strings.Contains(out, "OK")
	})
	t.Logf("ice verify:\n%s", out)

	checkMetrics(t, newLeader)

	// SIGTERM stops a server cleanly.
	if err := survivors[1].proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", survivors[1].id, err)
	}
	testcluster.WaitFor(t, 15*time.Second, "the server to exit after SIGTERM", func() bool { return !survivors[1].proc.Running() })
	if code := survivors[1].proc.ExitCode(); code != 0 {
		t.Fatalf("server exited with status %d after SIGTERM, want 0", code)
	}
}

// checkMetrics fetches /metrics from a real server and has promtool lint it.
// promtool comes from Debian's prometheus package (.ci/install-tools.sh);
// CI fails without it, a developer machine only logs that it was not run.
func checkMetrics(t *testing.T, s *serverProc) {
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
	for _, want := range []string{"ice_fsm_apply", "raft_", "ice_http_request"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics has no %s series", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed in CI: run .ci/install-tools.sh")
		}
		t.Logf("promtool not installed: /metrics not linted (CI lints it)")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
