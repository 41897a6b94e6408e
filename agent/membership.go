package agent

import (
	"path/filepath"
	"time"

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

// gossipMembers is membership over memberlist (a gossip.Member). With a
// keyring, gossip is encrypted, and the agent applies the keyring
// operations a server fans out (the agent has no API of its own),
// persisting them in its data dir.
type gossipMembers struct {
	member  *gossip.Member
	keyring *gossip.Keyring // nil: plaintext gossip
}

// startGossip joins gossip as the agent of cfg.NodeID. Gossip names are
// unique per member; "@agent" keeps a node's name apart from a server that
// has the same id (as in `ice dev`).
func startGossip(cfg *Config) (*gossipMembers, error) {
	logger := cfg.Logger.Named("gossip")
	kr, err := gossip.OpenKeyring(gossip.KeyringConfig{
		Key:    cfg.GossipKey,
		Path:   filepath.Join(cfg.DataDir, gossip.KeyringFile),
		Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	m, err := gossip.Start(gossip.Options{
		Name:    cfg.NodeID + "@agent",
		Addr:    cfg.GossipAddr,
		Meta:    gossip.Meta{Role: gossip.RoleAgent, HTTP: cfg.LogAddr}, // HTTP: the run log listener
		Logger:  logger,
		Fast:    cfg.Fast,
		Keyring: kr,
	})
	if err != nil {
		kr.Close()
		return nil, err
	}
	return &gossipMembers{member: m, keyring: kr}, nil
}

// Join contacts the given members.
func (g *gossipMembers) Join(addrs []string) (int, error) { return g.member.Join(addrs) }

// ServerAddrs returns the servers' HTTP addresses from their gossip
// metadata.
func (g *gossipMembers) ServerAddrs() []string { return gossip.ServerHTTPAddrs(g.member.Members()) }

// Close leaves gossip, shuts memberlist down and then closes the keyring
// (waiting for an answer being sent).
func (g *gossipMembers) Close(timeout time.Duration) error {
	err := g.member.Leave(timeout)
	_ = g.member.Shutdown()
	g.keyring.Close()
	return err
}
