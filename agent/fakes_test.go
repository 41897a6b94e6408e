package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// Fakes of the agent's parts: the plugin host and its processes, the run
// store and one server. Behaviour a test asks of a plugin is given in the
// run's config (start_error, unhealthy, execute_error, stop_blocks), so one
// agent can host well- and ill-behaved runs at once.

// gate blocks callers while it is closed; opening it lets them through.
type gate struct {
	mu      sync.Mutex
	shut    chan struct{} // nil while open
	waiting atomic.Int32
}

// close makes callers of wait block.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
}

// open releases the blocked callers.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
}

// wait blocks while the gate is closed, or until ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut == nil {
		return nil
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-shut:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakeHost launches fakeProcesses.
type fakeHost struct {
	mu       sync.Mutex
	kind     plugins.Kind // of launched plugins (default service)
	launches []host.Config
	procs    []*fakeProcess
	// launchErr, by plugin file name, makes Launch fail.
	launchErr map[string]error
	// reattachable are the processes Reattach finds, by pid.
	reattachable map[int]*fakeProcess
	nextPid      int
	// launchGate, when closed, blocks Launch.
	launchGate gate
	// wrap, when set, makes the launched process another plugin (one
	// that serves the host channel, say).
	wrap func(*fakeProcess) pluginProcess
	// versions, by plugin file name, are what Info reports; probes
	// counts the Info launches by file name.
	versions map[string]string
	probes   map[string]int
}

func newFakeHost() *fakeHost {
	return &fakeHost{kind: plugins.KindService, launchErr: map[string]error{}, reattachable: map[int]*fakeProcess{}, nextPid: 1000,
		versions: map[string]string{}, probes: map[string]int{}}
}

func (h *fakeHost) Launch(cfg host.Config) (pluginProcess, error) {
	_ = h.launchGate.wait(context.Background())
	h.mu.Lock()
	defer h.mu.Unlock()
	h.launches = append(h.launches, cfg)
	if err := h.launchErr[filepath.Base(cfg.Path)]; err != nil {
		return nil, err
	}
	h.nextPid++
	p := newFakeProcess(h.nextPid, h.kind)
	h.procs = append(h.procs, p)
	if h.wrap != nil {
		return h.wrap(p), nil
	}
	return p, nil
}

// Info answers for the catalogue with the version set for the file; it is
// not a launch of a run's plugin.
func (h *fakeHost) Info(_ context.Context, cfg host.Config) (plugins.Info, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	name := filepath.Base(cfg.Path)
	h.probes[name]++
	return plugins.Info{Name: name, Version: h.versions[name], Kind: h.kind}, nil
}

// probed returns how many times the catalogue launched a file for Info.
func (h *fakeHost) probed(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probes[name]
}

func (h *fakeHost) Reattach(att host.Attachment, _ host.Config) (pluginProcess, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.reattachable[att.Pid]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("reattach pid %d: %w", att.Pid, errors.New("process is gone"))
}

// launched returns how many launches were attempted.
func (h *fakeHost) launched() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.launches)
}

// lastLaunched returns the newest launched process (bound to a run or not).
func (h *fakeHost) lastLaunched() *fakeProcess {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.procs) == 0 {
		return nil
	}
	return h.procs[len(h.procs)-1]
}

// procsOf returns the processes started for a run, oldest first.
func (h *fakeHost) procsOf(runID string) []*fakeProcess {
	h.mu.Lock()
	procs := append([]*fakeProcess(nil), h.procs...)
	for _, p := range h.reattachable {
		procs = append(procs, p)
	}
	h.mu.Unlock()
	var out []*fakeProcess
	for _, p := range procs {
		if p.runID() == runID {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// proc returns the newest process of a run, or nil.
func (h *fakeHost) proc(runID string) *fakeProcess {
	procs := h.procsOf(runID)
	if len(procs) == 0 {
		return nil
	}
	return procs[len(procs)-1]
}

// fakeProcess is a plugin process and its component.
type fakeProcess struct {
	pid  int
	kind plugins.Kind

	mu          sync.Mutex
	start       *plugins.StartRequest
	reattachRun string // the run of a reattachable process
	healthy     bool
	healthMsg   string
	healthCalls int
	exited      bool
	stopCalls   int
	killed      bool
	killedNow   bool
	killedAt    time.Time
	detached    bool
}

func newFakeProcess(pid int, kind plugins.Kind) *fakeProcess {
	return &fakeProcess{pid: pid, kind: kind, healthy: true}
}

// reattachedFake returns a process of runID as a previous agent left it.
func reattachedFake(pid int, runID string, kind plugins.Kind) *fakeProcess {
	p := newFakeProcess(pid, kind)
	p.reattachRun = runID
	return p
}

func (p *fakeProcess) Component() plugins.Component { return p }
func (p *fakeProcess) Attachment() host.Attachment {
	return host.Attachment{Pid: p.pid, Network: "unix", Addr: fmt.Sprintf("/tmp/fake-%d.sock", p.pid)}
}

func (p *fakeProcess) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

func (p *fakeProcess) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed, p.exited = true, true
}

func (p *fakeProcess) KillNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed, p.killedNow, p.exited = true, true, true
	p.killedAt = time.Now()
}

func (p *fakeProcess) Detach() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.detached = true
}

func (p *fakeProcess) Info(ctx context.Context) (plugins.Info, error) {
	if err := p.alive(ctx); err != nil {
		return plugins.Info{}, err
	}
	return plugins.Info{Name: "fake", Version: "1.0.0", Kind: p.kind}, nil
}

func (p *fakeProcess) Start(ctx context.Context, req plugins.StartRequest) error {
	if err := p.alive(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = &req
	if msg := req.Config["start_error"]; msg != "" {
		return errors.New(msg)
	}
	if msg := req.Config["unhealthy"]; msg != "" {
		p.healthy, p.healthMsg = false, msg
	}
	return nil
}

func (p *fakeProcess) Health(ctx context.Context) (plugins.Health, error) {
	if err := p.alive(ctx); err != nil {
		return plugins.Health{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthCalls++
	return plugins.Health{Healthy: p.healthy, Message: p.healthMsg}, nil
}

func (p *fakeProcess) Execute(ctx context.Context, input string) (string, error) {
	if err := p.alive(ctx); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start != nil && p.start.Config["execute_error"] != "" {
		return "", errors.New(p.start.Config["execute_error"])
	}
	return "out:" + input, nil
}

// Stop returns at once, or, with config stop_blocks, when ctx ends.
func (p *fakeProcess) Stop(ctx context.Context, _ time.Time) error {
	p.mu.Lock()
	p.stopCalls++
	blocks := p.start != nil && p.start.Config["stop_blocks"] != ""
	p.mu.Unlock()
	if blocks {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.alive(ctx)
}

// alive fails calls to a process that exited, as gRPC would.
func (p *fakeProcess) alive(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Exited() {
		return errors.New("plugin process exited")
	}
	return nil
}

func (p *fakeProcess) runID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start != nil {
		return p.start.RunID
	}
	return p.reattachRun
}

func (p *fakeProcess) setHealth(healthy bool, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy, p.healthMsg = healthy, msg
}

func (p *fakeProcess) exit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
}

// fakeProcessState is a copy of what happened to a fake process.
type fakeProcessState struct {
	start                       *plugins.StartRequest
	healthCalls, stopCalls      int
	killed, killedNow, detached bool
	killedAt                    time.Time
}

func (p *fakeProcess) state() fakeProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fakeProcessState{
		start: p.start, healthCalls: p.healthCalls, stopCalls: p.stopCalls,
		killed: p.killed, killedNow: p.killedNow, detached: p.detached, killedAt: p.killedAt,
	}
}

// fakeStore is a runStore in memory that records misuse.
type fakeStore struct {
	mu      sync.Mutex
	records map[string]runRecord
	deletes int
	closed  bool
	// afterClose lists the operations called after close.
	afterClose []string
	putErr     map[string]error
	// putGate, when closed, blocks put.
	putGate gate
}

func newFakeStore(records ...runRecord) *fakeStore {
	s := &fakeStore{records: map[string]runRecord{}, putErr: map[string]error{}}
	for _, r := range records {
		s.records[r.RunID] = r
	}
	return s
}

func (s *fakeStore) put(r runRecord) error {
	_ = s.putGate.wait(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.afterClose = append(s.afterClose, "put "+r.RunID)
		return errors.New("store closed")
	}
	if err := s.putErr[r.RunID]; err != nil {
		return err
	}
	s.records[r.RunID] = r
	return nil
}

func (s *fakeStore) delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.afterClose = append(s.afterClose, "delete "+id)
		return errors.New("store closed")
	}
	s.deletes++
	delete(s.records, id)
	return nil
}

func (s *fakeStore) all() ([]runRecord, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []runRecord
	for _, r := range s.records {
		out = append(out, r)
	}
	return out, nil
}

func (s *fakeStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *fakeStore) record(id string) (runRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	return r, ok
}

func (s *fakeStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *fakeStore) misuse() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.afterClose...)
}

func (s *fakeStore) deleteCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletes
}

// fakeServer is the servers as one serverAPI. With apply set it applies
// every reported transition to its runs, as the state machine would for a
// well-behaved agent.
type fakeServer struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	index   uint64
	runs    map[string]fsm.Run
	specs   map[string]*fsm.Component
	apply   bool
	ttl     time.Duration

	delivered  []fsm.Transition
	batches    int
	registers  int
	node       fsm.Node // as last registered
	heartbeats int
	// heartbeatErr and reportErrs make calls fail (reportErrs: the next
	// len(reportErrs) reports, one each).
	heartbeatErr error
	reportErrs   []error
	// onReport sees every batch before it is delivered.
	onReport func([]fsm.Transition)
	// reportGate, when closed, blocks Report.
	reportGate gate
	// mem, when set, answers AgentMemory (memory_test.go).
	mem *fakeMemory
}

func newFakeServer() *fakeServer {
	return &fakeServer{
		changed: make(chan struct{}),
		runs:    map[string]fsm.Run{},
		specs:   map[string]*fsm.Component{},
		apply:   true,
		ttl:     10 * time.Second,
	}
}

func (f *fakeServer) Addr() string { return "http://fake" }

// registered returns the node as last registered.
func (f *fakeServer) registered() fsm.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.node
}

func (f *fakeServer) Register(ctx context.Context, n fsm.Node) (*api.LeaseResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers++
	f.node = n
	return &api.LeaseResponse{Index: f.index, LeaseTTLMillis: f.ttl.Milliseconds(), ClusterID: "test-cluster"}, nil
}

func (f *fakeServer) Heartbeat(ctx context.Context, _ string) (*api.LeaseResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeats++
	if f.heartbeatErr != nil {
		return nil, f.heartbeatErr
	}
	return &api.LeaseResponse{LeaseTTLMillis: f.ttl.Milliseconds()}, nil
}

func (f *fakeServer) Report(ctx context.Context, _ string, ts []fsm.Transition) (*api.ReportResponse, error) {
	if err := f.reportGate.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.reportErrs) > 0 {
		err := f.reportErrs[0]
		f.reportErrs = f.reportErrs[1:]
		f.mu.Unlock()
		return nil, err
	}
	hook := f.onReport
	f.mu.Unlock()
	if hook != nil {
		hook(ts)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	f.delivered = append(f.delivered, ts...)
	if f.apply {
		for _, t := range ts {
			if r, ok := f.runs[t.Run]; ok && r.Epoch == t.Epoch {
				r.State, r.Output = t.To, t.Output
				if t.Reason != "" {
					r.Reason = t.Reason
				}
				f.runs[t.Run] = r
			}
		}
		f.bump()
	}
	return &api.ReportResponse{Index: f.index, Errors: make([]string, len(ts))}, nil
}

func (f *fakeServer) NodeRuns(ctx context.Context, _ string, opts *api.QueryOptions) ([]fsm.Run, uint64, error) {
	wait := time.NewTimer(opts.Wait)
	defer wait.Stop()
	for {
		f.mu.Lock()
		index, changed := f.index, f.changed
		if index > opts.Index {
			runs := make([]fsm.Run, 0, len(f.runs))
			for _, r := range f.runs {
				runs = append(runs, r)
			}
			f.mu.Unlock()
			sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
			return runs, index, nil
		}
		f.mu.Unlock()
		select {
		case <-changed:
		case <-wait.C:
			opts = &api.QueryOptions{} // answer with the unchanged runs
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

func (f *fakeServer) StaleComponent(ctx context.Context, name string) (*fsm.Component, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.specs[name]
	if c == nil {
		return nil, &api.APIError{Status: 404, Message: "component " + name + " not found"}
	}
	cp := *c
	return &cp, nil
}

// bump makes a change visible to blocking queries. Callers hold f.mu.
func (f *fakeServer) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// setSpec deploys a component of the given plugin at generation 1.
func (f *fakeServer) setSpec(name, plugin string, config map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs[name] = &fsm.Component{
		Spec:       fsm.Spec{Name: name, Plugin: fsm.PluginRef{Name: plugin}, Config: config, Count: 1},
		Generation: 1, RunGeneration: 1,
	}
	f.bump()
}

// setGenerations sets a component's generation and run generation.
func (f *fakeServer) setGenerations(name string, gen, runGen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs[name].Generation, f.specs[name].RunGeneration = gen, runGen
	f.bump()
}

// place puts a run on the node (or changes it).
func (f *fakeServer) place(runs ...fsm.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range runs {
		if r.Generation == 0 {
			r.Generation = 1
		}
		f.runs[r.ID] = r
	}
	f.bump()
}

// setState moves a run to a state, as the runtime would.
func (f *fakeServer) setState(id string, state fsm.RunState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[id]
	r.State = state
	f.runs[id] = r
	f.bump()
}

// remove takes a run off the node.
func (f *fakeServer) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.runs, id)
	f.bump()
}

func (f *fakeServer) run(id string) fsm.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

// reportsOf returns the delivered transitions of one run, in order.
func (f *fakeServer) reportsOf(id string) []fsm.Transition {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fsm.Transition
	for _, t := range f.delivered {
		if t.Run == id {
			out = append(out, t)
		}
	}
	return out
}

func (f *fakeServer) setHeartbeatErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeatErr = err
}

func (f *fakeServer) counts() (registers, heartbeats, batches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registers, f.heartbeats, f.batches
}

// fakeMembers is a gossip view that knows the fake server.
type fakeMembers struct {
	mu      sync.Mutex
	closed  bool
	joinErr error
}

func (m *fakeMembers) Join([]string) (int, error) {
	if m.joinErr != nil {
		return 0, m.joinErr
	}
	return 1, nil
}
func (m *fakeMembers) ServerAddrs() []string { return []string{"fake"} }
func (m *fakeMembers) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *fakeMembers) Close(time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
