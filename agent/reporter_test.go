package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
)

func TestReportQueueKeepsOrderAndNeverBlocks(t *testing.T) {
	q := newReportQueue()
	for i := range 10_000 { // far more than any channel buffer held before
		q.push(fsm.Transition{Run: fmt.Sprint(i)})
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("a queue with transitions is not ready")
	}
	first := q.take(maxReportBatch)
	if len(first) != maxReportBatch || first[0].Run != "0" || first[maxReportBatch-1].Run != fmt.Sprint(maxReportBatch-1) {
		t.Fatalf("first batch of %d: %v ... %v", len(first), first[0], first[len(first)-1])
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("a queue with transitions left is not ready again")
	}
	rest := q.take(20_000)
	if len(rest) != 10_000-maxReportBatch || rest[0].Run != fmt.Sprint(maxReportBatch) {
		t.Fatalf("rest: %d from %v", len(rest), rest[0])
	}
	if got := q.take(1); len(got) != 0 {
		t.Fatalf("empty queue gave %v", got)
	}
}

// reporterAgent is an agent with only what its reporter needs, and its
// fake server.
func reporterAgent(t *testing.T) (*Agent, *fakeServer) {
	srv := newFakeServer()
	srv.apply = false
	a := &Agent{
		cfg:     Config{NodeID: "n1", RequestTimeout: 10 * time.Second, ReportRetryInterval: 5 * time.Millisecond},
		logger:  hclog.NewNullLogger(),
		servers: &serverPool{static: []string{"fake"}, dial: func(string) serverAPI { return srv }},
		reports: newReportQueue(),
	}
	a.lease.renewed(time.Now(), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	a.tasks.Go(func() { a.reportLoop(ctx) })
	t.Cleanup(func() { cancel(); a.tasks.Wait() })
	return a, srv
}

// TestReporterBatchesAndRetries: transitions queued while a report is in
// flight go out together, in order; a batch that fails is sent again until
// it is delivered, once.
func TestReporterBatchesAndRetries(t *testing.T) {
	a, srv := reporterAgent(t)
	srv.reportGate.close()
	a.reports.push(fsm.Transition{Run: "r0", To: fsm.StateContextReady})
	eventually(t, "the first report in flight", func() bool { return srv.reportGate.waiting.Load() == 1 })
	for i := 1; i <= 5; i++ {
		a.reports.push(fsm.Transition{Run: fmt.Sprint("r", i), To: fsm.StateContextReady})
	}
	srv.reportGate.open()
	eventually(t, "every transition delivered", func() bool { return len(srv.reportsOf("r5")) == 1 })
	if _, _, batches := srv.counts(); batches != 2 {
		t.Fatalf("%d batches, want 2: the first alone, then the rest", batches)
	}
	// A failing batch is retried, and delivered once.
	srv.mu.Lock()
	srv.reportErrs = []error{errors.New("leader lost"), errors.New("timeout")}
	srv.mu.Unlock()
	a.reports.push(fsm.Transition{Run: "r6", To: fsm.StateExecuting})
	eventually(t, "the retried transition delivered", func() bool { return len(srv.reportsOf("r6")) == 1 })
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.delivered) != 7 || srv.batches != 3 {
		t.Fatalf("%d transitions in %d batches, want 7 in 3", len(srv.delivered), srv.batches)
	}
	for i, tr := range srv.delivered {
		if tr.Run != fmt.Sprint("r", i) {
			t.Fatalf("delivered %v, out of order", srv.delivered)
		}
	}
}

// TestReporterDropsForwardMovesAfterLeaseLoss: a batch that cannot be
// delivered once the lease ran out keeps only what ends runs.
func TestReporterDropsForwardMovesAfterLeaseLoss(t *testing.T) {
	a, srv := reporterAgent(t)
	srv.mu.Lock()
	srv.reportErrs = []error{errors.New("unreachable"), errors.New("unreachable")}
	srv.mu.Unlock()
	a.lease.renewed(time.Now().Add(-time.Hour), time.Second) // ran out
	a.reports.push(fsm.Transition{Run: "fwd", To: fsm.StateExecuting})
	a.reports.push(fsm.Transition{Run: "end", To: fsm.StateTerminated})
	a.reports.push(fsm.Transition{Run: "abort", To: fsm.StateAborted, Reason: "crash"})
	eventually(t, "the end reports delivered", func() bool { return len(srv.reportsOf("abort")) == 1 })
	if got := srv.reportsOf("fwd"); len(got) != 0 {
		t.Fatalf("a forward move was delivered after the lease ran out: %v", got)
	}
	if len(srv.reportsOf("end")) != 1 {
		t.Fatal("TERMINATED not delivered")
	}
}
