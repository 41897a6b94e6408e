package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// Memory reads, agent side: a run's plugin reads records through the host
// channel; the agent asks a server as the run's node at the run's epoch
// (GET /v1/agent/memory), records every version it handed over (readLedger)
// and reports them, with the plugin's cost, in the transition that ends
// the execution (into VALIDATING or ABORTED), so the record the run's
// output becomes names exactly what it was derived from.

// maxRunReads is how many distinct record versions one run may be served:
// the state machine refuses a report of more.
const maxRunReads = 256

// memoryAPI is the part of a server's API memory reads need: the api
// package's Client has it.
type memoryAPI interface {
	AgentMemory(ctx context.Context, q api.AgentMemoryQuery) ([]fsm.MemoryRecord, uint64, error)
}

// readLedger is the record versions served to one run's plugin, in the
// order first served. Once sealed (its report is being made) it serves no
// more: a version handed over after the report would be missing from the
// run's lineage.
type readLedger struct {
	mu     sync.Mutex
	seen   map[fsm.MemoryRef]bool
	order  []fsm.MemoryRef
	sealed bool
}

func newReadLedger() *readLedger { return &readLedger{seen: map[fsm.MemoryRef]bool{}} }

// admit records refs as served, all or none: it refuses once the ledger is
// sealed or when they would take it past maxRunReads.
func (l *readLedger) admit(run string, refs []fsm.MemoryRef) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sealed {
		return plugins.HostErrorf(plugins.HostErrRefused, "run %s: its execution ended; no more memory reads are reported", run)
	}
	fresh := 0
	for _, r := range refs {
		if !l.seen[r] {
			fresh++
		}
	}
	if len(l.order)+fresh > maxRunReads {
		return plugins.HostErrorf(plugins.HostErrRefused, "run %s: read %d record versions, %d more would pass the %d a run may report", run, len(l.order), fresh, maxRunReads)
	}
	for _, r := range refs {
		if !l.seen[r] {
			l.seen[r] = true
			l.order = append(l.order, r)
		}
	}
	return nil
}

// seal ends the ledger and returns the versions served, sorted (nil: none).
// A nil ledger (the plugin never started) has none.
func (l *readLedger) seal() []fsm.MemoryRef {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sealed = true
	if len(l.order) == 0 {
		return nil
	}
	out := slices.Clone(l.order)
	slices.SortFunc(out, func(a, b fsm.MemoryRef) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// memoryServer returns a server's memory API, refusing while the lease
// has lapsed.
func (a *Agent) memoryServer() (memoryAPI, error) {
	if !a.lease.valid() {
		return nil, a.errLeaseLapsed()
	}
	c, err := a.servers.client()
	if err != nil {
		return nil, plugins.HostErrorf(plugins.HostErrUnavailable, "no server: %v", err)
	}
	ma, ok := c.(memoryAPI)
	if !ok {
		return nil, plugins.HostErrorf(plugins.HostErrUnavailable, "server %s has no memory API", c.Addr())
	}
	return ma, nil
}

// memoryErr maps a failed memory request onto a host error.
func memoryErr(op string, err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusForbidden:
			return plugins.HostErrorf(plugins.HostErrNotAllowed, "%s", ae.Message)
		case ae.Status == http.StatusNotFound:
			return plugins.HostErrorf(plugins.HostErrNotFound, "%s", ae.Message)
		case ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests:
			return plugins.HostErrorf(plugins.HostErrRefused, "%s: %s", op, ae.Message)
		}
		return plugins.HostErrorf(plugins.HostErrUnavailable, "%s: %s (HTTP %d)", op, ae.Message, ae.Status)
	}
	var he *plugins.HostError
	if errors.As(err, &he) {
		return err
	}
	return plugins.HostErrorf(plugins.HostErrUnavailable, "%s: %v", op, err)
}

// ReadMemory reads one record version for the run and records it.
func (h *runHost) ReadMemory(ctx context.Context, typ, key string, version uint64) (plugins.MemoryRecord, error) {
	ref := fsm.MemoryRef{Type: typ, Key: key, Version: version}
	if key == "" {
		return plugins.MemoryRecord{}, h.refused(ref, plugins.HostErrorf(plugins.HostErrNotFound, "read memory %s: a key is required (ListMemory lists a type)", typ))
	}
	recs, err := h.readMemory(ctx, api.AgentMemoryQuery{Type: typ, Key: key, Version: version})
	if err != nil {
		return plugins.MemoryRecord{}, h.refused(ref, err)
	}
	if len(recs) != 1 || recs[0].Type != typ || recs[0].Key != key || (version != 0 && recs[0].Version != version) {
		return plugins.MemoryRecord{}, h.refused(ref, plugins.HostErrorf(plugins.HostErrUnavailable, "read memory %s: the server answered %d records, not the one asked for", ref, len(recs)))
	}
	return recs[0], nil
}

// ListMemory lists the ACTIVE records of a type for the run and records
// every one.
func (h *runHost) ListMemory(ctx context.Context, typ string) ([]plugins.MemoryRecord, error) {
	recs, err := h.readMemory(ctx, api.AgentMemoryQuery{Type: typ})
	if err != nil {
		return nil, h.refused(fsm.MemoryRef{Type: typ, Key: "*"}, err)
	}
	return recs, nil
}

// readMemory asks a server, records what it answered in the run's ledger
// and converts it; a version the ledger refuses is not handed over.
func (h *runHost) readMemory(ctx context.Context, q api.AgentMemoryQuery) ([]plugins.MemoryRecord, error) {
	q.Node, q.Run, q.Epoch = h.a.cfg.NodeID, h.run, h.epoch
	op := fmt.Sprintf("read memory %s for run %s", fsm.MemoryRef{Type: q.Type, Key: q.Key, Version: q.Version}, h.run)
	if q.Key == "" {
		op = fmt.Sprintf("list memory %s for run %s", q.Type, h.run)
	}
	if h.reads == nil {
		return nil, plugins.HostErrorf(plugins.HostErrRefused, "%s: the run's reads are not recorded here", op)
	}
	ma, err := h.a.memoryServer()
	if err != nil {
		return nil, err
	}
	if !h.executing.Load() {
		if err := h.awaitExecuting(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		h.executing.Store(true)
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, h.a.cfg.RequestTimeout)
	recs, idx, err := ma.AgentMemory(rctx, q)
	cancel()
	if err != nil {
		return nil, memoryErr(op, err)
	}
	refs := make([]fsm.MemoryRef, len(recs))
	for i, m := range recs {
		refs[i] = m.Ref()
	}
	if err := h.reads.admit(h.run, refs); err != nil {
		return nil, err
	}
	out := make([]plugins.MemoryRecord, len(recs))
	for i, m := range recs {
		out[i] = memoryOf(m)
	}
	metrics.IncrCounter([]string{"ice", "agent", "memory", "reads"}, 1)
	metrics.IncrCounter([]string{"ice", "agent", "memory", "records"}, float32(len(recs)))
	metrics.MeasureSince([]string{"ice", "agent", "memory", "read"}, start)
	h.a.logger.Debug("memory read", "run", h.run, "type", q.Type, "key", q.Key, "version", q.Version, "records", len(recs), "index", idx)
	return out, nil
}

// refused counts and logs a read the plugin is refused, and returns err.
func (h *runHost) refused(ref fsm.MemoryRef, err error) error {
	code := plugins.HostErrUnknown
	var he *plugins.HostError
	if errors.As(err, &he) {
		code = he.Code
	}
	metrics.IncrCounterWithLabels([]string{"ice", "agent", "memory", "refused"}, 1, []metrics.Label{{Name: "code", Value: code.String()}})
	switch code {
	case plugins.HostErrNotFound:
		h.a.logger.Debug("memory read: no such record", "run", h.run, "record", ref.String(), "error", err)
	default:
		h.a.logger.Info("memory read refused", "run", h.run, "record", ref.String(), "code", code.String(), "error", err)
	}
	return err
}

// memoryOf converts a record of the state into the plugin's view.
func memoryOf(m fsm.MemoryRecord) plugins.MemoryRecord {
	out := plugins.MemoryRecord{
		Type: m.Type, Key: m.Key, Version: m.Version, Value: m.Value, Status: string(m.Status),
		Run: m.Run, Index: m.Index,
	}
	if m.Time != 0 {
		out.Time = time.Unix(0, m.Time)
	}
	return out
}
