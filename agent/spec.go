package agent

import (
	"context"
	"fmt"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// specFetch is one read of a component's spec, shared by the runs that
// need it while it is in flight.
type specFetch struct {
	done chan struct{}
	comp *fsm.Component
	err  error
}

// componentSpec reads a component's spec from whichever server is at hand
// (a local read: the caller checks that it is new enough). The runs of one
// component placed together start together: they share one read instead of
// each making its own. The returned spec is shared and must not be changed.
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
	a.specMu.Lock()
	defer a.specMu.Unlock()
	f := a.specFetches[name]
	if f == nil {
		f = &specFetch{done: make(chan struct{})}
		a.specFetches[name] = f
		go a.fetchSpec(name, f)
	}
	return f
}

// fetchSpec does the read of f. It is not tied to any one run: a run that
// stops waiting does not cancel it for the others.
func (a *Agent) fetchSpec(name string, f *specFetch) {
	defer close(f.done)
	defer func() {
		a.specMu.Lock()
		delete(a.specFetches, name)
		a.specMu.Unlock()
	}()
	c, err := a.servers.client()
	if err != nil {
		f.err = fmt.Errorf("read spec of %s: %w", name, err)
		return
	}
	c.Stale = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-a.shutdownCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	f.comp, f.err = c.Component(ctx, name)
	if f.err != nil {
		a.servers.failed(c.Addr())
		f.err = fmt.Errorf("read spec of %s from %s: %w", name, c.Addr(), f.err)
		return
	}
	metrics.MeasureSince([]string{"ice", "agent", "spec", "read"}, start)
}
