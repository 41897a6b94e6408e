package jepsen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ice-run/ice/api"
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
			return nil, fmt.Errorf("go build %s: %v\n%s", step[1], err, out)
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

// Proc is one `ice` process: started, killed, paused and restarted with the
// same arguments and data dir.
type Proc struct {
	Name string
	Role string // "server" or "agent"
	IP   string
	UID  int
	Args []string
	Log  string
	Bin  string
	// onExit is called when the process exits without the harness having
	// killed or stopped it (a crash).
	onExit func(p *Proc, err error)

	mu       sync.Mutex
	cmd      *exec.Cmd
	running  bool
	paused   bool
	expected bool // the harness caused the coming exit
	done     chan struct{}
	starts   int
}

// Start starts the process (again).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return fmt.Errorf("%s is already running", p.Name)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log %s: %w", p.Log, err)
	}
	p.starts++
	fmt.Fprintf(f, "\n==== jepsen: start #%d of %s at %s ====\n", p.starts, p.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "HOME=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.UID), NoSetGroups: true},
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("exec %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.running, p.paused, p.expected, p.done = cmd, true, false, false, done
	go func() {
		err := cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		expected := p.expected
		p.running, p.paused = false, false
		p.mu.Unlock()
		close(done)
		if !expected && p.onExit != nil {
			p.onExit(p, err)
		}
	}()
	return nil
}

// Running reports whether the process is up (possibly paused).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Paused reports whether the process is stopped with SIGSTOP.
func (p *Proc) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running && p.paused
}

// Pid returns the pid of the running process, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the process (not its plugins, which run in process
// groups of their own) and waits for it to exit.
func (p *Proc) Kill() {
	p.signalExit(syscall.SIGKILL, 10*time.Second)
}

// Terminate sends SIGTERM and waits up to timeout, then SIGKILL.
func (p *Proc) Terminate(timeout time.Duration) {
	if !p.signalExit(syscall.SIGTERM, timeout) {
		p.Kill()
	}
}

func (p *Proc) signalExit(sig syscall.Signal, timeout time.Duration) bool {
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return true
	}
	p.expected = true
	proc, done, paused := p.cmd.Process, p.done, p.paused
	p.mu.Unlock()
	_ = proc.Signal(sig)
	if paused && sig != syscall.SIGKILL {
		_ = proc.Signal(syscall.SIGCONT)
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Pause sends SIGSTOP.
func (p *Proc) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return fmt.Errorf("%s is not running", p.Name)
	}
	p.paused = true
	return p.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume sends SIGCONT.
func (p *Proc) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return fmt.Errorf("%s is not running", p.Name)
	}
	p.paused = false
	return p.cmd.Process.Signal(syscall.SIGCONT)
}

// Server is an `ice server` process and its addresses.
type Server struct {
	*Proc
	ID      string
	HTTP    string
	Raft    string
	Gossip  string
	DataDir string
}

// Client returns an API client for the server.
func (s *Server) Client() *api.Client {
	c := api.NewClient(s.HTTP)
	c.Operator = "jepsen"
	return c
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
	// OnCrash is called when a process exits that the harness did not stop.
	OnCrash func(p *Proc, err error)
}

// Cluster is the set of processes under test.
type Cluster struct {
	cfg     ClusterConfig
	Servers []*Server
	Agents  []*Agent
}

// freePort returns a port free for TCP and UDP on ip.
func freePort(ip string) (string, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		_ = pc.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port on %s", ip)
}

// NewCluster lays out the processes (addresses, uids, data dirs) without
// starting them.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg}
	for _, d := range []string{"data", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Servers {
		ip := serverIPNet + strconv.Itoa(i+1)
		s := &Server{ID: fmt.Sprintf("s%d", i+1)}
		var err error
		for _, a := range []*string{&s.HTTP, &s.Raft, &s.Gossip} {
			if *a, err = freePort(ip); err != nil {
				return nil, err
			}
		}
		s.DataDir = filepath.Join(cfg.Dir, "data", s.ID)
		s.Proc = &Proc{Name: s.ID, Role: "server", IP: ip, UID: serverUIDBase + i + 1, Bin: cfg.Bin.Ice,
			Log: filepath.Join(cfg.Dir, "logs", s.ID+".log"), onExit: cfg.OnCrash}
		c.Servers = append(c.Servers, s)
	}
	for i, s := range c.Servers {
		s.Args = []string{"server", "--node-id", s.ID, "--data-dir", s.DataDir,
			"--http", s.HTTP, "--raft", s.Raft, "--gossip", s.Gossip,
			"--bootstrap-expect", strconv.Itoa(cfg.Servers),
			"--lease-ttl", cfg.LeaseTTL.String(), "--lease-margin", cfg.LeaseMargin.String(),
			"--log-level", "debug"}
		if cfg.SnapshotThreshold > 0 {
			s.Args = append(s.Args, "--snapshot-threshold", strconv.FormatUint(cfg.SnapshotThreshold, 10))
		}
		if cfg.TrailingLogs > 0 {
			s.Args = append(s.Args, "--trailing-logs", strconv.FormatUint(cfg.TrailingLogs, 10))
		}
		if cfg.SnapshotInterval > 0 {
			s.Args = append(s.Args, "--snapshot-interval", cfg.SnapshotInterval.String())
		}
		for j, o := range c.Servers {
			if j != i {
				s.Args = append(s.Args, "--join", o.Gossip)
			}
		}
		if err := ownedDir(s.DataDir, s.UID); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Agents {
		ip := agentIPNet + strconv.Itoa(i+1)
		a := &Agent{ID: fmt.Sprintf("a%d", i+1)}
		var err error
		if a.Gossip, err = freePort(ip); err != nil {
			return nil, err
		}
		a.DataDir = filepath.Join(cfg.Dir, "data", a.ID)
		a.Proc = &Proc{Name: a.ID, Role: "agent", IP: ip, UID: agentUIDBase + i + 1, Bin: cfg.Bin.Ice,
			Log: filepath.Join(cfg.Dir, "logs", a.ID+".log"), onExit: cfg.OnCrash}
		a.Args = []string{"agent", "--node-id", a.ID, "--data-dir", a.DataDir, "--gossip", a.Gossip,
			"--plugin-dir", cfg.Bin.PluginDir, "--log-level", "debug"}
		for _, s := range c.Servers {
			a.Args = append(a.Args, "--join", s.Gossip)
		}
		if err := ownedDir(a.DataDir, a.UID); err != nil {
			return nil, err
		}
		c.Agents = append(c.Agents, a)
	}
	return c, nil
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
	err := waitFor(ctx, timeout, 200*time.Millisecond, func() bool {
		id := ""
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := s.Client().Status(rctx)
			cancel()
			if err != nil || st.Leader == "" || (id != "" && st.Leader != id) {
				return false
			}
			id = st.Leader
		}
		leader = c.Server(id)
		return leader != nil && leader.Running()
	})
	if err != nil {
		return nil, fmt.Errorf("no leader that all running servers agree on: %w", err)
	}
	return leader, nil
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
	return waitFor(ctx, timeout, 250*time.Millisecond, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		nodes, err := c.AnyClient().Nodes(rctx)
		if err != nil {
			return false
		}
		ready := map[string]bool{}
		for _, n := range nodes {
			ready[n.ID] = n.Status == "ready"
		}
		for _, a := range c.Agents {
			if !ready[a.ID] {
				return false
			}
		}
		return true
	})
}

// StopAll stops agents then servers (SIGTERM, then SIGKILL), and kills
// every process left running under the agents' uids: plugins survive their
// agent by design.
func (c *Cluster) StopAll() {
	var wg sync.WaitGroup
	for _, a := range c.Agents {
		wg.Go(func() { a.Terminate(5 * time.Second) })
	}
	wg.Wait()
	c.KillPlugins()
	for _, s := range c.Servers {
		wg.Go(func() { s.Terminate(10 * time.Second) })
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
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
				if uid, err := strconv.Atoi(f[1]); err == nil && uids[uid] {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// errTimeout is returned by waitFor when the condition did not hold in time.
var errTimeout = errors.New("timed out")

// waitFor polls cond every poll until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout, poll time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, errTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
