package agent

import (
	"crypto/tls"
	"errors"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures an Agent. A zero timing takes its default, given in its
// comment.
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
	// name. The agent rescans it while it runs (see catalogue.go).
	PluginDir string
	// RescanSignals make the agent rescan PluginDir when the process
	// receives one of them (SIGHUP for `ice agent` and `ice dev`).
	RescanSignals []os.Signal
	// Labels are matched by component placement constraints.
	Labels map[string]string
	// StopPluginsOnExit stops the plugins when the agent stops, instead of
	// leaving them for a restarted agent to reattach (`ice dev`).
	StopPluginsOnExit bool
	// TLS, when set, is the client TLS configuration for the servers' API:
	// it presents the agent's certificate, which names its node.
	TLS *tls.Config
	// GossipKey, when set, is the gossip encryption key (32 bytes, parsed
	// from --gossip-key by gossip.ParseKey); the keyring persists in
	// <data-dir>/gossip.keyring, which wins over it at a restart (see
	// gossip.OpenKeyring). Without it gossip is plaintext (--insecure).
	GossipKey []byte
	// LogAddr, when set, is the address ("host:port"; port 0: a free one)
	// of the listener that serves the runs' plugin logs to the servers
	// (log_server.go); the address it listens on is advertised in gossip.
	// "" serves no logs.
	LogAddr string
	// LogTLS, when set, is the log listener's TLS configuration
	// (LogServerTLS: mutual TLS, server certificates only); without it the
	// listener speaks plain HTTP (--insecure).
	LogTLS *tls.Config
	// Token, when set, is a node token sent with every request (an
	// alternative to an agent certificate; both bind the node id).
	Token string
	// Fast selects gossip timings for tests on loopback.
	Fast bool
	// Logger receives the agent's logs (default: discarded).
	Logger hclog.Logger

	// HealthInterval is how often a running plugin's health is checked
	// (default 1s); each check also keeps the plugin's watchdog fed.
	HealthInterval time.Duration
	// HealthPollInterval is how often a starting plugin's health is polled
	// until it first reports healthy (default 50ms).
	HealthPollInterval time.Duration
	// UnhealthyLimit is how many failed health checks in a row abort a run
	// (default 3).
	UnhealthyLimit int
	// StartTimeout bounds a plugin's launch, start and first healthy check
	// (default 30s).
	StartTimeout time.Duration
	// LaunchSlotHold is how long one launch holds its launch slot at most
	// before the next may start (default 250ms; see launch.go).
	LaunchSlotHold time.Duration
	// StopGrace is how long a plugin whose run the runtime ended has to
	// stop before it is killed (default 5s).
	StopGrace time.Duration
	// ExitStopGrace is the same when the agent stops with
	// StopPluginsOnExit (default 2s).
	ExitStopGrace time.Duration
	// WarmProcesses is how many warm processes one component generation
	// of a reusable finite plugin may have at once (default 4; negative:
	// reusable plugins get a process per run like any other). A run that
	// finds them all busy waits for one: each serves a run for only its
	// Start to the end of its Execute.
	WarmProcesses int
	// WarmProcessesTimeout is how long a warm process may stay idle before it
	// is stopped (default 1m).
	WarmProcessesTimeout time.Duration
	// PluginScanInterval is how often the agent looks for changes in
	// PluginDir (default 3s; negative: only at start, on RescanPlugins and
	// when a launch finds a binary changed).
	PluginScanInterval time.Duration
	// PluginSettle is how long a changed plugin file must stay unchanged
	// before a rescan takes it, so that a half-written binary is not
	// listed (default 2s; negative: at once).
	PluginSettle time.Duration
	// InfoTimeout bounds launching a new plugin binary for its Info, and
	// the Info call (default 10s).
	InfoTimeout time.Duration
	// ReattachProbeTimeout bounds the health call that a plugin reattached
	// at start answers, which feeds its watchdog while the agent joins and
	// registers again (default 2s).
	ReattachProbeTimeout time.Duration

	// FenceCheckInterval is how often the lease is checked: a lease that ran
	// out fences the node within this (default 50ms).
	FenceCheckInterval time.Duration
	// MinHeartbeatInterval bounds from below the interval of lease
	// renewals, which is a quarter of the lease TTL (default 50ms).
	MinHeartbeatInterval time.Duration
	// MinHeartbeatTimeout bounds from below the timeout of one renewal,
	// which is an eighth of the lease TTL (default 250ms).
	MinHeartbeatTimeout time.Duration
	// HeartbeatRetryInterval is the wait after a failed renewal before the
	// next, sent to another server (default 100ms).
	HeartbeatRetryInterval time.Duration
	// ReregisterTimeout bounds registering again when the servers no longer
	// hold the node ready (default 10s).
	ReregisterTimeout time.Duration
	// RetryInterval is the first wait between attempts to join the cluster
	// or to register; it doubles up to MaxRetryInterval (defaults 200ms and
	// 5s).
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// GossipLeaveTimeout bounds leaving gossip when the agent stops
	// (default 1s).
	GossipLeaveTimeout time.Duration

	// RequestTimeout bounds one report or spec read (default 10s).
	RequestTimeout time.Duration
	// ReportRetryInterval is the wait before a report batch that could not
	// be delivered is sent again (default 200ms).
	ReportRetryInterval time.Duration
	// WatchWait is how long one blocking query for the node's runs waits
	// for a change (default 30s); WatchTimeout bounds the request (default
	// 40s).
	WatchWait    time.Duration
	WatchTimeout time.Duration
	// WatchRetryInterval is the wait after a failed watch (default 500ms);
	// NoServerRetryInterval the wait when no server is known (default 1s).
	WatchRetryInterval    time.Duration
	NoServerRetryInterval time.Duration
	// SpecRetryInterval is the wait after the first failed read of a run's
	// spec; it grows by as much on every failure, up to MaxSpecRetryInterval
	// (defaults 200ms and 2s).
	SpecRetryInterval    time.Duration
	MaxSpecRetryInterval time.Duration
}

// setDefaults checks the required fields and fills in the defaults.
func (c *Config) setDefaults() error {
	if c.NodeID == "" || c.DataDir == "" || c.GossipAddr == "" {
		return errors.New("agent config: node id, data dir and gossip address are required")
	}
	if len(c.Join) == 0 {
		return errors.New("agent config: at least one --join address is required")
	}
	c.setTimingDefaults()
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// setTimingDefaults fills in every zero timing.
func (c *Config) setTimingDefaults() {
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&c.HealthInterval, time.Second},
		{&c.HealthPollInterval, 50 * time.Millisecond},
		{&c.StartTimeout, 30 * time.Second},
		{&c.LaunchSlotHold, 250 * time.Millisecond},
		{&c.StopGrace, 5 * time.Second},
		{&c.ExitStopGrace, 2 * time.Second},
		{&c.WarmProcessesTimeout, time.Minute},
		{&c.ReattachProbeTimeout, 2 * time.Second},
		{&c.InfoTimeout, 10 * time.Second},
		{&c.FenceCheckInterval, 50 * time.Millisecond},
		{&c.MinHeartbeatInterval, 50 * time.Millisecond},
		{&c.MinHeartbeatTimeout, 250 * time.Millisecond},
		{&c.HeartbeatRetryInterval, 100 * time.Millisecond},
		{&c.ReregisterTimeout, 10 * time.Second},
		{&c.RetryInterval, 200 * time.Millisecond},
		{&c.MaxRetryInterval, 5 * time.Second},
		{&c.GossipLeaveTimeout, time.Second},
		{&c.RequestTimeout, 10 * time.Second},
		{&c.ReportRetryInterval, 200 * time.Millisecond},
		{&c.WatchWait, 30 * time.Second},
		{&c.WatchTimeout, 40 * time.Second},
		{&c.WatchRetryInterval, 500 * time.Millisecond},
		{&c.NoServerRetryInterval, time.Second},
		{&c.SpecRetryInterval, 200 * time.Millisecond},
		{&c.MaxSpecRetryInterval, 2 * time.Second},
	} {
		if *d.field <= 0 {
			*d.field = d.def
		}
	}
	// Negative turns these off; zero takes the default.
	if c.PluginScanInterval == 0 {
		c.PluginScanInterval = 3 * time.Second
	}
	if c.PluginSettle == 0 {
		c.PluginSettle = 2 * time.Second
	}
	if c.WarmProcesses == 0 {
		c.WarmProcesses = 4
	}
	if c.UnhealthyLimit <= 0 {
		c.UnhealthyLimit = 3
	}
}
