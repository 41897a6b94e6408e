package jepsen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Identities of the processes the harness starts. Every process runs under
// a uid of its own and binds its addresses to a loopback IP of its own, so
// that an iptables rule "packets of uid U to IP X" cuts exactly one
// direction of one pair of processes (see netfilter.go). All of 127.0.0.0/8
// routes to lo on Linux, and uids need no /etc/passwd entry.
const (
	serverUIDBase = 47100 // s1 runs as 47101, s2 as 47102, ...
	agentUIDBase  = 47200 // a1 runs as 47201, ...
	serverIPNet   = "127.0.10."
	agentIPNet    = "127.0.20."
)

// Binaries are the built ice binary and plugin directory.
type Binaries struct {
	Ice       string
	PluginDir string
}

// Build compiles cmd/ice and the ticker plugin of the module at root into
// dir (readable by the uids the processes run as).
func Build(ctx context.Context, root, dir string) (*Binaries, error) {
	b := &Binaries{Ice: filepath.Join(dir, "ice"), PluginDir: filepath.Join(dir, "plugins")}
	if err := os.MkdirAll(b.PluginDir, 0o755); err != nil {
		return nil, err
	}
	for _, step := range [][2]string{
		{b.Ice, "./cmd/ice"},
		{filepath.Join(b.PluginDir, "ticker"), "./plugins/examples/ticker"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", step[0], step[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", step[1], err, out)
		}
	}
	for _, d := range []string{dir, b.PluginDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// FindModuleRoot walks up from dir to the directory holding ICE's go.mod.
func FindModuleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/ice-run/ice\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of github.com/ice-run/ice above %s", dir)
		}
	}
}

// Proc is one `ice` process of the cluster: where it runs (its uid and
// loopback IP, its arguments and log as first laid out) and the harness
// process that starts, kills, pauses and restarts it. A restart runs the
// same arguments and environment as the last start unless SetRun changed
// them (a clock offset, a replacement server without --bootstrap-expect).
type Proc struct {
	Name string
	Role string // "server" or "agent"
	IP   string
	UID  int
	// Args are the arguments the process was laid out with.
	Args []string
	Log  string

	spec   proctest.Spec // the layout's spec: Args and the base Env
	onExit func(p *Proc, err error)

	mu   sync.Mutex
	cur  *proctest.Process
	args []string // of cur
	env  []string // of cur, beyond the base
}

// newProc lays out a process running bin with args as uid; onExit (may be
// nil) is called when it exits without the harness having killed or
// stopped it (a crash).
func newProc(name, role, ip string, uid int, bin, log string, args []string, onExit func(p *Proc, err error)) *Proc {
	p := &Proc{Name: name, Role: role, IP: ip, UID: uid, Args: args, Log: log, onExit: onExit,
		spec: proctest.Spec{Name: name, Bin: bin, Args: args, Env: []string{"HOME=/tmp"}, LogPath: log,
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), NoSetGroups: true}}}
	p.cur, p.args = p.newProcess(args, nil), args
	return p
}

func (p *Proc) newProcess(args, env []string) *proctest.Process {
	spec := p.spec
	spec.Args = args
	spec.Env = append(append([]string(nil), p.spec.Env...), env...)
	if p.onExit != nil {
		spec.OnExit = func(_ *proctest.Process, err error) { p.onExit(p, err) }
	}
	return proctest.New(spec)
}

func (p *Proc) proc() *proctest.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// SetRun sets the arguments and the extra environment of the next starts
// (nil env: none). The process must not run.
func (p *Proc) SetRun(args, env []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.Running() {
		return fmt.Errorf("change how %s runs: %w", p.Name, proctest.ErrRunning)
	}
	if slices.Equal(args, p.args) && slices.Equal(env, p.env) {
		return nil
	}
	if done := p.cur.Done(); done != nil {
		<-done // the last run is reaped: nothing refers to it any more
	}
	p.cur, p.args, p.env = p.newProcess(args, env), slices.Clone(args), slices.Clone(env)
	return nil
}

// RunArgs returns the arguments and extra environment of the current (or
// next) start.
func (p *Proc) RunArgs() (args, env []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.args), slices.Clone(p.env)
}

// Start starts the process (again), as the last SetRun said.
func (p *Proc) Start() error { return p.proc().Start() }

// Stop sends SIGTERM and waits up to timeout, then kills (proctest).
func (p *Proc) Stop(timeout time.Duration) error { return p.proc().Stop(timeout) }

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() error { return p.proc().Kill() }

// Pause stops the process with SIGSTOP.
func (p *Proc) Pause() error { return p.proc().Pause() }

// Resume continues a paused process with SIGCONT.
func (p *Proc) Resume() error { return p.proc().Resume() }

// Running reports whether the process runs (possibly paused).
func (p *Proc) Running() bool { return p.proc().Running() }

// Paused reports whether the process runs and is paused.
func (p *Proc) Paused() bool { return p.proc().Paused() }

// PID returns the process id of the running process, or 0.
func (p *Proc) PID() int { return p.proc().PID() }

// Server is an `ice server` process and its addresses.
type Server struct {
	*Proc
	ID      string
	HTTP    string
	Raft    string
	Gossip  string
	DataDir string
	// Tmpfs says the data dir is a tmpfs mount of its own (disk.go).
	Tmpfs bool
	// api is the management client Client copies.
	api *api.Client
}

// Client returns a management client of the server: HTTPS verified with
// the cluster's CA, the management token Bootstrap created. The clients of
// one server share its connections; each call returns a copy the caller
// may change (Stale).
func (s *Server) Client() *api.Client {
	c := *s.api
	return &c
}

// Agent is an `ice agent` process.
type Agent struct {
	*Proc
	ID      string
	Gossip  string
	DataDir string
}

// ClusterConfig says what to start.
type ClusterConfig struct {
	Servers, Agents int
	Bin             *Binaries
	Dir             string // results dir: data/ and logs/ go below it
	LeaseTTL        time.Duration
	LeaseMargin     time.Duration
	// Snapshot tuning passed to the servers when not zero.
	SnapshotThreshold, TrailingLogs uint64
	SnapshotInterval                time.Duration
	// ServerArgs are added to every server's arguments.
	ServerArgs []string
	// TmpfsMiB, when not zero, puts each server's data dir on a tmpfs of
	// its own of that many MiB (disk.go), so that a disk can be filled.
	TmpfsMiB int
	// OnCrash is called when a process exits that the harness did not stop.
	OnCrash func(p *Proc, err error)
}

// Cluster is the set of processes under test.
type Cluster struct {
	cfg     ClusterConfig
	Servers []*Server
	Agents  []*Agent
	// Creds are the cluster's credentials (in Dir/creds): every process
	// runs secure, as ICE does by default.
	Creds *clustercreds.Creds
}

// NewCluster lays out the processes (addresses, uids, data dirs, and the
// credentials: a CA, a server certificate per server naming its loopback
// IP, an agent certificate per agent, a gossip key and the management
// token's secret) without starting them.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg}
	for _, d := range []string{"data", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if c.Creds, err = clustercreds.New(filepath.Join(cfg.Dir, "creds")); err != nil {
		return nil, err
	}
	for i := range cfg.Servers {
		s := &Server{ID: fmt.Sprintf("s%d", i+1)}
		as, err := proctest.FreeAddrs(serverIPNet+strconv.Itoa(i+1), 3)
		if err != nil {
			return nil, err
		}
		s.HTTP, s.Raft, s.Gossip = as[0], as[1], as[2]
		s.DataDir = filepath.Join(cfg.Dir, "data", s.ID)
		if s.api, err = c.Creds.Client(s.HTTP); err != nil {
			return nil, err
		}
		c.Servers = append(c.Servers, s)
	}
	for i, s := range c.Servers {
		args := []string{"server", "--node-id", s.ID, "--data-dir", s.DataDir,
			"--http", s.HTTP, "--raft", s.Raft, "--gossip", s.Gossip,
			"--bootstrap-expect", strconv.Itoa(cfg.Servers),
			"--lease-ttl", cfg.LeaseTTL.String(), "--lease-margin", cfg.LeaseMargin.String(),
			"--log-level", "debug"}
		if cfg.SnapshotThreshold > 0 {
			args = append(args, "--snapshot-threshold", strconv.FormatUint(cfg.SnapshotThreshold, 10))
		}
		if cfg.TrailingLogs > 0 {
			args = append(args, "--trailing-logs", strconv.FormatUint(cfg.TrailingLogs, 10))
		}
		if cfg.SnapshotInterval > 0 {
			args = append(args, "--snapshot-interval", cfg.SnapshotInterval.String())
		}
		for j, o := range c.Servers {
			if j != i {
				args = append(args, "--join", o.Gossip)
			}
		}
		ip := serverIPNet + strconv.Itoa(i+1)
		sec, err := c.Creds.Flags(tlsutil.RoleServer, s.ID, ip)
		if err != nil {
			return nil, err
		}
		args = append(args, sec...)
		args = append(args, cfg.ServerArgs...)
		s.Proc = newProc(s.ID, "server", ip, serverUIDBase+i+1, cfg.Bin.Ice,
			filepath.Join(cfg.Dir, "logs", s.ID+".log"), args, cfg.OnCrash)
		if err := ownedDir(s.DataDir, s.UID); err != nil {
			return nil, err
		}
		if cfg.TmpfsMiB > 0 {
			if err := mountTmpfs(s.DataDir, cfg.TmpfsMiB, s.UID); err != nil {
				c.unmountAll()
				return nil, err
			}
			s.Tmpfs = true
		}
	}
	for i := range cfg.Agents {
		a, err := c.newAgent(i+1, cfg.OnCrash)
		if err != nil {
			return nil, err
		}
		c.Agents = append(c.Agents, a)
	}
	return c, nil
}

// newAgent lays out agent number n (a1 is 1), joined to every server, with
// extra arguments; onExit is called when it crashes.
func (c *Cluster) newAgent(n int, onExit func(p *Proc, err error), extra ...string) (*Agent, error) {
	ip := agentIPNet + strconv.Itoa(n)
	a := &Agent{ID: fmt.Sprintf("a%d", n), DataDir: filepath.Join(c.cfg.Dir, "data", fmt.Sprintf("a%d", n))}
	var err error
	if a.Gossip, err = proctest.FreeAddr(ip); err != nil {
		return nil, err
	}
	args := []string{"agent", "--node-id", a.ID, "--data-dir", a.DataDir, "--gossip", a.Gossip,
		"--plugin-dir", c.cfg.Bin.PluginDir, "--log-level", "debug"}
	sec, err := c.Creds.Flags(tlsutil.RoleAgent, a.ID)
	if err != nil {
		return nil, err
	}
	args = append(args, sec...)
	args = append(args, extra...)
	for _, s := range c.Servers {
		args = append(args, "--join", s.Gossip)
	}
	a.Proc = newProc(a.ID, "agent", ip, agentUIDBase+n, c.cfg.Bin.Ice, filepath.Join(c.cfg.Dir, "logs", a.ID+".log"), args, onExit)
	if err := ownedDir(a.DataDir, a.UID); err != nil {
		return nil, err
	}
	return a, nil
}

func ownedDir(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, uid, uid)
}

// Procs returns every process, servers first.
func (c *Cluster) Procs() []*Proc {
	var out []*Proc
	for _, s := range c.Servers {
		out = append(out, s.Proc)
	}
	for _, a := range c.Agents {
		out = append(out, a.Proc)
	}
	return out
}

// Server returns the server with the given id.
func (c *Cluster) Server(id string) *Server {
	for _, s := range c.Servers {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// StartServers starts every server.
func (c *Cluster) StartServers() error {
	for _, s := range c.Servers {
		if err := s.Start(); err != nil {
			return err
		}
	}
	return nil
}

// StartAgents starts every agent.
func (c *Cluster) StartAgents() error {
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Leader asks the running, unpaused servers who leads; it returns the
// server most of them name, or nil.
func (c *Cluster) Leader(ctx context.Context) *Server {
	votes := map[string]int{}
	for _, s := range c.Servers {
		if !s.Running() || s.Paused() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := s.Client().Status(rctx)
		cancel()
		if err == nil && st.Leader != "" {
			votes[st.Leader]++
		}
	}
	best, n := "", 0
	for id, v := range votes {
		if v > n || (v == n && id < best) {
			best, n = id, v
		}
	}
	return c.Server(best)
}

// WaitLeader waits until every running server names one leader that is
// itself running.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (*Server, error) {
	var leader *Server
	err := proctest.WaitFor(ctx, "a leader all running servers agree on", timeout, 200*time.Millisecond, func() (bool, error) {
		id := ""
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := s.Client().Status(rctx)
			cancel()
			if err != nil {
				return false, fmt.Errorf("status of %s: %w", s.ID, err)
			}
			if st.Leader == "" || (id != "" && st.Leader != id) {
				return false, fmt.Errorf("%s names leader %q, another %q", s.ID, st.Leader, id)
			}
			id = st.Leader
		}
		leader = c.Server(id)
		return leader != nil && leader.Running(), nil
	})
	if err != nil {
		return nil, err
	}
	return leader, nil
}

// Bootstrap creates the management token the clients use, through a
// running server once a leader exists, and waits until every running
// server knows it in its own state (stale reads check it there).
func (c *Cluster) Bootstrap(ctx context.Context, timeout time.Duration) error {
	var via *Server
	for _, s := range c.Servers {
		if s.Running() {
			via = s
			break
		}
	}
	if via == nil {
		return fmt.Errorf("bootstrap ACLs: no server running")
	}
	if err := c.Creds.Bootstrap(ctx, via.HTTP, timeout); err != nil {
		return err
	}
	return proctest.WaitFor(ctx, "every server to know the management token", timeout, 100*time.Millisecond, func() (bool, error) {
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			cl := s.Client()
			cl.Stale = true
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cl.TokenSelf(rctx)
			cancel()
			if err != nil {
				return false, fmt.Errorf("%s: %w", s.ID, err)
			}
		}
		return true, nil
	})
}

// AnyClient returns a client of a running, unpaused server.
func (c *Cluster) AnyClient() *api.Client {
	for _, s := range c.Servers {
		if s.Running() && !s.Paused() {
			return s.Client()
		}
	}
	return c.Servers[0].Client()
}

// WaitNodesReady waits until every agent's node is ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, timeout time.Duration) error {
	return proctest.WaitFor(ctx, "every agent's node ready", timeout, 250*time.Millisecond, func() (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		nodes, err := c.AnyClient().Nodes(rctx)
		if err != nil {
			return false, err
		}
		ready := map[string]bool{}
		for _, n := range nodes {
			ready[n.ID] = n.Status == "ready"
		}
		for _, a := range c.Agents {
			if !ready[a.ID] {
				return false, fmt.Errorf("node %s not ready", a.ID)
			}
		}
		return true, nil
	})
}

// Close stops every process and unmounts the servers' tmpfs data dirs,
// keeping their contents in place on the disk below (disk.go).
func (c *Cluster) Close() []string {
	c.StopAll()
	return c.unmountAll()
}

// StopAll stops agents then servers (SIGTERM, then SIGKILL), and kills
// every process left running under the agents' uids: plugins survive their
// agent by design.
func (c *Cluster) StopAll() {
	c.StopAgents()
	c.StopServers()
}

// StopAgents stops every agent (SIGTERM, then SIGKILL) and kills the
// plugins left running under their uids.
func (c *Cluster) StopAgents() {
	var wg sync.WaitGroup
	for _, a := range c.Agents {
		wg.Go(func() { _ = a.Stop(5 * time.Second) })
	}
	wg.Wait()
	c.KillPlugins()
}

// StopServers stops every server (SIGTERM, then SIGKILL), all at once.
func (c *Cluster) StopServers() {
	var wg sync.WaitGroup
	for _, s := range c.Servers {
		wg.Go(func() { _ = s.Stop(10 * time.Second) })
	}
	wg.Wait()
}

// KillPlugins SIGKILLs every process running under an agent's uid (the
// plugins the agents started), found through /proc.
func (c *Cluster) KillPlugins() {
	uids := map[int]bool{}
	for _, a := range c.Agents {
		uids[a.UID] = true
	}
	for _, pid := range pidsOfUIDs(uids) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsOfUIDs lists the processes whose real uid is in uids.
func pidsOfUIDs(uids map[int]bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		v, err := proctest.StatusField(pid, "Uid")
		if err != nil {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			if uid, err := strconv.Atoi(f[0]); err == nil && uids[uid] {
				out = append(out, pid)
			}
		}
	}
	return out
}
