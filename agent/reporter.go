package agent

import (
	"context"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// maxReportBatch bounds the transitions of one report entry.
const maxReportBatch = 256

// report queues a transition of one of this node's runs. Reports are sent
// in order, batched into one log entry per flush.
func (a *Agent) report(t fsm.Transition) {
	select {
	case a.reports <- t:
	case <-a.shutdownCh:
	}
}

// reportLoop sends queued transitions: everything queued while the
// previous request was in flight goes in the next one. A batch that could
// not be delivered is retried until it is or the agent stops (forward
// moves are dropped once the lease is lost); a delivered transition the
// state machine rejected is logged and dropped (the watch loop re-derives
// what to do from the committed state).
func (a *Agent) reportLoop() {
	defer a.wg.Done()
	var batch []fsm.Transition
	for {
		if len(batch) == 0 {
			select {
			case t := <-a.reports:
				batch = append(batch, t)
			case <-a.shutdownCh:
				return
			}
		}
	drain:
		for len(batch) < maxReportBatch {
			select {
			case t := <-a.reports:
				batch = append(batch, t)
			default:
				break drain
			}
		}
		if err := a.send(batch); err != nil {
			a.logger.Warn("report failed, retrying", "transitions", len(batch), "error", err)
			select {
			case <-a.shutdownCh:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if !a.leaseValid() {
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
// which stay true however long delivery takes. The dropped ones are
// forgotten as sent, so a later sync derives them again if still needed.
func (a *Agent) dropForward(batch []fsm.Transition) []fsm.Transition {
	kept := batch[:0]
	a.reportedMu.Lock()
	defer a.reportedMu.Unlock()
	for _, t := range batch {
		if t.To == fsm.StateAborted || t.To == fsm.StateTerminated {
			kept = append(kept, t)
			continue
		}
		delete(a.reported, t.Run)
		a.logger.Warn("dropping report: lease lost", "run", t.Run, "to", t.To)
	}
	return kept
}

func (a *Agent) send(batch []fsm.Transition) error {
	c, err := a.servers.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := c.Report(ctx, a.cfg.NodeID, batch)
	if err != nil {
		a.servers.failed(c.Addr())
		return err
	}
	metrics.MeasureSince([]string{"ice", "agent", "report"}, start)
	metrics.IncrCounter([]string{"ice", "agent", "transitions"}, float32(len(batch)))
	for i, msg := range res.Errors {
		if msg != "" {
			a.logger.Debug("transition rejected", "run", batch[i].Run, "to", batch[i].To, "error", msg)
		} else {
			a.logger.Info("run transition committed", "run", batch[i].Run, "to", batch[i].To, "index", res.Index, "reason", batch[i].Reason)
		}
	}
	return nil
}
