package plugins

import (
	"context"
	"time"
)

// Kind says whether a component runs until stopped or to completion.
type Kind int

// Component kinds.
const (
	KindService Kind = 1
	KindFinite  Kind = 2
)

// String returns "service", "finite" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindFinite:
		return "finite"
	}
	return "unknown"
}

// Info describes a plugin.
type Info struct {
	Name    string
	Version string
	Kind    Kind
	// Reusable, for a finite plugin, lets the agent keep the process warm
	// and serve successive runs in it: Start, Execute and Stop of one run,
	// then Start of the next (never two runs at once). Leave it false when
	// Execute leaves state behind that a later run must not see; the SDK
	// resets the run's log and cost on every Start.
	Reusable bool
}

// StartRequest binds a plugin process to one run.
type StartRequest struct {
	RunID     string
	Component string
	NodeID    string
	// Epoch is the Raft index that authorised this run on this node. Hand it
	// to any external system whose side effects must be fenced: a request
	// carrying an older epoch than one already seen is stale.
	Epoch uint64
	// ClusterID is the id of the cluster that granted the epoch: with it, an
	// external system can fence runs of several clusters apart.
	ClusterID string
	Config    map[string]string
	// LogPath is the file the plugin must log to; its stdout and stderr lead
	// to the agent that started it, which may be gone.
	LogPath string
	// AgentTimeout, when positive, is how long the plugin keeps running
	// without any call from its agent before it stops the run and exits.
	AgentTimeout time.Duration
}

// Health is a plugin's health report.
type Health struct {
	Healthy bool
	Message string
}

// Component is the interface every component plugin implements.
type Component interface {
	// Info describes the plugin.
	Info(ctx context.Context) (Info, error)
	// Start binds the process to a run and starts its work. It returns
	// once the run is running (for a service) or ready to Execute.
	Start(ctx context.Context, req StartRequest) error
	// Health reports whether the run is healthy now.
	Health(ctx context.Context) (Health, error)
	// Execute runs a finite component to completion and returns its output.
	Execute(ctx context.Context, input string) (string, error)
	// Stop ends the run; it must return by the deadline.
	Stop(ctx context.Context, deadline time.Time) error
}
