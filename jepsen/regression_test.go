package jepsen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Regression tests for bugs the harness found. They start real processes
// under uids of their own, so they need root (as CI runs); elsewhere they
// are skipped with a message, and in CI (CI=true) they fail instead:
//
//	sudo go test ./jepsen/ -run TestRegression -v

func needProcs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("regression tests need root (processes run under uids of their own); CI runs as root")
		}
		t.Skip("needs root (processes run under uids of their own): run with sudo")
	}
}

// agentProxy sits between an agent and a server: it forwards everything,
// and while failing is set answers 503 to the agent's heartbeats and
// transition reports (its watch of the runs placed on it still passes).
// It speaks HTTPS both ways: to the agent with a server certificate of the
// cluster (the agent accepts only those), to the server with the agent's
// own certificate, so that the server sees the agent it forwards for.
type agentProxy struct {
	srv     *httptest.Server
	failing atomic.Bool
}

func newAgentProxy(t *testing.T, c *Cluster, target, agentID string) *agentProxy {
	u, err := url.Parse("https://" + target)
	if err != nil {
		t.Fatal(err)
	}
	agentCert, agentKey, err := c.Creds.Cert(tlsutil.RoleAgent, agentID)
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := api.ClientTLS(c.Creds.CAFile, agentCert, agentKey, "")
	if err != nil {
		t.Fatal(err)
	}
	proxyCert, proxyKey, err := c.Creds.Cert(tlsutil.RoleServer, "jepsen-proxy")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(proxyCert, proxyKey)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{TLSClientConfig: upstream}
	rp.FlushInterval = -1
	p := &agentProxy{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.StreamPath {
			// The faults are by path: the agent's writes must come as
			// plain requests, as through a proxy without streams.
			w.Header().Set("Connection", "close")
			http.NotFound(w, r)
			return
		}
		if p.failing.Load() && r.Method == http.MethodPost &&
			(r.URL.Path == "/v1/agent/heartbeat" || r.URL.Path == "/v1/agent/transitions") {
			http.Error(w, `{"error":"jepsen: cut"}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	p.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

// regressionCluster builds ice, starts three servers with the given lease
// timings and one agent that talks to the servers only through an
// agentProxy to s1.
func regressionCluster(t *testing.T, ttl, margin time.Duration) (*Cluster, *Proc, *agentProxy) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := FindModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := AcquireLock(LockPath(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lock.Release)
	dir := t.TempDir()
	// The processes run under other uids: they must reach their dirs.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bins, err := Build(context.Background(), root, filepath.Join(root, "jepsen", "results", ".bin"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCluster(ClusterConfig{Servers: 3, Bin: bins, Dir: dir, LeaseTTL: ttl, LeaseMargin: margin,
		OnCrash: func(p *Proc, err error) { t.Errorf("%s exited on its own: %v", p.Name, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.StopAll()
		if t.Failed() {
			for _, p := range c.Procs() {
				if b, err := os.ReadFile(p.Log); err == nil {
					t.Logf("--- %s ---\n%s", p.Name, lastLines(string(b), 40))
				}
			}
		}
	})
	if err := c.StartServers(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Bootstrap(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	proxy := newAgentProxy(t, c, c.Servers[0].HTTP, "a1")
	a, err := c.newAgent(1, func(p *Proc, err error) { t.Errorf("a1 exited on its own: %v", err) }, "--server", proxy.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.Agents = append(c.Agents, a)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodesReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return c, a.Proc, proxy
}

// TestRegressionDroppedTeardownReportStrandsTheSlot reproduces what seed 5
// with --overlap found (jepsen/results/*-seed5, tick-0): a run the runtime
// ended (TERMINATED_BY_RUNTIME, "replaced by generation N") stayed in that
// state for good, so its slot never got a new run although every fault was
// healed and the node was ready.
//
// The agent queued the run's TERMINATED report; sending it failed while
// the agent could not renew its lease either, so the reporter dropped it
// ("dropping reports: lease lost", agent/reporter.go). The agent renewed
// its lease before TTL plus margin, so the node was never declared down
// and the runtime may not end the run itself (TERMINATED_BY_RUNTIME →
// TERMINATED is the agent's once its node is alive). When the agent synced
// again it saw the same run in the same state, but reportOnce
// (agent/watch.go) remembers the (from, to) pair as reported although the
// report was dropped, and never sends it again.
func TestRegressionDroppedTeardownReportStrandsTheSlot(t *testing.T) {
	needProcs(t)
	ttl, margin := 3*time.Second, 10*time.Second
	c, _, proxy := regressionCluster(t, ttl, margin)
	ctx := context.Background()
	ticks := filepath.Join(t.TempDir(), "ticks")
	if err := os.Chmod(filepath.Dir(ticks), 0o777); err != nil {
		t.Fatal(err)
	}
	life := &LifecycleWorkload{C: c, Names: []string{"tick-0"}, TickDir: ticks, Interval: 50 * time.Millisecond}
	rec, err := NewRecorder(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	life.Rec = rec
	if err := life.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := life.Deploy(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := life.WaitExecuting(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	first := liveRuns(t, c, "tick-0")[0]

	// Heartbeats and reports fail from now on; the watch still works.
	proxy.failing.Store(true)
	comp, err := c.AnyClient().Component(ctx, "tick-0")
	if err != nil {
		t.Fatal(err)
	}
	gen := comp.Generation
	e := WriteComponent(ctx, rec, LifecycleProcess, c.Servers[0], FDeploy, "tick-0", 99, &gen, life.spec)
	if e.Type != TOK {
		t.Fatalf("config change of tick-0: %s %s", e.Type, e.Error)
	}
	// The agent learns the run was ended, stops it, fails to report it,
	// and loses its lease (TTL) before the node is declared down
	// (TTL + margin).
	time.Sleep(ttl + 2*time.Second)
	proxy.failing.Store(false)

	// Everything is healed: the slot must get a new run.
	err = proctest.WaitFor(ctx, "a new EXECUTING run of tick-0", 20*time.Second, 300*time.Millisecond, func() (bool, error) {
		live := liveRuns(t, c, "tick-0")
		return len(live) == 1 && live[0].ID != first.ID && live[0].State == fsm.StateExecuting, nil
	})
	if err != nil {
		live := liveRuns(t, c, "tick-0")
		desc := ""
		for _, r := range live {
			desc += fmt.Sprintf(" %s %s on %s (%s);", r.ID, r.State, r.Node, r.Reason)
		}
		t.Fatalf("tick-0 has no new EXECUTING run %s after the agent got its lease back; live runs:%s", margin+5*time.Second, desc)
	}
}

func liveRuns(t *testing.T, c *Cluster, comp string) []fsm.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	runs, _, err := c.AnyClient().Runs(ctx, comp, nil)
	if err != nil {
		t.Logf("runs of %s: %v", comp, err)
		return nil
	}
	var out []fsm.Run
	for _, r := range runs {
		if r.State != fsm.StateTerminated {
			out = append(out, r)
		}
	}
	return out
}
