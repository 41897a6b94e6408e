package fsm

// Binary encodings of command bodies and records, in codec.go's primitives.
// Each put/get pair lists the type's fields in the one order both use;
// TestWireRoundTrip fills every field of every type by reflection, so a
// field added to a struct but not here fails it.

func putPluginRef(e *encoder, p *PluginRef) {
	e.str(p.Name)
	e.str(p.Version)
	e.str(p.SHA256)
}

func getPluginRef(d *decoder, p *PluginRef) {
	p.Name, p.Version, p.SHA256 = d.str(), d.str(), d.str()
}

func putSpec(e *encoder, s *Spec) {
	e.str(s.Name)
	putPluginRef(e, &s.Plugin)
	e.strMap(s.Config)
	e.int(s.Count)
	e.uvarint(uint64(len(s.Constraints)))
	for i := range s.Constraints {
		c := &s.Constraints[i]
		e.str(c.Label)
		e.str(c.Op)
		e.str(c.Value)
	}
	e.int(s.Restart.Attempts)
	e.varint(s.Restart.DelayNanos)
	e.varint(s.Restart.MaxDelayNanos)
	e.int(s.MaxParallel)
	e.str(s.OutputPattern)
	if !e.writes(bodyVersionGrants, len(s.Capabilities) > 0 || s.hasV8()) {
		return
	}
	e.uvarint(uint64(len(s.Capabilities)))
	for i := range s.Capabilities {
		c := &s.Capabilities[i]
		e.str(c.Scope)
		e.varint(c.TTLNanos)
		e.str(string(c.Effect))
		e.int(c.Approvals)
	}
	if e.writes(bodyVersionMemory, s.hasV8()) {
		putSpecV8(e, s)
	}
}

func getSpec(d *decoder, s *Spec) {
	s.Name = d.str()
	getPluginRef(d, &s.Plugin)
	s.Config = d.strMap()
	s.Count = d.int()
	if n := d.count(3); n > 0 {
		s.Constraints = make([]Constraint, n)
		for i := range s.Constraints {
			c := &s.Constraints[i]
			c.Label, c.Op, c.Value = d.str(), d.str(), d.str()
		}
	}
	s.Restart.Attempts = d.int()
	s.Restart.DelayNanos = d.varint()
	s.Restart.MaxDelayNanos = d.varint()
	s.MaxParallel = d.int()
	s.OutputPattern = d.str()
	if !d.reads(bodyVersionGrants) {
		return
	}
	if n := d.count(4); n > 0 {
		s.Capabilities = make([]Capability, n)
		for i := range s.Capabilities {
			c := &s.Capabilities[i]
			c.Scope, c.TTLNanos, c.Effect, c.Approvals = d.str(), d.varint(), Effect(d.str()), d.int()
		}
	}
	if d.reads(bodyVersionMemory) {
		getSpecV8(d, s)
	}
}

func putComponent(e *encoder, c *Component) {
	putSpec(e, &c.Spec)
	e.uvarint(c.Generation)
	e.uvarint(c.RunGeneration)
	e.str(string(c.Status))
	e.str(c.Reason)
	e.uvarint(c.CreateIndex)
	e.uvarint(c.ModifyIndex)
	e.varint(c.ModifyTime)
	if e.writes(bodyVersionGrants, c.Deployer != "" || c.Spend != nil) {
		e.str(c.Deployer)
	}
	if e.writes(bodyVersionMemory, c.Spend != nil) {
		putSpend(e, c.Spend)
	}
}

func getComponent(d *decoder, c *Component) {
	getSpec(d, &c.Spec)
	c.Generation = d.uvarint()
	c.RunGeneration = d.uvarint()
	c.Status = d.componentStatus()
	c.Reason = d.str()
	c.CreateIndex = d.uvarint()
	c.ModifyIndex = d.uvarint()
	c.ModifyTime = d.varint()
	if d.reads(bodyVersionGrants) {
		c.Deployer = d.str()
	}
	if d.reads(bodyVersionMemory) {
		c.Spend = getSpend(d)
	}
}

func putRun(e *encoder, r *Run) {
	e.str(r.ID)
	e.str(r.Component)
	e.uvarint(r.Generation)
	e.int(r.Slot)
	e.str(r.Node)
	e.uvarint(r.Epoch)
	e.str(string(r.State))
	e.str(r.Reason)
	e.str(string(r.Outcome))
	e.str(r.Output)
	e.int(r.Attempt)
	e.varint(r.NotBefore)
	e.varint(r.ExecTime)
	e.uvarint(r.CreateIndex)
	e.uvarint(r.ModifyIndex)
	e.varint(r.CreateTime)
	e.varint(r.ModifyTime)
	if e.writes(bodyVersionMemory, r.hasV8()) {
		putRunV8(e, r)
	}
}

func getRun(d *decoder, r *Run) {
	r.ID = d.str()
	r.Component = d.str()
	r.Generation = d.uvarint()
	r.Slot = d.int()
	r.Node = d.str()
	r.Epoch = d.uvarint()
	r.State = d.runState()
	r.Reason = d.str()
	r.Outcome = d.runState()
	r.Output = d.str()
	r.Attempt = d.int()
	r.NotBefore = d.varint()
	r.ExecTime = d.varint()
	r.CreateIndex = d.uvarint()
	r.ModifyIndex = d.uvarint()
	r.CreateTime = d.varint()
	r.ModifyTime = d.varint()
	if d.reads(bodyVersionMemory) {
		getRunV8(d, r)
	}
}

func putNode(e *encoder, n *Node) {
	e.str(n.ID)
	e.str(n.Address)
	e.strMap(n.Labels)
	e.uvarint(uint64(len(n.Plugins)))
	for i := range n.Plugins {
		p := &n.Plugins[i]
		e.str(p.Name)
		e.str(p.Version)
		e.str(p.SHA256)
	}
	e.str(string(n.Status))
	e.str(n.Reason)
	e.varint(n.DrainDeadline)
	e.uvarint(n.CreateIndex)
	e.uvarint(n.ModifyIndex)
	e.varint(n.ModifyTime)
}

func getNode(d *decoder, n *Node) {
	n.ID = d.str()
	n.Address = d.str()
	n.Labels = d.strMap()
	if k := d.count(3); k > 0 {
		n.Plugins = make([]PluginInfo, k)
		for i := range n.Plugins {
			p := &n.Plugins[i]
			p.Name, p.Version, p.SHA256 = d.str(), d.str(), d.str()
		}
	}
	n.Status = d.nodeStatus()
	n.Reason = d.str()
	n.DrainDeadline = d.varint()
	n.CreateIndex = d.uvarint()
	n.ModifyIndex = d.uvarint()
	n.ModifyTime = d.varint()
}

func putHeader(e *encoder, h *Header) {
	e.str(h.Actor)
	e.str(h.Purpose)
	e.varint(h.Time)
	e.str(h.Node)
}

func getHeader(d *decoder, h *Header) {
	h.Actor, h.Purpose, h.Time, h.Node = d.str(), d.str(), d.varint(), d.str()
}

// putBody writes a command body; body is a pointer to the request type of
// its command (as newBody returns).
func putBody(e *encoder, body any) bool {
	switch b := body.(type) {
	case *ComponentPutRequest:
		putSpec(e, &b.Spec)
		e.optUint(b.CAS)
	case *ComponentDeleteRequest:
		e.str(b.Name)
		e.optUint(b.CAS)
	case *RunsCreateRequest:
		e.uvarint(uint64(len(b.Runs)))
		for i := range b.Runs {
			r := &b.Runs[i]
			e.str(r.Component)
			e.uvarint(r.Generation)
			e.int(r.Slot)
			e.int(r.Attempt)
			e.varint(r.NotBefore)
		}
	case *RunTransitionRequest:
		e.uvarint(uint64(len(b.Transitions)))
		for i := range b.Transitions {
			t := &b.Transitions[i]
			e.str(t.Run)
			e.str(string(t.To))
			e.uvarint(t.Epoch)
			e.str(t.Reason)
			e.str(t.Node)
			e.str(t.Output)
			if e.writes(bodyVersionMemory, len(t.Reads) > 0 || len(t.Cost) > 0) {
				e.refs(t.Reads)
				e.uintMap(t.Cost)
			}
		}
	case *NodeRegisterRequest:
		putNode(e, &b.Node)
	case *NodeStatusRequest:
		e.str(b.ID)
		e.str(string(b.Status))
		e.str(b.Reason)
		e.varint(b.DrainDeadline)
	case *ComponentFailRequest:
		e.str(b.Name)
		e.uvarint(b.Generation)
		e.str(b.Reason)
	case *RunsNoteRequest:
		e.uvarint(uint64(len(b.Notes)))
		for i := range b.Notes {
			e.str(b.Notes[i].Run)
			e.str(b.Notes[i].Reason)
		}
	case *ClusterInitRequest:
		e.str(b.ID)
	case *ACLBootstrapRequest:
		putACLToken(e, &b.Token)
	case *ACLPolicyPutRequest:
		putACLPolicy(e, &b.Policy)
	case *ACLPolicyDeleteRequest:
		e.str(b.Name)
	case *ACLTokenCreateRequest:
		putACLToken(e, &b.Token)
	case *ACLTokenDeleteRequest:
		e.str(b.AccessorID)
	case *DigestMarkRequest:
	case *AlarmRaiseRequest:
		putAlarm(e, &b.Alarm)
	case *AlarmClearRequest:
		e.str(string(b.Type))
		e.str(b.Server)
		e.str(b.Reason)
	case *StateGCRequest:
		e.varint(b.RunRetention)
		e.int(b.KeepPerSlot)
		e.varint(b.EventRetention)
		e.uvarint(b.EventKeep)
	default:
		return putGrantBody(e, body) || putMemoryBody(e, body)
	}
	return true
}

// getBody reads a command body into body, a pointer from newBody.
func getBody(d *decoder, body any) {
	switch b := body.(type) {
	case *ComponentPutRequest:
		getSpec(d, &b.Spec)
		b.CAS = d.optUint()
	case *ComponentDeleteRequest:
		b.Name = d.str()
		b.CAS = d.optUint()
	case *RunsCreateRequest:
		if n := d.count(5); n > 0 {
			b.Runs = make([]NewRun, n)
			for i := range b.Runs {
				r := &b.Runs[i]
				r.Component = d.str()
				r.Generation = d.uvarint()
				r.Slot = d.int()
				r.Attempt = d.int()
				r.NotBefore = d.varint()
			}
		}
	case *RunTransitionRequest:
		if n := d.count(6); n > 0 {
			b.Transitions = make([]Transition, n)
			for i := range b.Transitions {
				t := &b.Transitions[i]
				t.Run = d.str()
				t.To = d.runState()
				t.Epoch = d.uvarint()
				t.Reason = d.str()
				t.Node = d.str()
				t.Output = d.str()
				if d.reads(bodyVersionMemory) {
					t.Reads, t.Cost = d.refs(), d.uintMap()
				}
			}
		}
	case *NodeRegisterRequest:
		getNode(d, &b.Node)
	case *NodeStatusRequest:
		b.ID = d.str()
		b.Status = d.nodeStatus()
		b.Reason = d.str()
		b.DrainDeadline = d.varint()
	case *ComponentFailRequest:
		b.Name = d.str()
		b.Generation = d.uvarint()
		b.Reason = d.str()
	case *RunsNoteRequest:
		if n := d.count(2); n > 0 {
			b.Notes = make([]RunNote, n)
			for i := range b.Notes {
				b.Notes[i].Run = d.str()
				b.Notes[i].Reason = d.str()
			}
		}
	case *ClusterInitRequest:
		b.ID = d.str()
	case *ACLBootstrapRequest:
		getACLToken(d, &b.Token)
	case *ACLPolicyPutRequest:
		getACLPolicy(d, &b.Policy)
	case *ACLPolicyDeleteRequest:
		b.Name = d.str()
	case *ACLTokenCreateRequest:
		getACLToken(d, &b.Token)
	case *ACLTokenDeleteRequest:
		b.AccessorID = d.str()
	case *DigestMarkRequest:
	case *AlarmRaiseRequest:
		getAlarm(d, &b.Alarm)
	case *AlarmClearRequest:
		b.Type = AlarmType(d.str())
		b.Server = d.str()
		b.Reason = d.str()
	case *StateGCRequest:
		b.RunRetention = d.varint()
		b.KeepPerSlot = d.int()
		b.EventRetention = d.varint()
		b.EventKeep = d.uvarint()
	default:
		if !getMemoryBody(d, body) {
			getGrantBody(d, body)
		}
	}
}

// runState, nodeStatus and componentStatus read a name and return the
// constant for a known one, so decoded records share it instead of each
// holding a copy; an unknown name is kept as it is for validation to
// reject.
func (d *decoder) runState() RunState { return known(d.raw(), AllRunStates) }

func (d *decoder) nodeStatus() NodeStatus {
	return known(d.raw(), []NodeStatus{NodeReady, NodeDraining, NodeIneligible, NodeDown, NodeLeft})
}

func (d *decoder) componentStatus() ComponentStatus {
	return known(d.raw(), []ComponentStatus{ComponentRunning, ComponentStopped, ComponentFailed})
}

func known[T ~string](p []byte, names []T) T {
	for _, x := range names {
		if string(p) == string(x) {
			return x
		}
	}
	return T(p)
}

func putACLPolicy(e *encoder, p *ACLPolicy) {
	e.str(p.Name)
	e.str(p.Description)
	e.str(p.Rules)
	e.uvarint(p.CreateIndex)
	e.uvarint(p.ModifyIndex)
	e.varint(p.ModifyTime)
}

func getACLPolicy(d *decoder, p *ACLPolicy) {
	p.Name, p.Description, p.Rules = d.str(), d.str(), d.str()
	p.CreateIndex, p.ModifyIndex, p.ModifyTime = d.uvarint(), d.uvarint(), d.varint()
}

func putACLToken(e *encoder, t *ACLToken) {
	e.str(t.AccessorID)
	e.str(t.SecretHash)
	e.str(t.Name)
	e.uvarint(uint64(len(t.Policies)))
	for _, p := range t.Policies {
		e.str(p)
	}
	e.bool(t.Management)
	e.str(t.Node)
	e.varint(t.ExpireTime)
	e.uvarint(t.CreateIndex)
	e.varint(t.CreateTime)
}

func getACLToken(d *decoder, t *ACLToken) {
	t.AccessorID, t.SecretHash, t.Name = d.str(), d.str(), d.str()
	if n := d.count(1); n > 0 {
		t.Policies = make([]string, n)
		for i := range t.Policies {
			t.Policies[i] = d.str()
		}
	}
	t.Management = d.bool()
	t.Node = d.str()
	t.ExpireTime = d.varint()
	t.CreateIndex = d.uvarint()
	t.CreateTime = d.varint()
}
