package agent

import (
	"context"
	"fmt"
	"net/http"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// maxUseBatch is how many uses one grant.use entry carries at most.
const maxUseBatch = 256

// useQueueSize is how many uses may wait for the batcher.
const useQueueSize = 4096

// pendingUse is one use a plugin recorded and waits to see committed.
type pendingUse struct {
	use  fsm.GrantUse
	done chan error // buffered: the batcher never blocks on it
}

// useBatcher gathers the uses of every run's plugin into batches: each
// batch is one request and one committed entry, and each plugin hears how
// its own use fared. Its queue is owned by the agent's useLoop.
type useBatcher struct {
	queue chan pendingUse
}

func newUseBatcher() *useBatcher { return &useBatcher{queue: make(chan pendingUse, useQueueSize)} }

// record queues u and waits until its batch is committed or refused.
func (b *useBatcher) record(ctx context.Context, u fsm.GrantUse) error {
	p := pendingUse{use: u, done: make(chan error, 1)}
	select {
	case b.queue <- p:
	case <-ctx.Done():
		return plugins.HostErrorf(plugins.HostErrUnavailable, "use of grant %s not queued: %v", u.ID, ctx.Err())
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return plugins.HostErrorf(plugins.HostErrUnavailable, "use of grant %s: outcome unknown: %v", u.ID, ctx.Err())
	}
}

// useLoop sends the queued uses in batches until ctx ends; uses still
// queued then fail as unavailable.
func (a *Agent) useLoop(ctx context.Context) {
	for {
		var first pendingUse
		select {
		case <-ctx.Done():
			a.failQueuedUses()
			return
		case first = <-a.uses.queue:
		}
		batch := []pendingUse{first}
	fill:
		for len(batch) < maxUseBatch {
			select {
			case p := <-a.uses.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		a.sendUses(ctx, batch)
	}
}

func (a *Agent) failQueuedUses() {
	for {
		select {
		case p := <-a.uses.queue:
			p.done <- plugins.HostErrorf(plugins.HostErrUnavailable, "use of grant %s: the agent is stopping", p.use.ID)
		default:
			return
		}
	}
}

// sendUses commits one batch and answers each use.
func (a *Agent) sendUses(ctx context.Context, batch []pendingUse) {
	uses := make([]fsm.GrantUse, len(batch))
	for i, p := range batch {
		uses[i] = p.use
	}
	fail := func(err error) {
		for _, p := range batch {
			p.done <- err
		}
	}
	ga, err := a.grantServer()
	if err != nil {
		fail(err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	resp, err := ga.RecordGrantUses(rctx, a.cfg.NodeID, uses)
	if err != nil {
		fail(serverErr(fmt.Sprintf("record %d grant uses", len(uses)), err))
		return
	}
	refused := 0
	for i, p := range batch {
		if i >= len(resp.Uses) {
			p.done <- plugins.HostErrorf(plugins.HostErrUnavailable, "use of grant %s: no answer for it", p.use.ID)
			continue
		}
		item := resp.Uses[i]
		if item.Status != http.StatusOK || item.Error != "" {
			refused++
			p.done <- itemErr("use of grant "+p.use.ID, item.Status, item.Error)
			continue
		}
		p.done <- nil
	}
	metrics.IncrCounter([]string{"ice", "agent", "grant_uses"}, float32(len(batch)-refused))
	if refused > 0 {
		metrics.IncrCounter([]string{"ice", "agent", "grant_uses", "refused"}, float32(refused))
	}
	a.logger.Debug("grant uses committed", "uses", len(batch), "refused", refused, "index", resp.Index)
}
