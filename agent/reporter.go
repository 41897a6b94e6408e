package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// maxReportBatch bounds the transitions of one report entry.
const maxReportBatch = 256

// reportQueue holds the transitions waiting to be sent, in order. push
// never blocks, so the supervisor never waits on the reporter or the
// network.
type reportQueue struct {
	mu      sync.Mutex
	pending []fsm.Transition
	// ready holds a token while pending may be non-empty.
	ready chan struct{}
}

func newReportQueue() *reportQueue { return &reportQueue{ready: make(chan struct{}, 1)} }

// push queues a transition.
func (q *reportQueue) push(t fsm.Transition) {
	q.mu.Lock()
	q.pending = append(q.pending, t)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes and returns up to n queued transitions, oldest first.
func (q *reportQueue) take(n int) []fsm.Transition {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(n, len(q.pending))
	out := append([]fsm.Transition(nil), q.pending[:k]...)
	q.pending = q.pending[k:]
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go
	} else {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return out
}

// reportLoop sends queued transitions: everything queued while the
// previous request was in flight goes in the next one. A batch that could
// not be delivered is retried until it is or the agent stops (forward
// moves are dropped once the lease is lost); a delivered transition the
// state machine rejected is logged and dropped (the supervisor re-derives
// what to do from the committed state).
func (a *Agent) reportLoop(ctx context.Context) {
	var batch []fsm.Transition
	for {
		if len(batch) == 0 {
			select {
			case <-a.reports.ready:
			case <-ctx.Done():
				return
			}
		}
		batch = append(batch, a.reports.take(maxReportBatch-len(batch))...)
		if len(batch) == 0 {
			continue
		}
		if err := a.send(ctx, batch); err != nil {
			a.logger.Warn("report failed, retrying", "transitions", len(batch), "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.cfg.ReportRetryInterval):
			}
			if !a.lease.valid() {
				batch = a.dropForward(batch)
			}
			continue
		}
		batch = batch[:0]
	}
}

// dropForward drops, once the lease is lost, the reports that move runs
// forward (they would claim progress the agent no longer has authority
// for), and keeps retrying the ones that end runs (ABORTED, TERMINATED),
// which stay true however long delivery takes. A run whose forward report
// was dropped was killed by fencing; the supervisor reports what it needs
// from the committed state once the lease is back.
func (a *Agent) dropForward(batch []fsm.Transition) []fsm.Transition {
	kept := batch[:0]
	for _, t := range batch {
		if t.To == fsm.StateAborted || t.To == fsm.StateTerminated {
			kept = append(kept, t)
			continue
		}
		a.logger.Warn("dropping report: lease lost", "run", t.Run, "to", t.To)
	}
	return kept
}

// send delivers one batch to the current server.
func (a *Agent) send(ctx context.Context, batch []fsm.Transition) error {
	c, err := a.servers.client()
	if err != nil {
		return fmt.Errorf("report %d transitions: %w", len(batch), err)
	}
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	res, err := c.Report(rctx, a.cfg.NodeID, batch)
	if err != nil {
		a.servers.failed(c.Addr())
		return fmt.Errorf("report %d transitions to %s: %w", len(batch), c.Addr(), err)
	}
	metrics.MeasureSince([]string{"ice", "agent", "report"}, start)
	metrics.IncrCounter([]string{"ice", "agent", "transitions"}, float32(len(batch)))
	for i, msg := range res.Errors {
		if i >= len(batch) {
			break
		}
		if msg != "" {
			a.logger.Debug("transition rejected", "run", batch[i].Run, "to", batch[i].To, "error", msg)
		} else {
			a.logger.Info("run transition committed", "run", batch[i].Run, "to", batch[i].To, "index", res.Index, "reason", batch[i].Reason)
		}
	}
	return nil
}
