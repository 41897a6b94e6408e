package agent

import (
	"sync"
	"sync/atomic"
)

// goroutines tracks every goroutine the agent starts, so that stopping the
// agent waits for all of them before it closes what they use.
type goroutines struct {
	wg      sync.WaitGroup
	running atomic.Int64
}

// Go runs f in a new tracked goroutine. It is called before Wait, or from a
// tracked goroutine.
func (g *goroutines) Go(f func()) {
	g.running.Add(1)
	g.wg.Go(func() {
		defer g.running.Add(-1)
		f()
	})
}

// Wait returns once every tracked goroutine has returned.
func (g *goroutines) Wait() { g.wg.Wait() }

// Running returns how many tracked goroutines have not returned.
func (g *goroutines) Running() int64 { return g.running.Load() }
