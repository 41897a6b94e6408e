package rpc

import (
	"fmt"
	"net/http"
	"strconv"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Memory reads of running plugins (fsm/memory.go): a plugin reads through
// its agent, which asks here as the run's node at the run's epoch
// (api.AgentMemoryQuery). The run must be held by that node at that epoch
// and EXECUTING, and its component's spec must list the type in its
// reads. Reads change nothing: the agent reports what it served with the
// end of the execution (Transition.Reads), which the state machine checks
// again. A consistent read by default, so the fencing is the leader's.

// routeAgentMemory registers the agent API through which a running
// plugin reads memory records.
func (s *Server) routeAgentMemory() {
	s.handle("GET /v1/agent/memory", s.read(s.getAgentMemory))
}

// getAgentMemory answers GET /v1/agent/memory?node=&run=&epoch=&type=&key=&version=.
func (s *Server) getAgentMemory(r *http.Request, st *fsm.State, id *identity) (any, error) {
	out, err := agentMemory(r, st, id)
	if err != nil {
		metrics.IncrCounterWithLabels([]string{"ice", "agent_memory", "refused"}, 1, []metrics.Label{{Name: "status", Value: strconv.Itoa(statusFor(err))}})
		return nil, err
	}
	metrics.IncrCounter([]string{"ice", "agent_memory", "records"}, float32(len(out.Records)))
	return out, nil
}

func agentMemory(r *http.Request, st *fsm.State, id *identity) (*api.AgentMemoryResponse, error) {
	q := r.URL.Query()
	node, runID, typ, key := q.Get("node"), q.Get("run"), q.Get("type"), q.Get("key")
	if node == "" || runID == "" || typ == "" {
		return nil, fmt.Errorf("read memory: node, run and type are required: %w", fsm.ErrBadRequest)
	}
	for _, f := range [][2]string{{"node", node}, {"run", runID}, {"type", typ}, {"key", key}} {
		if err := api.CheckText(f[0], f[1]); err != nil {
			return nil, fmt.Errorf("read memory: %w", err)
		}
	}
	epoch, err := uintParam(q, "epoch")
	if err != nil {
		return nil, err
	}
	version, err := uintParam(q, "version")
	if err != nil {
		return nil, err
	}
	if key == "" && version != 0 {
		return nil, fmt.Errorf("read memory %s: a version needs a key: %w", typ, fsm.ErrBadRequest)
	}
	if err := id.requireAgent(node); err != nil {
		return nil, err
	}
	run, ok := st.Run(runID)
	if !ok {
		return nil, fmt.Errorf("read memory: run %q: %w", runID, fsm.ErrNotFound)
	}
	if run.Node != node || run.Epoch != epoch {
		return nil, fmt.Errorf("read memory for run %s by node %q at epoch %d: the run is held by node %q at epoch %d: %w", runID, node, epoch, run.Node, run.Epoch, fsm.ErrFenced)
	}
	if n, ok := st.Node(node); !ok || fsm.NodeGone(n) {
		return nil, fmt.Errorf("read memory for run %s: node %s is down or gone; its runs are fenced: %w", runID, node, fsm.ErrFenced)
	}
	if run.State != fsm.StateExecuting {
		return nil, fmt.Errorf("read memory for run %s: it is %s, not %s: %w", runID, run.State, fsm.StateExecuting, fsm.ErrConflict)
	}
	c, ok := st.Component(run.Component)
	if !ok {
		return nil, fmt.Errorf("read memory for run %s: component %q is gone: %w", runID, run.Component, fsm.ErrNotFound)
	}
	if !fsm.MayRead(&c.Spec, typ) {
		reads := c.Reads
		if reads == nil {
			reads = []string{}
		}
		return nil, fmt.Errorf("component %s may not read records of type %s (it reads %v): %w", c.Name, typ, reads, fsm.ErrNotAuthorized)
	}
	if key == "" {
		recs := st.Memory(fsm.MemoryFilter{Type: typ, Status: fsm.MemoryActive})
		out := &api.AgentMemoryResponse{Records: make([]fsm.MemoryRecord, len(recs))}
		for i, m := range recs {
			out.Records[i] = *m
		}
		return out, nil
	}
	ref := fsm.MemoryRef{Type: typ, Key: key, Version: version}
	if version == 0 {
		// The ACTIVE version, which need not be the newest: a version
		// born INVALIDATED supersedes nothing.
		m, ok := st.ActiveMemory(typ, key)
		if !ok {
			return nil, fmt.Errorf("memory record %s: no ACTIVE version: %w", ref, fsm.ErrNotFound)
		}
		return &api.AgentMemoryResponse{Records: []fsm.MemoryRecord{*m}}, nil
	}
	m, ok := st.MemoryRecordOf(ref)
	if !ok {
		return nil, fmt.Errorf("memory record %s: %w", ref, fsm.ErrNotFound)
	}
	return &api.AgentMemoryResponse{Records: []fsm.MemoryRecord{*m}}, nil
}

// uintParam parses an optional unsigned query parameter (absent: 0).
func uintParam(q map[string][]string, name string) (uint64, error) {
	vs := q[name]
	if len(vs) == 0 || vs[0] == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(vs[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a number: %w", name, vs[0], fsm.ErrBadRequest)
	}
	return n, nil
}
