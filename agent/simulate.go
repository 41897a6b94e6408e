package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Simulator timings.
const (
	simWatchWait            = 30 * time.Second       // one blocking query for runs
	simRetryInterval        = 500 * time.Millisecond // after a failed watch
	simMinHeartbeatInterval = 100 * time.Millisecond // renewals every quarter TTL, at most this often
	simFlushInterval        = 20 * time.Millisecond  // event mode: how often pending reports are sent
)

// SimConfig configures a Simulator.
type SimConfig struct {
	// Server is the HTTP address of a server (writes are forwarded to the
	// leader).
	Server string
	// Nodes is how many nodes to simulate; their ids are Prefix-0000 on.
	Nodes  int
	Prefix string
	// Plugins are the plugin names every simulated node offers.
	Plugins []string
	Labels  map[string]string
	Logger  hclog.Logger
	// TLS and Token are the simulator's credentials for a secure cluster:
	// it speaks for many nodes, so it needs a management token.
	TLS   *tls.Config
	Token string
	// FinishPlugins are plugins whose runs the simulator treats as finite:
	// once EXECUTING, a run reports its output (EXECUTING → VALIDATING) as a
	// real agent does when Execute returns, so the runtime validates and
	// commits it. The output is "sha256:<hex of config input>", what the
	// batch example plugin returns, or config "output" when set.
	FinishPlugins []string
	// CrashPlugins are plugins whose runs fail as soon as they execute
	// (EXECUTING → ABORTED with a reason), so the restart policy churns them.
	CrashPlugins []string
	// Events drives the runs from the event stream instead of re-reading
	// every run on each change: one read of the runs at start (and after a
	// broken stream), then only the transitions. Its cost follows the rate
	// of transitions, not the number of runs the state holds.
	Events bool
}

// SimCrashReason is the reason a run of a CrashPlugins plugin is ABORTED with.
const SimCrashReason = "simulated crash: plugin exited after start"

// Simulator registers many lightweight nodes and drives the runs placed on
// them through the lifecycle without real plugins: PROVISIONED runs become
// CONTEXT_READY and EXECUTING at once, and runs the runtime ended are
// reported TERMINATED. Runs of SimConfig.FinishPlugins then report their
// output, and runs of SimConfig.CrashPlugins fail; other runs (finite ones
// too) never finish. It keeps their leases with
// one batched heartbeat. It exists to test and measure the control plane
// at scale (`ice agent --simulate N`); it executes nothing.
type Simulator struct {
	cfg    SimConfig
	client *api.Client
	ids    []string
	mine   map[string]bool
	// kinds is what the simulator knows of components, when FinishPlugins
	// or CrashPlugins make it look at them (nil otherwise).
	kinds *simKinds
}

// NewSimulator validates cfg.
func NewSimulator(cfg SimConfig) (*Simulator, error) {
	if cfg.Nodes <= 0 || cfg.Server == "" {
		return nil, fmt.Errorf("simulate: want a server address and at least one node")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim"
	}
	if len(cfg.Plugins) == 0 {
		cfg.Plugins = []string{"sim"}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	client, err := api.NewClientConfig(api.Config{Address: cfg.Server, TLS: cfg.TLS, Token: cfg.Token})
	if err != nil {
		return nil, fmt.Errorf("simulator client: %w", err)
	}
	s := &Simulator{cfg: cfg, client: client, mine: map[string]bool{}}
	if len(cfg.FinishPlugins)+len(cfg.CrashPlugins) > 0 {
		s.kinds = newSimKinds(cfg.FinishPlugins, cfg.CrashPlugins)
	}
	for i := 0; i < cfg.Nodes; i++ {
		id := fmt.Sprintf("%s-%04d", cfg.Prefix, i)
		s.ids = append(s.ids, id)
		s.mine[id] = true
	}
	return s, nil
}

// Run registers the nodes and drives their runs until ctx ends.
func (s *Simulator) Run(ctx context.Context) error {
	var catalogue []fsm.PluginInfo
	for _, p := range s.cfg.Plugins {
		sum := sha256.Sum256([]byte("simulated " + p))
		catalogue = append(catalogue, fsm.PluginInfo{Name: p, SHA256: hex.EncodeToString(sum[:])})
	}
	start := time.Now()
	var ttl time.Duration
	err := s.parallel(ctx, s.ids, 16, func(id string) error {
		res, err := s.client.Register(ctx, fsm.Node{ID: id, Address: "simulated", Labels: s.cfg.Labels, Plugins: catalogue})
		if err == nil {
			ttl = res.LeaseTTL()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("simulate: register nodes: %w", err)
	}
	s.cfg.Logger.Info("simulated nodes registered", "nodes", len(s.ids), "duration", time.Since(start), "lease_ttl", ttl)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.heartbeats(ctx, ttl) })
	if s.cfg.Events {
		s.followEvents(ctx)
		return nil
	}
	var index uint64
	for ctx.Err() == nil {
		runs, idx, err := s.client.Runs(ctx, "", &api.QueryOptions{Index: index, Wait: simWatchWait})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.cfg.Logger.Warn("simulate: watch runs failed", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(simRetryInterval):
			}
			continue
		}
		index = idx
		s.drive(ctx, runs)
	}
	return nil
}

// simPending is what the event stream asks of the simulator: runs to
// drive, as the stream saw them, in order.
type simPending struct {
	mu   sync.Mutex
	runs []fsm.Run
}

func (p *simPending) add(r fsm.Run) {
	p.mu.Lock()
	p.runs = append(p.runs, r)
	p.mu.Unlock()
}

func (p *simPending) take() []fsm.Run {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.runs
	p.runs = nil
	return out
}

// followEvents drives the runs from the event stream (SimConfig.Events):
// it reads every run once, then follows the events after that index; a
// broken stream starts over with a read of every run.
func (s *Simulator) followEvents(ctx context.Context) {
	pending := &simPending{}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		tick := time.NewTicker(simFlushInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if runs := pending.take(); len(runs) > 0 {
				s.drive(ctx, runs)
			}
		}
	})
	for ctx.Err() == nil {
		runs, idx, err := s.client.Runs(ctx, "", nil)
		if err == nil {
			gens := map[string]uint64{}
			for _, r := range runs {
				if !r.State.Terminal() {
					gens[r.ID] = r.Generation
				}
			}
			s.drive(ctx, runs)
			err = s.client.FollowEvents(ctx, idx+1, "", func(e fsm.Event) error {
				s.onEvent(e, gens, pending)
				return nil
			})
		}
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("simulate: event stream failed; reading every run again", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(simRetryInterval):
		}
	}
}

// onEvent turns a run's event into the run as the simulator drives it:
// placed on a simulated node, or ended and awaiting its teardown. gens
// holds the generation of each run not yet TERMINATED (from run.created).
func (s *Simulator) onEvent(e fsm.Event, gens map[string]uint64, pending *simPending) {
	switch e.Type {
	case "run.created":
		var nr fsm.NewRun
		if json.Unmarshal(e.Payload, &nr) == nil {
			gens[e.Subject] = nr.Generation
		}
	case "run.transition":
		var tp fsm.TransitionPayload
		if json.Unmarshal(e.Payload, &tp) != nil {
			return
		}
		if tp.To.Terminal() || (tp.Node != "" && !s.mine[tp.Node]) {
			delete(gens, e.Subject)
		}
		if !s.mine[tp.Node] {
			return
		}
		if tp.To == fsm.StateProvisioned || tp.To.Ended() && !tp.To.Terminal() {
			pending.add(fsm.Run{ID: e.Subject, Component: e.Component, Generation: gens[e.Subject], Node: tp.Node, Epoch: tp.Epoch, State: tp.To})
		}
	}
}

// heartbeats renews every simulated node's lease in one request.
func (s *Simulator) heartbeats(ctx context.Context, ttl time.Duration) {
	tick := time.NewTicker(max(ttl/4, simMinHeartbeatInterval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.client.HeartbeatMany(ctx, s.ids); err != nil {
			s.cfg.Logger.Warn("simulate: heartbeat failed", "error", err)
		}
	}
}

// drive reports, per node, the transitions the runs placed on it need.
func (s *Simulator) drive(ctx context.Context, runs []fsm.Run) {
	if s.kinds != nil && s.kinds.stale(runs, s.mine) {
		comps, err := s.client.Components(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("simulate: read components failed", "error", err)
			}
		} else {
			s.kinds.load(comps, runs)
		}
	}
	byNode := s.plan(runs)
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	err := s.parallel(ctx, nodes, 16, func(node string) error {
		ts := byNode[node]
		for len(ts) > 0 {
			k := min(len(ts), 1000)
			if _, err := s.client.Report(ctx, node, ts[:k]); err != nil {
				return err
			}
			ts = ts[k:]
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("simulate: report failed", "error", err)
	}
}

// plan returns, per simulated node, the transitions its runs need next.
func (s *Simulator) plan(runs []fsm.Run) map[string][]fsm.Transition {
	byNode := map[string][]fsm.Transition{}
	for _, r := range runs {
		if !s.mine[r.Node] {
			continue
		}
		var ts []fsm.Transition
		switch {
		case r.State == fsm.StateProvisioned:
			ts = append(ts,
				fsm.Transition{Run: r.ID, To: fsm.StateContextReady, Epoch: r.Epoch},
				fsm.Transition{Run: r.ID, To: fsm.StateExecuting, Epoch: r.Epoch})
			ts = s.afterExecuting(ts, r)
		case r.State == fsm.StateContextReady:
			ts = append(ts, fsm.Transition{Run: r.ID, To: fsm.StateExecuting, Epoch: r.Epoch})
			ts = s.afterExecuting(ts, r)
		case r.State == fsm.StateExecuting:
			ts = s.afterExecuting(ts, r)
		case r.State.Ended() && !r.State.Terminal():
			ts = append(ts, fsm.Transition{Run: r.ID, To: fsm.StateTerminated, Epoch: r.Epoch})
		}
		if len(ts) > 0 {
			byNode[r.Node] = append(byNode[r.Node], ts...)
		}
	}
	return byNode
}

// afterExecuting appends what an EXECUTING run of a finishing or crashing
// plugin reports next: its output, or its failure.
func (s *Simulator) afterExecuting(ts []fsm.Transition, r fsm.Run) []fsm.Transition {
	if s.kinds == nil {
		return ts
	}
	k := s.kinds.of(r.Component)
	switch k.kind {
	case simFinish:
		ts = append(ts, fsm.Transition{Run: r.ID, To: fsm.StateValidating, Epoch: r.Epoch, Output: k.output})
	case simCrash:
		ts = append(ts, fsm.Transition{Run: r.ID, To: fsm.StateAborted, Epoch: r.Epoch, Reason: SimCrashReason})
	}
	return ts
}

// parallel runs f for every item with at most n at once, returning the
// first error.
func (s *Simulator) parallel(ctx context.Context, items []string, n int, f func(string) error) error {
	sem := make(chan struct{}, n)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(it); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", it, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// PluginNames returns the plugin names of a catalogue directory, for
// simulated nodes that should offer the same plugins as real ones.
func PluginNames(dir string) ([]string, error) {
	c, err := scanPlugins(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range c.plugins {
		out = append(out, p.Name)
	}
	return out, nil
}

// simKind is how the simulator drives the runs of a component.
type simKind int

const (
	// simService: runs execute until the runtime ends them.
	simService simKind = iota
	// simFinish: runs report their output once executing.
	simFinish
	// simCrash: runs fail once executing.
	simCrash
)

// simComponent is what the simulator knows of one component's spec.
type simComponent struct {
	generation uint64
	kind       simKind
	output     string
}

// simKinds maps components to how their runs are driven, by the plugin
// their spec names. It is used by the simulator's one watch loop only.
type simKinds struct {
	plugins map[string]simKind
	comps   map[string]simComponent
}

func newSimKinds(finish, crash []string) *simKinds {
	k := &simKinds{plugins: map[string]simKind{}, comps: map[string]simComponent{}}
	for _, p := range finish {
		k.plugins[p] = simFinish
	}
	for _, p := range crash {
		k.plugins[p] = simCrash
	}
	return k
}

// stale reports whether a run on a simulated node belongs to a component
// the simulator has not seen, or to a newer generation of it than it saw,
// and is about to execute.
func (k *simKinds) stale(runs []fsm.Run, mine map[string]bool) bool {
	for _, r := range runs {
		if !mine[r.Node] {
			continue
		}
		switch r.State {
		case fsm.StateProvisioned, fsm.StateContextReady, fsm.StateExecuting:
		default:
			continue
		}
		c, ok := k.comps[r.Component]
		if !ok || c.generation < r.Generation {
			return true
		}
	}
	return false
}

// load replaces what is known of the components with comps. A run of
// runs whose component comps lacks (or has at an older generation) is
// driven as a service, and not asked about again.
func (k *simKinds) load(comps []fsm.Component, runs []fsm.Run) {
	k.comps = make(map[string]simComponent, len(comps))
	for _, c := range comps {
		sc := simComponent{generation: c.Generation, kind: k.plugins[c.Plugin.Name]}
		if sc.kind == simFinish {
			sc.output = SimOutput(c.Config)
		}
		k.comps[c.Name] = sc
	}
	for _, r := range runs {
		if c, ok := k.comps[r.Component]; !ok || c.generation < r.Generation {
			c.generation = r.Generation
			k.comps[r.Component] = c
		}
	}
}

// of returns how the runs of component name are driven (a service when the
// component is unknown).
func (k *simKinds) of(name string) simComponent {
	return k.comps[name]
}

// SimOutput is the output a simulated finite run of a component with this
// config reports: config "output" when set, else "sha256:" and the hex
// SHA-256 of config "input", as the batch example plugin returns.
func SimOutput(config map[string]string) string {
	if out, ok := config["output"]; ok {
		return out
	}
	sum := sha256.Sum256([]byte(config["input"]))
	return "sha256:" + hex.EncodeToString(sum[:])
}
