// The container test: it builds the FROM scratch image, starts the compose
// cluster of deploy/compose (three servers, three agents) on a real Docker
// engine, and checks failover there: a killed leader container and an agent
// container cut off the network. The cluster is secure, as the compose file
// makes it: the test's clients reach the servers over HTTPS, verified with
// the CA the cluster's one-shot service made, with the management token the
// bootstrap service printed; an anonymous client is refused.
//
// It needs a Docker engine and runs only with ICE_TEST_DOCKER=1, which
// `make test-docker` sets; there a missing engine is a failure, not a skip.
// It prints its progress (go test -v); on failure it prints the containers'
// logs. It always removes its compose project (`down -v`); should the test
// process itself be killed, the project name it printed (icetestNNN) is
// what to remove by hand.
//
// Optional environment: ICE_COMPOSE (the compose command, default `docker
// compose` if installed, else docker-compose), ICE_TEST_LEASE_TTL and
// ICE_TEST_LEASE_MARGIN (default 3s each).
package docker_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

const (
	gateEnv = "ICE_TEST_DOCKER"
	image   = "ice:test"
)

// The lease the servers run with: an agent that cannot renew for leaseTTL
// stops its runs; the leader replaces them after leaseTTL+leaseMargin.
var (
	leaseTTL    = envDuration("ICE_TEST_LEASE_TTL", 3*time.Second)
	leaseMargin = envDuration("ICE_TEST_LEASE_MARGIN", 3*time.Second)
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

var servers = []string{"s1", "s2", "s3"}

func TestComposeCluster(t *testing.T) {
	if os.Getenv(gateEnv) != "1" {
		t.Skip("needs a Docker engine: run `make test-docker` (it sets " + gateEnv + "=1)")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Fatalf("%s=1 but `docker info` fails: %v\n%s", gateEnv, err, out)
	}
	// Every phase below has its own deadline; this one bounds them all, well
	// inside `make test-docker`'s -timeout so that the cleanup always runs.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	root := repoRoot(t)

	t.Logf("building image %s (deploy/docker/build.sh)", image)
	build := exec.CommandContext(ctx, filepath.Join(root, "deploy/docker/build.sh"))
	build.Dir = root
	build.Env = append(os.Environ(), "ICE_IMAGE="+image, "ICE_IMAGE_VERSION_TAG=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build image: %v\n%s", err, out)
	}
	t.Logf("image built in %s", time.Since(start).Round(time.Millisecond))

	c := startCluster(ctx, t, root)
	t.Logf("cluster up: project %s, subnet %s.0/24, server APIs %v", c.project, c.subnet, c.ports)
	c.credentials(ctx, t)

	// 1. Three servers with a leader, three agents ready.
	var leader string
	c.poll(ctx, t, 2*time.Minute, "a leader among three voters", func(ctx context.Context) (bool, string, error) {
		st, err := c.client("s1").Status(ctx)
		if err != nil {
			return false, "", err
		}
		leader = st.Leader
		voters := 0
		for _, s := range st.Servers {
			if s.Voter && s.Gossip == "alive" {
				voters++
			}
		}
		return leader != "" && voters == 3, fmt.Sprintf("leader %q, %d alive voters", leader, voters), nil
	})
	c.checkSecure(ctx, t)
	c.poll(ctx, t, time.Minute, "three ready agents", func(ctx context.Context) (bool, string, error) {
		nodes, err := c.client("s1").Nodes(ctx)
		if err != nil {
			return false, "", err
		}
		ready := 0
		for _, n := range nodes {
			// The image ships every example plugin; ticker is the one deployed.
			if n.Status == fsm.NodeReady && slices.ContainsFunc(n.Plugins, func(p fsm.PluginInfo) bool { return p.Name == "ticker" }) {
				ready++
			}
		}
		return ready == 3, fmt.Sprintf("%d of %d nodes ready with the ticker plugin", ready, len(nodes)), nil
	})

	// 2. Deploy the ticker example through s1's published port.
	src, err := os.ReadFile(filepath.Join(root, "examples/ticker.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := api.ParseSpecFile("ticker.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Count == nil || *spec.Count != 2 {
		t.Fatal("examples/ticker.hcl: want count 2 (two agents busy, one free for the replacement)")
	}
	want := *spec.Count
	callCtx, callCancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := c.client("s1").PutComponent(callCtx, spec, nil)
	callCancel()
	if err != nil {
		t.Fatalf("deploy ticker: %v", err)
	}
	t.Logf("deployed ticker (count %d): generation %d at index %d", want, res.Generation, res.Index)
	var runs map[string]string // run id -> node
	c.poll(ctx, t, time.Minute, "both ticker runs EXECUTING on two nodes", func(ctx context.Context) (bool, string, error) {
		rs, _, err := c.any(ctx).Runs(ctx, "ticker", nil)
		if err != nil {
			return false, "", err
		}
		runs = executing(rs)
		return len(runs) == want && len(nodesOf(runs)) == want, describe(rs), nil
	})

	// 3. Kill the leader's container: a new leader, the same runs EXECUTING.
	t.Logf("killing the leader %s (docker kill)", leader)
	c.docker(ctx, t, "kill", c.container(ctx, t, leader))
	killed := time.Now()
	c.down[leader] = true
	c.poll(ctx, t, time.Minute, "a new leader", func(ctx context.Context) (bool, string, error) {
		var seen []string
		for _, s := range c.alive() {
			st, err := c.client(s).Status(ctx)
			if err != nil {
				seen = append(seen, s+": "+err.Error())
				continue
			}
			seen = append(seen, fmt.Sprintf("%s: leader %q", s, st.Leader))
			if st.Leader != "" && st.Leader != leader {
				leader = st.Leader
				return true, strings.Join(seen, "; "), nil
			}
		}
		return false, strings.Join(seen, "; "), nil
	})
	t.Logf("new leader %s, %s after the kill", leader, time.Since(killed).Round(time.Millisecond))
	// The agents renew their leases with the new leader: past TTL plus margin
	// the runs must be the same ones, still EXECUTING, on the same nodes.
	watch := leaseTTL + leaseMargin + 2*time.Second
	c.hold(ctx, t, watch, "the same runs EXECUTING after the leader change", func(ctx context.Context) (bool, string, error) {
		rs, _, err := c.any(ctx).Runs(ctx, "ticker", nil)
		if err != nil {
			return false, "", err
		}
		now := executing(rs)
		return maps.Equal(now, runs), describe(rs), nil
	})

	// The state says EXECUTING; the plugins must say so too: an agent that
	// fenced itself while the leader changed would have killed its plugin
	// and not told anyone yet. Every run ticked on, without a gap.
	for id, node := range runs {
		callCtx, callCancel := context.WithTimeout(ctx, 30*time.Second)
		ticks, err := c.ticks(callCtx, c.container(ctx, t, node))
		callCancel()
		if err != nil {
			t.Fatalf("read %s's ticker file: %v", node, err)
		}
		if err := continuous(ticks[id], killed.Add(-2*time.Second), time.Now(), 2500*time.Millisecond); err != nil {
			t.Fatalf("run %s on %s across the leader change: %v", short(id), node, err)
		}
		t.Logf("run %s on %s ticked on through the leader change (%d ticks in all)", short(id), node, len(ticks[id]))
	}

	// 4. Cut an agent holding a run off the network: it fences itself after
	// the lease TTL, the leader declares it down after TTL plus margin and
	// places its run on another agent.
	victimRun := slices.Sorted(maps.Keys(runs))[0]
	victim := runs[victimRun]
	victimCtr := c.container(ctx, t, victim)
	network := c.networkOf(ctx, t, victimCtr)
	t.Logf("disconnecting agent %s (run %s) from network %s", victim, short(victimRun), network)
	c.docker(ctx, t, "network", "disconnect", network, victimCtr)
	cut := time.Now()
	var replacement, replacementNode string
	c.poll(ctx, t, time.Minute, "the cut agent's run replaced on another agent", func(ctx context.Context) (bool, string, error) {
		cl := c.any(ctx)
		rs, _, err := cl.Runs(ctx, "ticker", nil)
		if err != nil {
			return false, "", err
		}
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return false, "", err
		}
		var victimStatus fsm.NodeStatus
		var statuses []string
		for _, n := range nodes {
			statuses = append(statuses, fmt.Sprintf("%s %s", n.ID, n.Status))
			if n.ID == victim {
				victimStatus = n.Status
			}
		}
		now := executing(rs)
		state := fmt.Sprintf("nodes %s; runs %s", strings.Join(statuses, ", "), describe(rs))
		// The runs of the agents still connected are not touched.
		for id, node := range runs {
			if node != victim && now[id] != node {
				t.Fatalf("run %s on %s, which stayed connected, is no longer EXECUTING: %s", short(id), node, state)
			}
		}
		if len(now) != want || victimStatus != fsm.NodeDown {
			return false, state, nil
		}
		for id, node := range now {
			if node == victim {
				return false, state, nil
			}
			if runs[id] == "" {
				replacement, replacementNode = id, node
			}
		}
		return replacement != "", state, nil
	})
	t.Logf("run %s replaced by %s on %s, %s after the disconnect (lease %s + margin %s)",
		short(victimRun), short(replacement), replacementNode, time.Since(cut).Round(time.Millisecond), leaseTTL, leaseMargin)

	// 5. At most one execution: the cut agent's plugin ticked for the last
	// time before the replacement ticked for the first time.
	var first int64
	c.poll(ctx, t, 30*time.Second, "the replacement ticking", func(ctx context.Context) (bool, string, error) {
		ticks, err := c.ticks(ctx, c.container(ctx, t, replacementNode))
		if err != nil {
			return false, "", err
		}
		n := ticks[replacement]
		if len(n) > 0 {
			first = n[0]
		}
		return len(n) >= 2, fmt.Sprintf("%d ticks", len(n)), nil
	})
	old, err := c.ticks(ctx, victimCtr)
	if err != nil {
		t.Fatalf("read the cut agent's ticker file: %v", err)
	}
	oldTicks := old[victimRun]
	if len(oldTicks) == 0 {
		t.Fatalf("no ticks of run %s in %s's ticker file", short(victimRun), victim)
	}
	last := oldTicks[len(oldTicks)-1]
	if last >= first {
		t.Fatalf("two executions of one slot: old run %s ticked at %d, after the replacement's first tick at %d",
			short(victimRun), last, first)
	}
	t.Logf("old run's last tick %s before the replacement's first tick", time.Duration(first-last).Round(time.Millisecond))
	t.Logf("passed in %s; tearing the cluster down", time.Since(start).Round(time.Millisecond))
}

// cluster is one compose project.
type cluster struct {
	compose []string // the compose command: docker compose, or docker-compose
	file    string
	project string
	subnet  string
	ports   map[string]int // server -> host port of its HTTP API
	env     []string
	down    map[string]bool // servers killed by the test
	caFile  string          // the cluster's CA, copied out of its tls volume
	token   string          // the management token's secret
}

// startCluster starts the compose project and registers its teardown.
func startCluster(ctx context.Context, t *testing.T, root string) *cluster {
	c := &cluster{
		compose: composeCommand(t),
		file:    filepath.Join(root, "deploy/compose/docker-compose.yml"),
		project: fmt.Sprintf("icetest%d%04d", os.Getpid(), rand.IntN(10000)),
		ports:   map[string]int{},
		down:    map[string]bool{},
	}
	t.Cleanup(func() {
		// Not the test's context: it may have expired.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := c.run(ctx, "logs", "--no-color", "--tail", "150")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := c.run(ctx, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		} else {
			t.Logf("compose project %s removed with its network and volumes", c.project)
		}
	})
	// A /24 of our own; another network may hold it already, then try the
	// next one.
	for attempt := 0; ; attempt++ {
		c.subnet = fmt.Sprintf("172.30.%d", 100+rand.IntN(150))
		c.env = []string{"ICE_IMAGE=" + image, "ICE_SUBNET=" + c.subnet, "ICE_GOSSIP_KEY=" + gossipKey(t),
			"ICE_LEASE_TTL=" + leaseTTL.String(), "ICE_LEASE_MARGIN=" + leaseMargin.String()}
		for i, s := range servers {
			c.ports[s] = freePort(t)
			c.env = append(c.env, fmt.Sprintf("ICE_S%d_PORT=%d", i+1, c.ports[s]))
		}
		out, err := c.run(ctx, "up", "-d")
		if err == nil {
			return c
		}
		if attempt < 4 && bytes.Contains(bytes.ToLower(out), []byte("overlap")) {
			t.Logf("subnet %s.0/24 taken, trying another", c.subnet)
			_, _ = c.run(ctx, "down", "-v", "--remove-orphans")
			continue
		}
		t.Fatalf("compose up: %v\n%s", err, out)
	}
}

// run runs a compose subcommand of the project.
func (c *cluster) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append(append(slices.Clone(c.compose[1:]), "-f", c.file, "-p", c.project), args...)
	cmd := exec.CommandContext(ctx, c.compose[0], full...)
	cmd.Env = append(os.Environ(), c.env...)
	return cmd.CombinedOutput()
}

// docker runs a docker command and fails the test if it fails.
func (c *cluster) docker(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container returns the container id of a compose service.
func (c *cluster) container(ctx context.Context, t *testing.T, service string) string {
	t.Helper()
	out, err := c.run(ctx, "ps", "-q", service)
	id := strings.TrimSpace(string(out))
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("container of service %s: %v\n%s", service, err, out)
	}
	return id
}

// networkOf returns the name of the (one) network a container is attached to.
func (c *cluster) networkOf(ctx context.Context, t *testing.T, ctr string) string {
	t.Helper()
	out := c.docker(ctx, t, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", ctr)
	nets := strings.Fields(out)
	if len(nets) != 1 {
		t.Fatalf("container %s is on networks %v, want one", ctr, nets)
	}
	return nets[0]
}

// client returns a management client of a server's published port: HTTPS
// verified with the cluster's CA, the bootstrap token.
func (c *cluster) client(server string) *api.Client {
	return c.clientWith(server, c.token)
}

// clientWith returns a client of a server's published port with token
// ("" for none).
func (c *cluster) clientWith(server, token string) *api.Client {
	cl, err := api.NewClientConfig(api.Config{Address: fmt.Sprintf("https://127.0.0.1:%d", c.ports[server]), CACert: c.caFile, Token: token})
	if err != nil {
		panic(fmt.Sprintf("client of %s: %v", server, err)) // the CA file was read once already
	}
	return cl
}

// alive returns the servers the test has not killed.
func (c *cluster) alive() []string {
	var out []string
	for _, s := range servers {
		if !c.down[s] {
			out = append(out, s)
		}
	}
	return out
}

// any returns a client for a live server that answers its status (s1's if
// none does); a follower forwards consistent reads to the leader.
func (c *cluster) any(ctx context.Context) *api.Client {
	for _, s := range c.alive() {
		cl := c.client(s)
		if _, err := cl.Status(ctx); err == nil {
			return cl
		}
	}
	return c.client(c.alive()[0])
}

// poll calls check every 250 ms until it reports done, failing the test at
// the deadline with the last state seen. Each call has a 5 s deadline; an
// error counts as "not yet". State changes are logged.
func (c *cluster) poll(ctx context.Context, t *testing.T, timeout time.Duration, what string, check func(context.Context) (bool, string, error)) {
	t.Helper()
	t.Logf("waiting for %s (up to %s)", what, timeout)
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done, state, err := check(callCtx)
		cancel()
		if err != nil {
			state = "error: " + err.Error()
		}
		if state != last {
			t.Logf("  %6s  %s", time.Since(start).Round(100*time.Millisecond), state)
			last = state
		}
		if done && err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v; last: %s", what, ctx.Err(), last)
		case <-deadline.C:
			t.Fatalf("no %s within %s; last: %s", what, timeout, last)
		case <-tick.C:
		}
	}
}

// hold checks, every 250 ms for d, that check holds; errors (a server not
// answering) are tolerated, a false answer fails the test at once.
func (c *cluster) hold(ctx context.Context, t *testing.T, d time.Duration, what string, check func(context.Context) (bool, string, error)) {
	t.Helper()
	t.Logf("checking %s for %s", what, d)
	end := time.Now().Add(d)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	answers := 0
	var last string
	for time.Now().Before(end) {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, state, err := check(callCtx)
		cancel()
		switch {
		case err != nil:
			if s := "error: " + err.Error(); s != last {
				t.Logf("  %s", s)
				last = s
			}
		case !ok:
			t.Fatalf("%s: no longer: %s", what, state)
		default:
			answers++
			if state != last {
				t.Logf("  %s", state)
				last = state
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
	if answers == 0 {
		t.Fatalf("%s: no server answered for %s", what, d)
	}
}

// ticks reads /tmp/ice-ticker.log out of a container (docker cp works on a
// container without a shell, even one cut off the network): run id -> tick
// times in unix nanos.
func (c *cluster) ticks(ctx context.Context, ctr string) (map[string][]int64, error) {
	out, err := exec.CommandContext(ctx, "docker", "cp", ctr+":/tmp/ice-ticker.log", "-").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("docker cp: %w", err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	if _, err := tr.Next(); err != nil {
		return nil, fmt.Errorf("read docker cp archive: %w", err)
	}
	ticks := map[string][]int64{}
	sc := bufio.NewScanner(tr)
	for sc.Scan() {
		f := strings.Fields(sc.Text()) // epoch run_id unix_nanos
		if len(f) != 3 {
			continue // a line being written
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		ticks[f[1]] = append(ticks[f[1]], ns)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return ticks, nil
}

// continuous checks that ticks (unix nanos, ascending) cover [from, to] with
// no gap longer than maxGap.
func continuous(ticks []int64, from, to time.Time, maxGap time.Duration) error {
	prev := from.UnixNano()
	for _, tk := range ticks {
		if tk < prev {
			continue
		}
		if gap := time.Duration(tk - prev); gap > maxGap {
			return fmt.Errorf("no tick for %s from %s (the plugin was stopped)", gap.Round(time.Millisecond), time.Unix(0, prev).UTC().Format("15:04:05.000"))
		}
		prev = tk
	}
	if gap := time.Duration(to.UnixNano() - prev); gap > maxGap {
		return fmt.Errorf("no tick since %s, %s before the check (the plugin was stopped)", time.Unix(0, prev).UTC().Format("15:04:05.000"), gap.Round(time.Millisecond))
	}
	return nil
}

// composeCommand is $ICE_COMPOSE, else `docker compose` where the plugin is
// installed, else docker-compose.
func composeCommand(t *testing.T) []string {
	if v := os.Getenv("ICE_COMPOSE"); v != "" {
		return strings.Fields(v)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Fatal("neither `docker compose` nor docker-compose is installed (or set ICE_COMPOSE)")
	return nil
}

// executing returns the EXECUTING runs: id -> node.
func executing(rs []fsm.Run) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if r.State == fsm.StateExecuting {
			out[r.ID] = r.Node
		}
	}
	return out
}

func nodesOf(runs map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, n := range runs {
		out[n] = true
	}
	return out
}

func describe(rs []fsm.Run) string {
	var parts []string
	for _, r := range rs {
		p := fmt.Sprintf("%s@%s %s", short(r.ID), r.Node, r.State)
		if r.Reason != "" {
			p += " (" + r.Reason + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no runs"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// repoRoot is the module root: go test runs in the package directory,
// two levels below it.
func repoRoot(t *testing.T) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}
