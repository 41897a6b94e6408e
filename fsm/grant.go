package fsm

import (
	"fmt"
	"slices"
	"strings"
)

// Capability grants carry the runtime's authority past the lifecycle: a
// running component proposes a grant for a scope it declared, and the
// state machine decides, from the replicated state alone, whether the run
// may do it, for how long, and after whose approval. Every step is a
// committed command and an event.
//
// Lifecycle of a grant, with its authority:
//
//	from      step         actor                       to
//	none      grant.request agent holding the run      GRANTED (internal, external)
//	                        (its node and epoch),      PENDING (irreversible)
//	                        run EXECUTING, scope
//	                        declared
//	none      grant.request the same agent, run not    DENIED (reason)
//	                        EXECUTING or scope not
//	                        declared
//	PENDING   grant.approve operator, not one who      PENDING, or GRANTED once
//	                        approved it already, not   Required distinct
//	                        the deployer unless the    operators approved
//	                        command says policy allows
//	PENDING   grant.deny    operator                   DENIED
//	PENDING   grant.revoke  operator                   REVOKED
//	GRANTED   grant.revoke  operator                   REVOKED
//	GRANTED   grant.expire  runtime, at or after the   EXPIRED
//	                        grant's expiry (leader
//	                        time)
//	GRANTED   grant.release agent holding the run      RELEASED
//	GRANTED   grant.use     agent holding the run,     GRANTED (one more use)
//	                        before the expiry
//	PENDING,  the run leaves EXECUTING (any actor)     REVOKED ("run ended")
//	GRANTED
//	PENDING,  its node goes down or leaves (the        REVOKED ("node ... lost
//	GRANTED   runtime, or an operator or agent)        its lease", "... left")
//	DENIED, EXPIRED, REVOKED, RELEASED: every step is refused (ErrConflict)
//
// An agent's request or use names the run and its epoch: an agent of
// another node, or of the same node under an older epoch, or of a node
// that is down or left, is refused (ErrFenced) and nothing is recorded.

// Effect says what a capability's use does outside ICE.
type Effect string

// Effects.
const (
	EffectInternal     Effect = "internal"
	EffectExternal     Effect = "external"
	EffectIrreversible Effect = "irreversible"
)

// Capability is one capability a component's runs may request.
type Capability struct {
	// Scope is "kind:segment:..."; it may end in "*" to cover every scope
	// that starts with what comes before it.
	Scope string `json:"scope"`
	// TTLNanos is how long a grant lasts once granted.
	TTLNanos int64  `json:"ttl_ns"`
	Effect   Effect `json:"effect"`
	// Approvals is how many distinct operators must approve an
	// irreversible grant (0: 1).
	Approvals int `json:"approvals,omitempty"`
}

// GrantStatus is where a grant is in its lifecycle.
type GrantStatus string

// Grant statuses.
const (
	GrantPending  GrantStatus = "PENDING"
	GrantGranted  GrantStatus = "GRANTED"
	GrantDenied   GrantStatus = "DENIED"
	GrantExpired  GrantStatus = "EXPIRED"
	GrantRevoked  GrantStatus = "REVOKED"
	GrantReleased GrantStatus = "RELEASED"
)

// Live reports whether a grant in this status may still become or be
// GRANTED.
func (s GrantStatus) Live() bool { return s == GrantPending || s == GrantGranted }

// Approval is one operator's approval of a pending grant.
type Approval struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason,omitempty"`
	Index    uint64 `json:"index"`
	Time     int64  `json:"time"`
}

// Grant is one capability grant of one run.
type Grant struct {
	ID        string `json:"id"`
	Run       string `json:"run"`
	Component string `json:"component"`
	Node      string `json:"node"`
	Epoch     uint64 `json:"epoch"`
	// Scope is the scope requested, Declared the capability that covers it.
	Scope    string      `json:"scope"`
	Declared string      `json:"declared,omitempty"`
	Effect   Effect      `json:"effect,omitempty"`
	Purpose  string      `json:"purpose,omitempty"`
	Status   GrantStatus `json:"status"`
	Reason   string      `json:"reason,omitempty"`
	// Required approvals, and those given so far.
	Required  int        `json:"required,omitempty"`
	Approvals []Approval `json:"approvals,omitempty"`
	TTLNanos  int64      `json:"ttl_ns,omitempty"`
	// GrantTime is when it became GRANTED, ExpireTime when it ends by
	// itself (leader time, unix nanos).
	GrantIndex uint64 `json:"grant_index,omitempty"`
	GrantTime  int64  `json:"grant_time,omitempty"`
	ExpireTime int64  `json:"expire_time,omitempty"`
	Uses       uint64 `json:"uses,omitempty"`
	// EndIndex and EndTime are when it left PENDING or GRANTED for good.
	EndIndex    uint64 `json:"end_index,omitempty"`
	EndTime     int64  `json:"end_time,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	CreateTime  int64  `json:"create_time"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Limits of capabilities and grants.
const (
	maxCapabilities = 64
	maxScopeLen     = 256
	maxApprovals    = 16
	maxUsesPerEntry = 4096
)

// validScope checks a scope: kind:segment... of printable characters
// without spaces; declared may end in "*".
func validScope(what, scope string, declared bool) error {
	body := scope
	if declared {
		body = strings.TrimSuffix(scope, "*")
	}
	kind, _, ok := strings.Cut(body, ":")
	if !ok && !(declared && strings.HasSuffix(scope, "*")) {
		return fmt.Errorf("%s %q: want kind:segment[:...]: %w", what, scope, ErrInvalid)
	}
	if len(scope) > maxScopeLen || kind == "" {
		return fmt.Errorf("%s %q: empty kind or longer than %d bytes: %w", what, scope, maxScopeLen, ErrInvalid)
	}
	for _, r := range body {
		if r <= ' ' || r == 0x7f || r == '*' {
			return fmt.Errorf("%s %q: spaces, control characters and inner '*' are not allowed: %w", what, scope, ErrInvalid)
		}
	}
	return nil
}

// validateCapabilities checks a spec's declared capabilities.
func validateCapabilities(sp *Spec) error {
	if len(sp.Capabilities) > maxCapabilities {
		return fmt.Errorf("component %q: %d capabilities, at most %d: %w", sp.Name, len(sp.Capabilities), maxCapabilities, ErrInvalid)
	}
	seen := map[string]bool{}
	for _, c := range sp.Capabilities {
		if err := validScope("component "+sp.Name+": capability", c.Scope, true); err != nil {
			return err
		}
		if seen[c.Scope] {
			return fmt.Errorf("component %q: capability %q declared twice: %w", sp.Name, c.Scope, ErrInvalid)
		}
		seen[c.Scope] = true
		switch {
		case c.Effect != EffectInternal && c.Effect != EffectExternal && c.Effect != EffectIrreversible:
			return fmt.Errorf("component %q: capability %q: effect %q, want internal, external or irreversible: %w", sp.Name, c.Scope, c.Effect, ErrInvalid)
		case c.TTLNanos <= 0:
			return fmt.Errorf("component %q: capability %q: ttl must be positive: %w", sp.Name, c.Scope, ErrInvalid)
		case c.Approvals < 0 || c.Approvals > maxApprovals:
			return fmt.Errorf("component %q: capability %q: approvals %d out of range 0..%d: %w", sp.Name, c.Scope, c.Approvals, maxApprovals, ErrInvalid)
		case c.Approvals > 0 && c.Effect != EffectIrreversible:
			return fmt.Errorf("component %q: capability %q: approvals apply to irreversible capabilities only: %w", sp.Name, c.Scope, ErrInvalid)
		}
	}
	return nil
}

// ScopeCovers reports whether a declared scope covers a requested one: it
// is equal, or it ends in "*" and the request starts with what precedes.
func ScopeCovers(declared, scope string) bool {
	if prefix, ok := strings.CutSuffix(declared, "*"); ok {
		return strings.HasPrefix(scope, prefix)
	}
	return declared == scope
}

// matchCapability returns the declared capability covering scope: an
// exact declaration first, else the longest covering prefix.
func matchCapability(caps []Capability, scope string) (Capability, bool) {
	best, found := Capability{}, false
	for _, c := range caps {
		if c.Scope == scope {
			return c, true
		}
		if ScopeCovers(c.Scope, scope) && (!found || len(c.Scope) > len(best.Scope)) {
			best, found = c, true
		}
	}
	return best, found
}

// Grant returns a grant by id.
func (s *State) Grant(id string) (*Grant, bool) {
	g, ok := s.grants[id]
	return g, ok
}

// GrantFilter selects grants; empty fields match all.
type GrantFilter struct {
	Run, Component string
	Status         GrantStatus
}

// Grants returns the grants the filter selects, by creation index, then id.
func (s *State) Grants(f GrantFilter) []*Grant {
	out := make([]*Grant, 0)
	for _, g := range s.grants {
		if (f.Run == "" || g.Run == f.Run) && (f.Component == "" || g.Component == f.Component) && (f.Status == "" || g.Status == f.Status) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, compareGrants)
	return out
}

// grantsInRunOrder lists every grant run by run (runs by id), each run's
// grants in the order they were created: the order the per-run index
// holds, which the state machine walks when it ends a run's grants. A
// snapshot records grants in this order so that a restored state walks
// them the same way as one that applied the log (several grants made by
// one entry are otherwise ordered by id, and their revocation events
// would come out in a different order).
func (s *State) grantsInRunOrder() []*Grant {
	runs := make([]string, 0, len(s.grantsByRun))
	for run := range s.grantsByRun {
		runs = append(runs, run)
	}
	slices.Sort(runs)
	out := make([]*Grant, 0, len(s.grants))
	for _, run := range runs {
		for _, id := range s.grantsByRun[run] {
			if g, ok := s.grants[id]; ok {
				out = append(out, g)
			}
		}
	}
	return out
}

func compareGrants(a, b *Grant) int {
	if a.CreateIndex != b.CreateIndex {
		if a.CreateIndex < b.CreateIndex {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// GrantID derives the id of the grant item i of the entry at index (sub
// within a batch) creates, in a cluster: like a run id, from another
// domain.
func GrantID(cluster string, index uint64, sub, i int) string {
	return ClusterRunID("grant/"+cluster, index, sub<<16|i)
}
