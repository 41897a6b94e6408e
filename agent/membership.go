package agent

import (
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ice-run/ice/internal/gossip"
)

// membership is the agent's place in the cluster's gossip: gossipMembers in
// production, a fake in tests.
type membership interface {
	// Join contacts the given members and returns how many answered.
	Join(addrs []string) (int, error)
	// ServerAddrs returns the HTTP addresses of the alive servers.
	ServerAddrs() []string
	// Close leaves gossip (waiting at most timeout) and shuts it down.
	Close(timeout time.Duration) error
}

// gossipMembers is membership over memberlist.
type gossipMembers struct{ ml *memberlist.Memberlist }

// startGossip joins gossip as the agent of cfg.NodeID. Gossip names are
// unique per member; "@agent" keeps a node's name apart from a server that
// has the same id (as in `ice dev`).
func startGossip(cfg *Config) (*gossipMembers, error) {
	ml, err := gossip.Start(gossip.Options{
		Name:   cfg.NodeID + "@agent",
		Addr:   cfg.GossipAddr,
		Meta:   gossip.Meta{Role: gossip.RoleAgent},
		Logger: cfg.Logger.Named("gossip"),
		Fast:   cfg.Fast,
	})
	if err != nil {
		return nil, err
	}
	return &gossipMembers{ml: ml}, nil
}

// Join contacts the given members.
func (g *gossipMembers) Join(addrs []string) (int, error) { return g.ml.Join(addrs) }

// ServerAddrs returns the servers' HTTP addresses from their gossip
// metadata.
func (g *gossipMembers) ServerAddrs() []string { return gossip.ServerHTTPAddrs(g.ml.Members()) }

// Close leaves gossip and shuts memberlist down.
func (g *gossipMembers) Close(timeout time.Duration) error {
	err := g.ml.Leave(timeout)
	_ = g.ml.Shutdown()
	return err
}
