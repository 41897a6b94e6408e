package rpc

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Dispatch and memory records (fsm/memory.go; the routes are listed in
// api/dispatch.go and api/memory.go).
//
// Authority, with ACLs on (with them off everything is allowed):
//
//   - dispatching a run of a component needs component write on it, as
//     deploying it does;
//   - reading a record needs memory read on its type: a list shows only
//     the records the token may read, a lineage hides the others;
//   - deprecating or invalidating one needs memory write on its type (the
//     cascade of an invalidation follows the state machine's rule).

// routeMemory registers the operator API of dispatch and memory records.
func (s *Server) routeMemory() {
	s.handle("POST /v1/components/{name}/dispatch", s.write(s.dispatchComponent))
	s.handle("GET /v1/memory", s.read(s.getMemory))
	s.handle("GET /v1/memory/{type}/{key}", s.read(s.getMemoryHistory))
	s.handle("GET /v1/memory/{type}/{key}/lineage", s.read(s.getMemoryLineage))
	s.handle("POST /v1/memory/{type}/{key}/deprecate", s.write(s.endMemoryRecord("deprecate", fsm.MemoryDeprecateType)))
	s.handle("POST /v1/memory/{type}/{key}/invalidate", s.write(s.endMemoryRecord("invalidate", fsm.MemoryInvalidateType)))
}

func (s *Server) dispatchComponent(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	cas, err := parseCAS(r)
	if err != nil {
		return err
	}
	var req api.DispatchRequest
	if err := decodeBody(r, &req); err != nil {
		return fmt.Errorf("dispatch %s: %w", name, err)
	}
	if err := api.CheckText("component name", name); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("dispatch %s: %w", name, err)
	}
	id := identityOf(r)
	if err := id.require(acl.KindComponent, name, acl.Write); err != nil {
		return fmt.Errorf("dispatch %s: %w", name, err)
	}
	h, err := id.operatorHeader(r, "dispatch "+name)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ComponentDispatchType, h, &fsm.ComponentDispatchRequest{Name: name, Input: req.Input, Meta: req.Meta, CAS: cas})
	if err != nil {
		return err
	}
	if len(res.RunIDs) != 1 || res.RunIDs[0] == "" {
		return fmt.Errorf("dispatch %s: the entry at %d created no run", name, res.Index)
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, api.DispatchResponse{Run: res.RunIDs[0], Index: res.Index})
	return nil
}

// getMemory lists the records the query selects and the identity may read.
func (s *Server) getMemory(r *http.Request, st *fsm.State, id *identity) (any, error) {
	q := r.URL.Query()
	status, err := api.ParseMemoryStatus(q.Get("status"))
	if err != nil {
		return nil, err
	}
	recs := st.Memory(fsm.MemoryFilter{Type: q.Get("type"), Key: q.Get("key"), Status: status, Run: q.Get("run")})
	return filtered(recs, acl.KindMemory, id, func(m *fsm.MemoryRecord) string { return m.Type })
}

// memoryRefOf reads the record named by the path, and ?version= or a
// body's version; version 0 is the newest.
func memoryRefOf(r *http.Request, version uint64) (fsm.MemoryRef, error) {
	ref := fsm.MemoryRef{Type: r.PathValue("type"), Key: r.PathValue("key"), Version: version}
	if _, err := fsm.ParseMemoryRef(fsm.MemoryRef{Type: ref.Type, Key: ref.Key}.String()); err != nil {
		return ref, fmt.Errorf("%v: %w", err, fsm.ErrBadRequest)
	}
	return ref, nil
}

// getMemoryHistory answers every version of a record, newest last.
func (s *Server) getMemoryHistory(r *http.Request, st *fsm.State, id *identity) (any, error) {
	ref, err := memoryRefOf(r, 0)
	if err != nil {
		return nil, err
	}
	if err := id.require(acl.KindMemory, ref.Type, acl.Read); err != nil {
		return nil, err
	}
	recs := st.Memory(fsm.MemoryFilter{Type: ref.Type, Key: ref.Key})
	if len(recs) == 0 {
		return nil, fmt.Errorf("memory record %s: %w", ref, fsm.ErrNotFound)
	}
	return recs, nil
}

// getMemoryLineage answers a record with what it was derived from and
// what was derived from it, transitively.
func (s *Server) getMemoryLineage(r *http.Request, st *fsm.State, id *identity) (any, error) {
	var version uint64
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version=%q: want a version number (0: the newest): %w", v, fsm.ErrBadRequest)
		}
		version = n
	}
	ref, err := memoryRefOf(r, version)
	if err != nil {
		return nil, err
	}
	if err := id.require(acl.KindMemory, ref.Type, acl.Read); err != nil {
		return nil, err
	}
	rec, ok := st.MemoryRecordOf(ref)
	if !ok {
		return nil, fmt.Errorf("memory record %s: %w", ref, fsm.ErrNotFound)
	}
	out := &api.MemoryLineage{Record: rec}
	w := lineageWalk{st: st, id: id, out: out, budget: api.MaxLineageNodes}
	out.Inputs = w.tree(rec, true, map[fsm.MemoryRef]bool{rec.Ref(): true})
	out.Derived = w.tree(rec, false, map[fsm.MemoryRef]bool{rec.Ref(): true})
	return out, nil
}

// lineageWalk builds the trees of a lineage, depth first, each record
// expanded once per tree and at most budget nodes in all.
type lineageWalk struct {
	st     *fsm.State
	id     *identity
	out    *api.MemoryLineage
	budget int
}

// tree returns the nodes below rec: its inputs (up) or the records
// derived from it (down).
func (w *lineageWalk) tree(rec *fsm.MemoryRecord, up bool, seen map[fsm.MemoryRef]bool) []api.MemoryNode {
	var next []fsm.MemoryRef
	if up {
		next = rec.Inputs
	} else {
		for _, d := range w.st.MemoryDerived(rec.Ref()) {
			next = append(next, d.Ref())
		}
	}
	var nodes []api.MemoryNode
	for _, ref := range next {
		if w.budget == 0 {
			w.out.Truncated = true
			break
		}
		w.budget--
		if !w.id.allows(acl.KindMemory, ref.Type, acl.Read) {
			w.out.Hidden++
			nodes = append(nodes, api.MemoryNode{Hidden: true})
			continue
		}
		n := api.MemoryNode{Ref: ref}
		m, ok := w.st.MemoryRecordOf(ref)
		switch {
		case !ok:
			n.Missing = true
		case seen[ref]:
			n.Record, n.Repeat = m, true
		default:
			seen[ref] = true
			n.Record = m
			n.Children = w.tree(m, up, seen)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// endMemoryRecord handles deprecate and invalidate of one record version.
func (s *Server) endMemoryRecord(step string, t fsm.MessageType) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.MemoryEndRequest
		if err := decodeBody(r, &req); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		ref, err := memoryRefOf(r, req.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		if err := req.CheckText(); err != nil {
			return fmt.Errorf("%s %s: %w", step, ref, err)
		}
		if req.Reason == "" {
			return fmt.Errorf("%s %s: a reason is required: %w", step, ref, fsm.ErrBadRequest)
		}
		id := identityOf(r)
		if err := id.require(acl.KindMemory, ref.Type, acl.Write); err != nil {
			return fmt.Errorf("%s %s: %w", step, ref, err)
		}
		h, err := id.operatorHeader(r, step+" "+ref.String()+": "+req.Reason)
		if err != nil {
			return err
		}
		res, err := s.propose(r, t, h, &fsm.MemoryEndRequest{Ref: ref, Reason: req.Reason})
		if err != nil {
			return err
		}
		out := api.MemoryEndResponse{Index: res.Index, Records: []*fsm.MemoryRecord{}}
		s.b.Read(func(st *fsm.State) {
			for _, m := range changedMemory(st, ref, res.Index, step == "invalidate") {
				if id.allows(acl.KindMemory, m.Type, acl.Read) {
					out.Records = append(out.Records, m)
				} else {
					out.Hidden++
				}
			}
		})
		w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// changedMemory is what the entry at index changed: the version of ref's
// key it ended and, with cascade, the records derived from it (breadth
// first, as the state machine walks) that the entry invalidated.
func changedMemory(st *fsm.State, ref fsm.MemoryRef, index uint64, cascade bool) []*fsm.MemoryRecord {
	var target *fsm.MemoryRecord
	for _, m := range st.Memory(fsm.MemoryFilter{Type: ref.Type, Key: ref.Key}) {
		if m.ModifyIndex == index && (ref.Version == 0 || m.Version == ref.Version) {
			target = m
		}
	}
	if target == nil {
		return nil
	}
	out := []*fsm.MemoryRecord{target}
	if !cascade {
		return out
	}
	seen := map[fsm.MemoryRef]bool{target.Ref(): true}
	level := []*fsm.MemoryRecord{target}
	for len(level) > 0 {
		var next []*fsm.MemoryRecord
		for _, parent := range level {
			for _, d := range st.MemoryDerived(parent.Ref()) {
				if seen[d.Ref()] {
					continue
				}
				seen[d.Ref()] = true
				next = append(next, d)
				if d.ModifyIndex == index && d.Status == fsm.MemoryInvalidated {
					out = append(out, d)
				}
			}
		}
		level = next
	}
	return out
}

// componentInfos adds to components what the server derives: the budget
// at now and whether they are complete, from their runs (read once, and
// only when some component could be complete).
func componentInfos(st *fsm.State, comps []*fsm.Component, now int64) []api.ComponentInfo {
	var runs map[string][]*fsm.Run
	for _, c := range comps {
		if c.Status == fsm.ComponentRunning && (c.Dispatch || c.Count > 0) && slotsFree(st, c) {
			runs = map[string][]*fsm.Run{}
			break
		}
	}
	switch {
	case runs != nil && len(comps) == 1 && comps[0].Dispatch:
		// Whether a dispatch component is complete does not depend on
		// the order of its runs.
		runs[comps[0].Name] = st.UnorderedRuns(comps[0].Name)
	case runs != nil && len(comps) == 1:
		runs[comps[0].Name] = st.Runs(comps[0].Name)
	case runs != nil:
		want := map[string]bool{}
		for _, c := range comps {
			want[c.Name] = true
		}
		for _, r := range st.Runs("") {
			if want[r.Component] {
				runs[r.Component] = append(runs[r.Component], r)
			}
		}
	}
	out := make([]api.ComponentInfo, len(comps))
	for i, c := range comps {
		out[i] = api.ComponentInfo{Component: *c, BudgetWindowEnd: fsm.BudgetWindowEnd(c, now)}
		if reason, exhausted := fsm.BudgetExhausted(c, now); exhausted {
			out[i].BudgetExhausted = reason
		}
		out[i].Complete = runs != nil && complete(c, runs[c.Name])
	}
	return out
}

// slotsFree reports whether no slot of c holds a run in flight (a quick
// test before reading runs).
func slotsFree(st *fsm.State, c *fsm.Component) bool {
	for slot := 0; slot < c.Count; slot++ {
		if _, busy := st.SlotRun(c.Name, slot); busy {
			return false
		}
	}
	return true
}

// complete reports whether a running component's work is done: a
// dispatched one has no run in flight and at least one COMMITTED; another
// has no run in flight and the newest run of the current spec of each of
// its slots ended COMMITTED. A service component's runs never commit.
// runs are in creation order.
func complete(c *fsm.Component, runs []*fsm.Run) bool {
	if c.Status != fsm.ComponentRunning {
		return false
	}
	committed := false
	last := make(map[int]*fsm.Run, c.Count)
	for _, r := range runs {
		if r.State != fsm.StateTerminated {
			return false
		}
		committed = committed || r.Outcome == fsm.StateCommitted
		if !r.Dispatch && r.Slot >= 0 && r.Slot < c.Count && r.Generation >= c.RunGeneration {
			last[r.Slot] = r
		}
	}
	if c.Dispatch {
		return committed
	}
	if c.Count == 0 {
		return false
	}
	for slot := 0; slot < c.Count; slot++ {
		if r := last[slot]; r == nil || r.Outcome != fsm.StateCommitted {
			return false
		}
	}
	return true
}

// getComponents lists the components the identity may read.
func (s *Server) getComponents(r *http.Request, st *fsm.State, id *identity) (any, error) {
	comps, err := filtered(st.Components(), acl.KindComponent, id, func(c *fsm.Component) string { return c.Name })
	if err != nil {
		return nil, err
	}
	return componentInfos(st, comps, s.b.Now().UnixNano()), nil
}

func (s *Server) getComponent(r *http.Request, st *fsm.State, id *identity) (any, error) {
	name := r.PathValue("name")
	if err := id.require(acl.KindComponent, name, acl.Read); err != nil {
		return nil, err
	}
	c, ok := st.Component(name)
	if !ok {
		return nil, fmt.Errorf("component %q: %w", name, fsm.ErrNotFound)
	}
	return componentInfos(st, []*fsm.Component{c}, s.b.Now().UnixNano())[0], nil
}
