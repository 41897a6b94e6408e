package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
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
}

// Simulator registers many lightweight nodes and drives the runs placed on
// them through the lifecycle without real plugins: PROVISIONED runs become
// CONTEXT_READY and EXECUTING at once, finite ones never finish, and runs
// the runtime ended are reported TERMINATED. It keeps their leases with
// one batched heartbeat. It exists to test and measure the control plane
// at scale (`ice agent --simulate N`); it executes nothing.
type Simulator struct {
	cfg    SimConfig
	client *api.Client
	ids    []string
	mine   map[string]bool
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
	byNode := map[string][]fsm.Transition{}
	for _, r := range runs {
		if !s.mine[r.Node] {
			continue
		}
		switch {
		case r.State == fsm.StateProvisioned:
			byNode[r.Node] = append(byNode[r.Node],
				fsm.Transition{Run: r.ID, To: fsm.StateContextReady, Epoch: r.Epoch},
				fsm.Transition{Run: r.ID, To: fsm.StateExecuting, Epoch: r.Epoch})
		case r.State == fsm.StateContextReady:
			byNode[r.Node] = append(byNode[r.Node], fsm.Transition{Run: r.ID, To: fsm.StateExecuting, Epoch: r.Epoch})
		case r.State.Ended() && !r.State.Terminal():
			byNode[r.Node] = append(byNode[r.Node], fsm.Transition{Run: r.ID, To: fsm.StateTerminated, Epoch: r.Epoch})
		}
	}
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
