package agent

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures an Agent.
type Config struct {
	// NodeID is the node's unique id.
	NodeID string
	// DataDir holds agent.db (reattach state) and runs/ (plugin logs).
	DataDir string
	// GossipAddr is the address memberlist binds and advertises.
	GossipAddr string
	// Join lists gossip addresses of cluster members.
	Join []string
	// Servers, when set, are the servers' HTTP addresses the agent talks
	// to, instead of those it learns over gossip (for agents behind a proxy
	// or a load balancer).
	Servers []string
	// PluginDir holds the plugin binaries; each file's name is its plugin
	// name.
	PluginDir string
	// Labels are matched by component placement constraints.
	Labels map[string]string

	// HealthInterval is how often a running plugin's health is checked
	// (default 1s); each check also keeps the plugin's watchdog fed.
	HealthInterval time.Duration
	// StartTimeout bounds a plugin's launch, start and first healthy check
	// (default 30s).
	StartTimeout time.Duration
	// StopPluginsOnExit stops the plugins when the agent stops, instead of
	// leaving them for a restarted agent to reattach (`ice dev`).
	StopPluginsOnExit bool
	// Fast selects gossip timings for tests on loopback.
	Fast bool

	Logger hclog.Logger
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || c.DataDir == "" || c.GossipAddr == "" {
		return fmt.Errorf("agent config: node id, data dir and gossip address are required")
	}
	if len(c.Join) == 0 {
		return fmt.Errorf("agent config: at least one --join address is required")
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
