package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	metrics "github.com/armon/go-metrics"
)

var (
	// ErrEmptyServiceName is returned by Setup for an empty service name.
	ErrEmptyServiceName = errors.New("empty service name")
	// ErrServiceNameConflict is returned by Setup when the process was
	// already set up with another service name.
	ErrServiceNameConflict = errors.New("process already set up with another service name")
)

// The process's one exporter, created by the first successful Setup, and the
// service name it was set up with. Guarded by setupMu.
var (
	setupMu        sync.Mutex
	processExp     *exporter
	processService string
)

// Telemetry is a handle on the process-wide metrics set up by Setup. Every
// Telemetry of a process serves the same metrics.
type Telemetry struct {
	exp *exporter
}

// Setup installs a process-wide armon/go-metrics global (metrics.NewGlobal)
// with service name serviceName and returns a *Telemetry whose Handler
// serves Prometheus text format at /metrics.
//
// Everything emitted through armon/go-metrics, or through
// hashicorp/go-metrics/compat (raft, raft-boltdb, memberlist), from then on
// is served, with a service="<serviceName>" label on each series.
//
// Setup may be called any number of times, from any goroutine: the first
// call creates the process's sink and registry, every call (re)installs the
// global on that sink, so a global replaced in between is put back and no
// earlier Telemetry goes stale. A serviceName other than the first call's is
// refused with ErrServiceNameConflict.
func Setup(serviceName string) (*Telemetry, error) {
	if strings.TrimSpace(serviceName) == "" {
		return nil, fmt.Errorf("telemetry: set up: %w", ErrEmptyServiceName)
	}
	setupMu.Lock()
	defer setupMu.Unlock()
	if processExp == nil {
		exp, err := newExporter()
		if err != nil {
			return nil, fmt.Errorf("telemetry: set up %q: %w", serviceName, err)
		}
		processExp, processService = exp, serviceName
	} else if serviceName != processService {
		return nil, fmt.Errorf("telemetry: set up %q: %w (%q)", serviceName, ErrServiceNameConflict, processService)
	}
	if _, err := metrics.NewGlobal(globalConfig(serviceName), processExp.sink); err != nil {
		return nil, fmt.Errorf("telemetry: set up %q: install go-metrics global: %w", serviceName, err)
	}
	return &Telemetry{exp: processExp}, nil
}

// globalConfig is the go-metrics configuration Setup installs: the service
// name as a label rather than a key prefix, no hostname anywhere, and no
// go-metrics runtime sampler (whose goroutine would never stop, and whose
// numbers the Go collector already exports as go_*).
func globalConfig(serviceName string) *metrics.Config {
	cfg := metrics.DefaultConfig(serviceName)
	cfg.HostName = ""
	cfg.EnableHostname = false
	cfg.EnableHostnameLabel = false
	cfg.EnableServiceLabel = true
	cfg.EnableRuntimeMetrics = false
	cfg.EnableTypePrefix = false
	return cfg
}

// Handler serves the process's metrics at /metrics (GET and HEAD) in the
// Prometheus text format, or in another format the scraper negotiates, and
// answers 404 for every other path: mount it at the root or at /metrics.
func (t *Telemetry) Handler() http.Handler {
	return t.exp.handler
}
