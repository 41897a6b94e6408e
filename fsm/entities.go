package fsm

// The records below are held by pointer in State and shared with snapshots.
// They are immutable once stored: an apply function that changes one stores
// a modified copy instead, so a Snapshot taken earlier keeps seeing the old
// record without locks or deep copies.

// PluginRef names the plugin a component runs, optionally pinned.
type PluginRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// Constraint restricts placement to nodes whose label matches.
type Constraint struct {
	Label string `json:"label"`
	// Op is "=" or "!=".
	Op    string `json:"op"`
	Value string `json:"value"`
}

// RestartPolicy says how often and how fast a failed run is replaced.
type RestartPolicy struct {
	// Attempts is how many consecutive failures are replaced before the
	// component is marked failed; 0 means the default.
	Attempts int `json:"attempts,omitempty"`
	// DelayNanos is the first backoff; it doubles per failure up to MaxDelayNanos.
	DelayNanos    int64 `json:"delay_ns,omitempty"`
	MaxDelayNanos int64 `json:"max_delay_ns,omitempty"`
}

// ComponentStatus is the desired-state status of a component.
type ComponentStatus string

// Component statuses.
const (
	// ComponentRunning: the runtime keeps Count runs of it.
	ComponentRunning ComponentStatus = "running"
	// ComponentStopped: an operator stopped it; its runs are ended.
	ComponentStopped ComponentStatus = "stopped"
	// ComponentFailed: its runs failed more often in a row than its restart
	// policy allows; no new runs are created until it is deployed again.
	ComponentFailed ComponentStatus = "failed"
)

// Spec is the part of a component an operator writes.
type Spec struct {
	Name        string            `json:"name"`
	Plugin      PluginRef         `json:"plugin"`
	Config      map[string]string `json:"config,omitempty"`
	Count       int               `json:"count"`
	Constraints []Constraint      `json:"constraints,omitempty"`
	Restart     RestartPolicy     `json:"restart"`
	// MaxParallel is how many of its runs the runtime replaces at a time in a
	// rolling update or a drain (0 means 1).
	MaxParallel int `json:"max_parallel,omitempty"`
	// OutputPattern is the regular expression the output of a finite run
	// must match for the runtime to commit it (empty: any non-empty output).
	OutputPattern string `json:"output_pattern,omitempty"`
	// Capabilities are what its runs may request grants for (grant.go).
	Capabilities []Capability `json:"capabilities,omitempty"`

	// Body version 8 on (memory.go, budget.go).
	// Dispatch: the component has no standing runs (Count 0); each
	// component.dispatch creates one run with its input.
	Dispatch bool `json:"dispatch,omitempty"`
	// Memory is the record a committed run's output becomes.
	Memory *MemorySpec `json:"memory,omitempty"`
	// Reads are the record types its runs may read.
	Reads []string `json:"reads,omitempty"`
	// Budget limits what its runs spend.
	Budget *Budget `json:"budget,omitempty"`
}

// hasV8 reports whether the spec uses anything body version 8 added.
func (sp *Spec) hasV8() bool {
	return sp.Dispatch || sp.Memory != nil || len(sp.Reads) > 0 || sp.Budget != nil
}

// Component is a desired, versioned spec and its bookkeeping.
type Component struct {
	Spec
	// Generation increases on every change an operator makes (spec, stop,
	// deploy again); the runtime marking it failed does not change it.
	Generation uint64 `json:"generation"`
	// RunGeneration is the generation at which the parts of the spec that
	// runs execute (plugin, config, constraints, restart policy) last
	// changed. Runs created before it are outdated; a change of count alone
	// leaves existing runs current.
	RunGeneration uint64          `json:"run_generation"`
	Status        ComponentStatus `json:"status"`
	// Reason says why the component failed.
	Reason      string `json:"reason,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	ModifyTime  int64  `json:"modify_time"`
	// Deployer is the operator who last put the spec (body version 7 on):
	// it may not approve its own runs' irreversible grants.
	Deployer string `json:"deployer,omitempty"`
	// Spend is what its runs spent in the current budget window (body
	// version 8 on; nil until a run reports a cost).
	Spend *Spend `json:"spend,omitempty"`
}

// Run is one execution of a component on one node.
type Run struct {
	ID         string `json:"id"`
	Component  string `json:"component"`
	Generation uint64 `json:"generation"`
	// Slot is the component slot (0..count-1) the run fills. At most one
	// run per (component, slot) is not TERMINATED at any index.
	Slot int    `json:"slot"`
	Node string `json:"node,omitempty"`
	// Epoch is the Raft index of the entry that placed the run on Node.
	Epoch  uint64   `json:"epoch,omitempty"`
	State  RunState `json:"state"`
	Reason string   `json:"reason,omitempty"`
	// Outcome is the state the run ended in before TERMINATED.
	Outcome RunState `json:"outcome,omitempty"`
	Output  string   `json:"output,omitempty"`
	// Attempt counts consecutive failed runs of the slot before this one.
	Attempt int `json:"attempt,omitempty"`
	// NotBefore is the earliest start time (unix nanos) the leader stamped.
	NotBefore int64 `json:"not_before,omitempty"`
	// ExecTime is when the run entered EXECUTING (leader time, unix nanos).
	ExecTime    int64  `json:"exec_time,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	CreateTime  int64  `json:"create_time"`
	ModifyTime  int64  `json:"modify_time"`

	// Body version 8 on. Dispatch: created by component.dispatch (Slot
	// -1), with its Input and Meta. Reads are the record versions its
	// execution read, Cost what it spent, as its agent reported them.
	Dispatch bool              `json:"dispatch,omitempty"`
	Input    string            `json:"input,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Reads    []MemoryRef       `json:"reads,omitempty"`
	Cost     map[string]uint64 `json:"cost,omitempty"`
}

// hasV8 reports whether the run holds anything body version 8 added.
func (r *Run) hasV8() bool {
	return r.Dispatch || r.Input != "" || len(r.Meta) > 0 || len(r.Reads) > 0 || len(r.Cost) > 0
}

// NodeStatus is the status of an agent's node.
type NodeStatus string

// Node statuses.
const (
	NodeReady NodeStatus = "ready"
	// NodeDraining: no new placements, and the runtime moves its runs off;
	// once none is left the runtime marks it ineligible.
	NodeDraining NodeStatus = "draining"
	// NodeIneligible: no new placements; its runs stay.
	NodeIneligible NodeStatus = "ineligible"
	NodeDown       NodeStatus = "down"
	NodeLeft       NodeStatus = "left"
)

func (s NodeStatus) valid() bool {
	switch s {
	case NodeReady, NodeDraining, NodeIneligible, NodeDown, NodeLeft:
		return true
	}
	return false
}

// PluginInfo is one entry of a node's plugin catalogue.
type PluginInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

// Node is an agent as the cluster knows it.
type Node struct {
	ID      string            `json:"id"`
	Address string            `json:"address,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Plugins []PluginInfo      `json:"plugins,omitempty"`
	Status  NodeStatus        `json:"status"`
	Reason  string            `json:"reason,omitempty"`
	// DrainDeadline (leader time, unix nanos) is when a draining node's
	// remaining runs are ended all at once instead of max_parallel at a time.
	DrainDeadline int64  `json:"drain_deadline,omitempty"`
	CreateIndex   uint64 `json:"create_index"`
	ModifyIndex   uint64 `json:"modify_index"`
	ModifyTime    int64  `json:"modify_time"`
}
