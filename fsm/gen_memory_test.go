package fsm

// memoryCommand generates dispatch and memory commands: components that
// declare memory (ext, which becomes "fact" records, and sum, which reads
// facts and becomes "summary"), dispatches, agents reporting outputs with
// the record versions their runs read and their cost, the runtime
// committing, and operators deprecating and invalidating records, with
// now and then a read of a type the spec does not list, a missing record,
// or a dispatch of a component that is not dispatched.
func (g *cmdGen) memoryCommand() genEntry {
	c := g.c
	records := g.st.Memory(MemoryFilter{})
	active := g.st.Memory(MemoryFilter{Status: MemoryActive})
	pickRef := func() MemoryRef {
		switch {
		case len(records) == 0 || percent(c, 5):
			return MemoryRef{Type: "fact", Key: "nope", Version: 1}
		case len(active) > 0 && percent(c, 70):
			return active[c.intn(len(active))].Ref()
		}
		return records[c.intn(len(records))].Ref()
	}
	_, hasExt := g.st.Component("ext")
	_, hasSum := g.st.Component("sum")
	k := c.intn(10)
	if (!hasExt || !hasSum) && percent(c, 60) {
		k = 0
	}
	switch k {
	case 0:
		sp := Spec{Name: pick(c, "ext", "sum"), Plugin: PluginRef{Name: "ticker"}, Dispatch: true}
		if sp.Name == "ext" {
			sp.Memory = &MemorySpec{Type: "fact", Key: pick(c, "d-${input.doc}", "d-${input.missing}"), Format: pick(c, "json", ""), TTLNanos: pick(c, int64(0), int64(20_000))}
			if percent(c, 50) {
				sp.Budget = &Budget{Limits: map[string]uint64{"tokens": pick(c, uint64(50), uint64(500))}, WindowNanos: pick(c, int64(0), int64(30_000)), Hard: percent(c, 30)}
			}
		} else {
			sp.Memory = &MemorySpec{Type: "summary", Key: "all"}
			sp.Reads = []string{"fact"}
		}
		return genEntry{Type: ComponentPutType, Header: g.op(), Body: &ComponentPutRequest{Spec: sp}}
	case 1, 2:
		req := &ComponentDispatchRequest{Name: pick(c, "ext", "ext", "sum", "web"), Input: "in", Meta: map[string]string{"doc": pick(c, "1", "2")}}
		return genEntry{Type: ComponentDispatchType, Header: g.op(), Body: req}
	case 3, 4:
		return g.memoryReport(pickRef)
	case 5, 6:
		if percent(c, 50) {
			return g.memoryReport(pickRef)
		}
		if k == 6 {
			return genEntry{Type: MemoryDeprecateType, Header: g.op(), Body: &MemoryEndRequest{Ref: pickRef(), Reason: "old"}}
		}
		return genEntry{Type: MemoryInvalidateType, Header: g.op(), Body: &MemoryEndRequest{Ref: pickRef(), Reason: "wrong"}}
	case 8:
		return g.driveDispatched()
	case 7:
		refs := g.st.ExpiredMemory(g.now, 10)
		if len(refs) == 0 || percent(c, 10) {
			refs = append(refs, pickRef())
		}
		return genEntry{Type: MemoryExpireType, Header: g.rt(), Body: &MemoryExpireRequest{Refs: refs}}
	}
	// The runtime commits what waits in VALIDATING.
	var validating []Transition
	for _, r := range g.st.Runs("") {
		if r.State == StateValidating && r.Dispatch {
			validating = append(validating, Transition{Run: r.ID, To: StateCommitted})
		}
	}
	if len(validating) == 0 {
		return g.runTransitions()
	}
	return genEntry{Type: RunTransitionType, Header: g.rt(), Body: &RunTransitionRequest{Transitions: validating[:1]}}
}

// memoryReport is the agent of an EXECUTING dispatched run reporting its
// output, the records it read and its cost.
func (g *cmdGen) memoryReport(pickRef func() MemoryRef) genEntry {
	c := g.c
	var executing []*Run
	for _, r := range g.st.Runs("") {
		if r.State == StateExecuting && r.Dispatch {
			executing = append(executing, r)
		}
	}
	if len(executing) == 0 || percent(c, 30) {
		return g.driveDispatched() // move runs on: reports want EXECUTING ones
	}
	r := executing[c.intn(len(executing))]
	t := Transition{Run: r.ID, To: StateValidating, Epoch: r.Epoch, Output: pick(c, `{"text":"x"}`, "plain", "")}
	if percent(c, 10) {
		t.To, t.Output, t.Reason = StateAborted, "", "crash"
	}
	for range c.intn(3) {
		t.Reads = append(t.Reads, pickRef())
	}
	if percent(c, 60) {
		t.Cost = map[string]uint64{"tokens": pick(c, uint64(10), uint64(100), uint64(400))}
	}
	return genEntry{Type: RunTransitionType, Header: g.agent(r.Node), Body: &RunTransitionRequest{Transitions: []Transition{t}}}
}

// driveDispatched moves a live dispatched run one step along the happy
// path, as the runtime or its agent would.
func (g *cmdGen) driveDispatched() genEntry {
	c := g.c
	p := g.runPool()
	var runs []*Run
	for _, r := range p.live {
		if r.Dispatch && (r.State == StateCreated || r.State == StateProvisioned || r.State == StateContextReady) {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 || len(p.ready) == 0 {
		return g.runTransitions()
	}
	r := runs[c.intn(len(runs))]
	switch r.State {
	case StateCreated:
		t := Transition{Run: r.ID, To: StateProvisioned, Node: pick(c, p.ready...)}
		return genEntry{Type: RunTransitionType, Header: g.rt(), Body: &RunTransitionRequest{Transitions: []Transition{t}}}
	case StateProvisioned:
		t := Transition{Run: r.ID, To: StateContextReady, Epoch: r.Epoch}
		return genEntry{Type: RunTransitionType, Header: g.agent(r.Node), Body: &RunTransitionRequest{Transitions: []Transition{t}}}
	}
	t := Transition{Run: r.ID, To: StateExecuting, Epoch: r.Epoch}
	return genEntry{Type: RunTransitionType, Header: g.agent(r.Node), Body: &RunTransitionRequest{Transitions: []Transition{t}}}
}
