package agent

import (
	"context"
	"runtime"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
)

// launchSlots is how many launches may hold a slot at once: one per CPU,
// and one more to use the CPU while a launch waits on the plugin process
// (measured on 2 busy cores with 20 plugins started at once: the median
// start with 3 slots was about 0.7 of that with no limit, and lower than
// with 2 or 4 slots).
func launchSlots() int { return runtime.NumCPU() + 1 }

// launchSlot waits for a launch slot and returns the function that gives it
// back (idempotent), or false if ctx ended first.
//
// Starting a plugin is CPU work, in the agent and in the new process (about
// 10 ms of CPU all told with the example plugins). When many runs are placed
// on a node at once, starting all their plugins at the same time shares the
// CPU among all of them and every one of them is ready only when nearly all
// are; a few at a time, in the order they came, the first are ready after a
// few launches' time and the median run after about half of them, the last
// about as late as before. So launches take slots.
//
// A launch gives its slot up after Config.LaunchSlotHold even if it has not
// finished, so a plugin that is slow to start (or hangs until the start
// timeout) delays the others by that much at most.
func (a *Agent) launchSlot(ctx context.Context) (release func(), ok bool) {
	start := time.Now()
	select {
	case a.launches <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	metrics.MeasureSince([]string{"ice", "agent", "plugin", "launch_wait"}, start)
	var once sync.Once
	giveBack := func() { once.Do(func() { <-a.launches }) }
	t := time.AfterFunc(a.cfg.LaunchSlotHold, giveBack)
	return func() { t.Stop(); giveBack() }, true
}
