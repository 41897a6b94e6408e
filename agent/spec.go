package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// specCache shares the reads of component specs in flight: the runs of one
// component placed together start together, and share one read instead of
// each making its own.
type specCache struct {
	mu      sync.Mutex
	fetches map[string]*specFetch
}

// specFetch is one read of a component's spec.
type specFetch struct {
	done chan struct{}
	comp *fsm.Component
	err  error
}

// componentSpec reads a component's spec from whichever server is at hand
// (a local read: the caller checks that it is new enough). The returned
// spec is shared and must not be changed.
func (a *Agent) componentSpec(ctx context.Context, name string) (*fsm.Component, error) {
	f := a.joinSpecFetch(name)
	select {
	case <-f.done:
		return f.comp, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("read spec of %s: %w", name, ctx.Err())
	}
}

// joinSpecFetch returns the read of name's spec in flight, starting one if
// there is none.
func (a *Agent) joinSpecFetch(name string) *specFetch {
	a.specs.mu.Lock()
	defer a.specs.mu.Unlock()
	if a.specs.fetches == nil {
		a.specs.fetches = map[string]*specFetch{}
	}
	f := a.specs.fetches[name]
	if f == nil {
		f = &specFetch{done: make(chan struct{})}
		a.specs.fetches[name] = f
		a.tasks.Go(func() { a.fetchSpec(name, f) })
	}
	return f
}

// fetchSpec does the read of f. It is not tied to any one run: a run that
// stops waiting does not cancel it for the others; stopping the agent does.
func (a *Agent) fetchSpec(name string, f *specFetch) {
	defer close(f.done)
	defer func() {
		a.specs.mu.Lock()
		delete(a.specs.fetches, name)
		a.specs.mu.Unlock()
	}()
	c, err := a.servers.client()
	if err != nil {
		f.err = fmt.Errorf("read spec of %s: %w", name, err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	f.comp, f.err = c.StaleComponent(ctx, name)
	if f.err != nil {
		a.servers.failed(c.Addr())
		f.err = fmt.Errorf("read spec of %s from %s: %w", name, c.Addr(), f.err)
		return
	}
	metrics.MeasureSince([]string{"ice", "agent", "spec", "read"}, start)
}
