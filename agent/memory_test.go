package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// fakeMemory is the servers' memory records as GET /v1/agent/memory
// answers them: type "fact" readable, anything else refused.
type fakeMemory struct {
	mu      sync.Mutex
	records []fsm.MemoryRecord
	queries []api.AgentMemoryQuery
}

func (f *fakeServer) AgentMemory(_ context.Context, q api.AgentMemoryQuery) ([]fsm.MemoryRecord, uint64, error) {
	m := f.mem
	if m == nil {
		return nil, 0, &api.APIError{Status: http.StatusNotFound, Message: "no route"}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queries = append(m.queries, q)
	if q.Type != "fact" {
		return nil, 0, &api.APIError{Status: http.StatusForbidden, Message: fmt.Sprintf("component summarize may not read records of type %s (it reads [fact])", q.Type)}
	}
	var out []fsm.MemoryRecord
	for _, r := range m.records {
		switch {
		case r.Type != q.Type:
		case q.Key == "" && r.Status == fsm.MemoryActive:
			out = append(out, r)
		case q.Key == r.Key && (q.Version == r.Version || q.Version == 0 && r.Status == fsm.MemoryActive):
			out = append(out, r)
		}
	}
	if q.Key != "" && len(out) == 0 {
		return nil, 0, &api.APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("memory record %s/%s: not found", q.Type, q.Key)}
	}
	return out, 1, nil
}

func newFakeMemory() *fakeMemory {
	return &fakeMemory{records: []fsm.MemoryRecord{
		{Type: "fact", Key: "doc-1", Version: 1, Value: "old one", Status: fsm.MemorySuperseded, Run: "e1", Index: 10, Time: 100},
		{Type: "fact", Key: "doc-1", Version: 2, Value: "one", Status: fsm.MemoryActive, Run: "e2", Index: 11, Time: 110},
		{Type: "fact", Key: "doc-2", Version: 1, Value: "two", Status: fsm.MemoryActive, Run: "e3", Index: 12, Time: 120},
	}}
}

// readerProcess is a finite plugin that serves the host channel and, in
// Execute, reads memory through it and reports cost, as an SDK plugin
// would.
type readerProcess struct {
	*fakeProcess
	hostMu sync.Mutex
	host   plugins.Host
	hostUp chan struct{} // closed once the agent opened the channel

	got plugins.ExecuteRequest
	// notAllowed is the error of a read of type "summary".
	notAllowed error
}

func newReaderProcess(p *fakeProcess) *readerProcess {
	return &readerProcess{fakeProcess: p, hostUp: make(chan struct{})}
}

func (p *readerProcess) Component() plugins.Component { return p }

func (p *readerProcess) ServeHost(ctx context.Context, h plugins.Host) error {
	p.hostMu.Lock()
	if p.host == nil {
		p.host = h
		close(p.hostUp)
	}
	p.hostMu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (p *readerProcess) ExecuteRun(ctx context.Context, req plugins.ExecuteRequest) (plugins.ExecuteResult, error) {
	select {
	case <-p.hostUp:
	case <-ctx.Done():
		return plugins.ExecuteResult{}, ctx.Err()
	}
	p.hostMu.Lock()
	h := p.host
	p.got = req
	p.hostMu.Unlock()
	if w := req.Meta["write"]; w != "" {
		// A writer: its output becomes a record.
		return plugins.ExecuteResult{Output: w, Cost: map[string]uint64{"tokens": 1}}, nil
	}
	cost := map[string]uint64{"tokens": 7, "bad unit": 1}
	doc := "doc-" + req.Meta["doc"]
	m, err := h.ReadMemory(ctx, "fact", doc, 0)
	if err != nil {
		return plugins.ExecuteResult{Cost: cost}, err
	}
	if _, err := h.ReadMemory(ctx, "fact", doc, 1); err != nil {
		return plugins.ExecuteResult{Cost: cost}, err
	}
	if _, err := h.ReadMemory(ctx, "fact", doc, 0); err != nil { // again: reported once
		return plugins.ExecuteResult{Cost: cost}, err
	}
	all, err := h.ListMemory(ctx, "fact")
	if err != nil {
		return plugins.ExecuteResult{Cost: cost}, err
	}
	_, nerr := h.ReadMemory(ctx, "summary", "all", 0)
	_, missing := h.ReadMemory(ctx, "fact", "doc-9", 0)
	p.hostMu.Lock()
	p.notAllowed = errors.Join(nerr, missing)
	p.hostMu.Unlock()
	out := fmt.Sprintf("%s %s@%d of %d, input %q", req.Meta["doc"], m.Value, m.Version, len(all), req.Input)
	if strings.Contains(req.Input, "fail") {
		return plugins.ExecuteResult{Cost: cost}, errors.New("model refused")
	}
	return plugins.ExecuteResult{Output: out, Cost: cost}, nil
}

// memoryRig is an agent with finite reader plugins and the fake memory.
func memoryRig(t *testing.T) *rig {
	return newRig(t, func(_ *Config, r *rig) {
		r.host.kind = plugins.KindFinite
		r.host.wrap = func(p *fakeProcess) pluginProcess { return newReaderProcess(p) }
		r.server.mem = newFakeMemory()
	})
}

// dispatched is a dispatched run of batch placed on n1.
func dispatched(id, input string, meta map[string]string) fsm.Run {
	run := provisioned(id, "batch", 3)
	run.Dispatch, run.Input, run.Meta, run.Slot = true, input, meta, -1
	return run
}

func (r *rig) readerOf(id string) *readerProcess {
	r.t.Helper()
	// Launch returned the wrapper to the worker; find it through the
	// supervisor's record of the run's process.
	var proc pluginProcess
	eventually(r.t, "run "+id+"'s plugin", func() bool {
		r.inspect(func(s *supervisor) {
			if lr := s.runs[id]; lr != nil {
				proc = lr.proc
			}
		})
		return proc != nil
	})
	return proc.(*readerProcess)
}

var wantReads = []fsm.MemoryRef{{Type: "fact", Key: "doc-1", Version: 1}, {Type: "fact", Key: "doc-1", Version: 2}, {Type: "fact", Key: "doc-2", Version: 1}}

// TestMemoryReadsReportedWithValidating: a dispatched run's plugin gets
// the run's input and meta (not the spec's input), reads memory through
// the agent as the run's node at its epoch, and the VALIDATING report
// carries every version served, once each and sorted, and the plugin's
// cost without the unit the runtime would refuse; an unlisted type is
// refused as not allowed, a missing record as not found.
func TestMemoryReadsReportedWithValidating(t *testing.T) {
	r := memoryRig(t)
	r.server.place(dispatched("r1", "the input", map[string]string{"doc": "1"}))
	r.start()
	tr := r.waitReport("r1", fsm.StateValidating)
	p := r.readerOf("r1")
	p.hostMu.Lock()
	got, nerr, host := p.got, p.notAllowed, p.host
	p.hostMu.Unlock()
	if got.Input != "the input" || got.Meta["doc"] != "1" {
		t.Fatalf("the plugin got %+v, want the dispatch's input and meta", got)
	}
	if tr.Output != `1 one@2 of 2, input "the input"` {
		t.Fatalf("output %q", tr.Output)
	}
	if !slices.Equal(tr.Reads, wantReads) {
		t.Fatalf("reported reads %v, want %v", tr.Reads, wantReads)
	}
	if len(tr.Cost) != 1 || tr.Cost["tokens"] != 7 {
		t.Fatalf("reported cost %v, want tokens 7 (the invalid unit dropped)", tr.Cost)
	}
	if !errors.Is(nerr, &plugins.HostError{Code: plugins.HostErrNotAllowed}) || !strings.Contains(nerr.Error(), "may not read records of type summary (it reads [fact])") {
		t.Fatalf("read of an unlisted type: %v, want not allowed with the server's reason", nerr)
	}
	if !errors.Is(nerr, &plugins.HostError{Code: plugins.HostErrNotFound}) {
		t.Fatalf("read of a missing record: %v, want not found", nerr)
	}
	r.server.mem.mu.Lock()
	qs := slices.Clone(r.server.mem.queries)
	r.server.mem.mu.Unlock()
	for _, q := range qs {
		if q.Node != "n1" || q.Run != "r1" || q.Epoch != 3 {
			t.Fatalf("query %+v, want node n1, run r1, epoch 3", q)
		}
	}
	if !r.logs.contains("memory read refused") {
		t.Fatal("the refused read was not logged")
	}
	// The execution ended: the run's plugin reads no more.
	if _, err := host.ReadMemory(context.Background(), "fact", "doc-2", 0); !errors.Is(err, &plugins.HostError{Code: plugins.HostErrRefused}) {
		t.Fatalf("read after VALIDATING: %v, want refused", err)
	}
}

// TestMemoryReadsReportedWithAborted: a failed Execute's reads and cost
// are reported with ABORTED.
func TestMemoryReadsReportedWithAborted(t *testing.T) {
	r := memoryRig(t)
	r.server.place(dispatched("r1", "fail please", map[string]string{"doc": "1"}))
	r.start()
	tr := r.waitReport("r1", fsm.StateAborted)
	if !strings.Contains(tr.Reason, "model refused") || !slices.Equal(tr.Reads, wantReads) || len(tr.Cost) != 1 || tr.Cost["tokens"] != 7 {
		t.Fatalf("ABORTED report %+v, want the failure with reads %v and cost tokens 7", tr, wantReads)
	}
}

// TestStandingRunGetsSpecInput: a run that was not dispatched executes
// with its spec's input and no meta.
func TestStandingRunGetsSpecInput(t *testing.T) {
	r := newRig(t, func(_ *Config, r *rig) {
		r.host.kind = plugins.KindFinite
		r.host.wrap = func(p *fakeProcess) pluginProcess { return newReaderProcess(p) }
		r.server.mem = &fakeMemory{records: []fsm.MemoryRecord{{Type: "fact", Key: "doc-", Version: 1, Status: fsm.MemoryActive, Value: "x"}}}
	})
	r.server.place(provisioned("r1", "batch", 3))
	r.start()
	tr := r.waitReport("r1", fsm.StateValidating)
	if want := []fsm.MemoryRef{{Type: "fact", Key: "doc-", Version: 1}}; !slices.Equal(tr.Reads, want) {
		t.Fatalf("reported reads %v, want %v", tr.Reads, want)
	}
	p := r.readerOf("r1")
	p.hostMu.Lock()
	defer p.hostMu.Unlock()
	if p.got.Input != "in" || p.got.Meta != nil {
		t.Fatalf("the plugin got %+v, want the spec's input and no meta", p.got)
	}
}

// TestReadLedger: versions are recorded once each; past maxRunReads a read
// is refused whole; once sealed nothing more is admitted.
func TestReadLedger(t *testing.T) {
	l := newReadLedger()
	refs := make([]fsm.MemoryRef, maxRunReads)
	for i := range refs {
		refs[i] = fsm.MemoryRef{Type: "fact", Key: fmt.Sprintf("k%03d", maxRunReads-i), Version: 1}
	}
	if err := l.admit("r", refs[:10]); err != nil {
		t.Fatal(err)
	}
	if err := l.admit("r", refs); err != nil {
		t.Fatalf("admit all %d (10 seen before): %v", maxRunReads, err)
	}
	more := []fsm.MemoryRef{refs[0], {Type: "fact", Key: "k999", Version: 1}}
	if err := l.admit("r", more); !errors.Is(err, &plugins.HostError{Code: plugins.HostErrRefused}) {
		t.Fatalf("past the limit: %v, want refused", err)
	}
	if err := l.admit("r", refs[:3]); err != nil {
		t.Fatalf("versions seen before: %v", err)
	}
	got := l.seal()
	if len(got) != maxRunReads || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Key < got[j].Key }) {
		t.Fatalf("sealed %d reads (sorted: %v), want %d sorted", len(got), sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Key < got[j].Key }), maxRunReads)
	}
	if err := l.admit("r", refs[:1]); !errors.Is(err, &plugins.HostError{Code: plugins.HostErrRefused}) {
		t.Fatalf("after seal: %v, want refused", err)
	}
	var none *readLedger
	if none.seal() != nil || newReadLedger().seal() != nil {
		t.Fatal("an empty ledger reports reads")
	}
}
