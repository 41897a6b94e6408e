package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// ComponentDispatchRequest creates one run of a dispatched component, with
// its input and meta (which memory keys may name as ${input.NAME}).
type ComponentDispatchRequest struct {
	Name  string            `json:"name"`
	Input string            `json:"input,omitempty"`
	Meta  map[string]string `json:"meta,omitempty"`
	// CAS, when set, is the generation the component must be at.
	CAS *uint64 `json:"cas,omitempty"`
}

// MemoryExpireRequest ends the named ACTIVE records whose expiry passed.
type MemoryExpireRequest struct {
	Refs []MemoryRef `json:"refs"`
}

// MemoryEndRequest deprecates or invalidates one record version (Version
// 0: the newest).
type MemoryEndRequest struct {
	Ref    MemoryRef `json:"ref"`
	Reason string    `json:"reason"`
}

// dispatchPayload is the payload of a dispatched run's run.created event:
// the input itself stays on the run, the event carries its hash.
type dispatchPayload struct {
	Component   string            `json:"component"`
	Generation  uint64            `json:"generation"`
	Slot        int               `json:"slot"`
	Dispatch    bool              `json:"dispatch"`
	InputSHA256 string            `json:"input_sha256,omitempty"`
	InputBytes  int               `json:"input_bytes,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
}

// memoryPayload is the payload of memory.* events.
type memoryPayload struct {
	Status  MemoryStatus `json:"status"`
	Run     string       `json:"run,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Inputs  []string     `json:"inputs,omitempty"`
	Expires int64        `json:"expires,omitempty"`
	// Operator is the operator of a deprecation or invalidation.
	Operator string `json:"operator,omitempty"`
}

func (s *State) applyComponentDispatch(ctx *applyCtx, req *ComponentDispatchRequest) error {
	c, ok := s.components[req.Name]
	if !ok {
		return fmt.Errorf("dispatch %q: %w", req.Name, ErrNotFound)
	}
	if err := checkCAS("dispatch "+req.Name, req.CAS, c.Generation); err != nil {
		return err
	}
	if !c.Dispatch {
		return fmt.Errorf("dispatch %q: the component is not dispatched (its spec sets no dispatch = true): %w", req.Name, ErrInvalid)
	}
	if c.Status != ComponentRunning {
		return fmt.Errorf("dispatch %q: component is %s: %w", req.Name, c.Status, ErrConflict)
	}
	if reason, out := BudgetExhausted(c, ctx.header.Time); out {
		return fmt.Errorf("dispatch %q: %s: %w", req.Name, reason, ErrBudgetExhausted)
	}
	if len(req.Input) > maxOutputLen || len(req.Meta) > maxMetaKeys {
		return fmt.Errorf("dispatch %q: input over %d bytes or over %d meta keys: %w", req.Name, maxOutputLen, maxMetaKeys, ErrInvalid)
	}
	for k, v := range req.Meta {
		if err := validName("dispatch meta key", k); err != nil {
			return fmt.Errorf("dispatch %q: %w", req.Name, err)
		}
		if len(v) > maxValueLen {
			return fmt.Errorf("dispatch %q: meta %q over %d bytes: %w", req.Name, k, maxValueLen, ErrInvalid)
		}
	}
	r := &Run{
		ID: s.runID(ctx.index, ctx.sub<<20), Component: c.Name, Generation: c.Generation, Slot: -1,
		Dispatch: true, Input: req.Input, Meta: req.Meta, State: StateCreated,
		CreateIndex: ctx.index, ModifyIndex: ctx.index, CreateTime: ctx.header.Time, ModifyTime: ctx.header.Time,
	}
	if _, dup := s.runs[r.ID]; dup {
		return fmt.Errorf("dispatch %q: run %s exists: %w", req.Name, r.ID, ErrConflict)
	}
	s.runs[r.ID] = r
	p := dispatchPayload{Component: c.Name, Generation: c.Generation, Slot: -1, Dispatch: true, Meta: req.Meta}
	if req.Input != "" {
		sum := sha256.Sum256([]byte(req.Input))
		p.InputSHA256, p.InputBytes = hex.EncodeToString(sum[:]), len(req.Input)
	}
	s.emit(ctx, "run.created", r.ID, r.Component, p)
	ctx.res.RunIDs = []string{r.ID}
	return nil
}

// checkRunReport checks what an agent reports with the end of a run's
// execution: the record versions it read (of types its spec lists, each
// existing) and its cost.
func (s *State) checkRunReport(ctx *applyCtx, old *Run, t *Transition) error {
	if len(t.Reads) == 0 && len(t.Cost) == 0 {
		return nil
	}
	if ctx.actor.Kind != KindAgent || (t.To != StateValidating && t.To != StateAborted) {
		return fmt.Errorf("transition run %s: reads and cost are reported by its agent with %s or %s: %w", t.Run, StateValidating, StateAborted, ErrInvalid)
	}
	if len(t.Reads) > maxReadsPerRun {
		return fmt.Errorf("transition run %s: %d reads, at most %d: %w", t.Run, len(t.Reads), maxReadsPerRun, ErrInvalid)
	}
	if err := validateCost(t.Cost); err != nil {
		return fmt.Errorf("transition run %s: %w", t.Run, err)
	}
	c, ok := s.components[old.Component]
	if !ok && len(t.Reads) > 0 {
		return fmt.Errorf("transition run %s: component %q is gone: %w", t.Run, old.Component, ErrNotFound)
	}
	for _, ref := range t.Reads {
		if err := ref.validate(); err != nil || ref.Version == 0 {
			return fmt.Errorf("transition run %s: read %q: a type, a key and a version required: %w", t.Run, ref, ErrInvalid)
		}
		if !MayRead(&c.Spec, ref.Type) {
			return fmt.Errorf("transition run %s: read %s: component %s may not read %q (reads %v): %w", t.Run, ref, c.Name, ref.Type, c.Reads, ErrNotAuthorized)
		}
		if _, ok := s.memory[keyOf(ref)]; !ok {
			return fmt.Errorf("transition run %s: read %s: %w", t.Run, ref, ErrNotFound)
		}
	}
	return nil
}

// reportInto records an execution's reads and cost on the run.
func reportInto(r *Run, t *Transition) {
	if len(t.Reads) > 0 {
		reads := slices.Clone(t.Reads)
		slices.SortFunc(reads, compareRefs)
		r.Reads = slices.Compact(reads)
	}
	if len(t.Cost) > 0 {
		cost := make(map[string]uint64, len(r.Cost)+len(t.Cost))
		for u, n := range r.Cost {
			cost[u] = n
		}
		for u, n := range t.Cost {
			cost[u] = satAdd(cost[u], n)
		}
		r.Cost = cost
	}
}

// promotion is the record a run being committed becomes, or nil when its
// component declares no memory; an error refuses the commit.
func (s *State) promotion(ctx *applyCtx, run *Run) (*MemoryRecord, error) {
	c, ok := s.components[run.Component]
	if !ok || c.Memory == nil {
		return nil, nil
	}
	m := c.Memory
	key, err := MemoryKey(m, run, c.Config)
	if err != nil {
		return nil, err
	}
	if err := CheckMemoryValue(m, run.Output); err != nil {
		return nil, err
	}
	rec := &MemoryRecord{
		Type: m.Type, Key: key, Version: s.memoryHeads[memHead{m.Type, key}] + 1, Value: run.Output, Status: MemoryActive,
		Run: run.ID, Component: run.Component, Generation: run.Generation, Index: ctx.index, Time: ctx.header.Time,
		Inputs: run.Reads, ModifyIndex: ctx.index,
	}
	if m.TTLNanos > 0 {
		rec.ExpireTime = ctx.header.Time + m.TTLNanos
	}
	for _, in := range rec.Inputs {
		if src := s.memory[keyOf(in)]; src != nil && src.Status == MemoryInvalidated {
			rec.Status, rec.Reason = MemoryInvalidated, "derived from "+in.String()
			rec.EndIndex, rec.EndTime = ctx.index, ctx.header.Time
			break
		}
	}
	return rec, nil
}

// promote stores a new record version, superseding the ACTIVE one before
// it.
func (s *State) promote(ctx *applyCtx, rec *MemoryRecord) {
	// The ACTIVE version is the newest one that is ACTIVE: a version born
	// INVALIDATED (from an invalidated input) supersedes nothing.
	if prev, ok := s.activeVersion(rec.Type, rec.Key); ok && rec.Status == MemoryActive {
		s.endMemory(ctx, prev, MemorySuperseded, fmt.Sprintf("superseded by version %d", rec.Version), "memory.supersede", "")
	}
	s.putMemory(rec)
	inputs := make([]string, len(rec.Inputs))
	for i, in := range rec.Inputs {
		inputs[i] = in.String()
	}
	s.emit(ctx, "memory.promote", rec.Ref().String(), rec.Component, memoryPayload{
		Status: rec.Status, Run: rec.Run, Reason: rec.Reason, Inputs: inputs, Expires: rec.ExpireTime,
	})
}

// putMemory stores a record version and indexes its key and inputs.
func (s *State) putMemory(rec *MemoryRecord) {
	k := keyOf(rec.Ref())
	if _, seen := s.memory[k]; !seen {
		for _, in := range rec.Inputs {
			s.memoryDerived[keyOf(in)] = append(s.memoryDerived[keyOf(in)], k)
		}
		head := memHead{rec.Type, rec.Key}
		s.memoryHeads[head] = max(s.memoryHeads[head], rec.Version)
	}
	s.memory[k] = rec
}

// endMemory moves a copy of rec to status and records the event.
func (s *State) endMemory(ctx *applyCtx, rec *MemoryRecord, status MemoryStatus, reason, event, operator string) {
	m := *rec
	m.Status, m.Reason = status, reason
	m.ModifyIndex = ctx.index
	if rec.Status == MemoryActive {
		m.EndIndex, m.EndTime = ctx.index, ctx.header.Time
	}
	s.memory[keyOf(m.Ref())] = &m
	s.emit(ctx, event, m.Ref().String(), m.Component, memoryPayload{Status: status, Reason: reason, Operator: operator})
}

// memoryAt resolves a reference (version 0: the newest) to its record.
func (s *State) memoryAt(step string, ref MemoryRef) (*MemoryRecord, error) {
	if err := ref.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	rec, ok := s.MemoryRecordOf(ref)
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", step, ref, ErrNotFound)
	}
	return rec, nil
}

func (s *State) applyMemoryExpire(ctx *applyCtx, req *MemoryExpireRequest) error {
	if len(req.Refs) == 0 || len(req.Refs) > maxMemoryPerEntry {
		return fmt.Errorf("memory.expire: %d records, want 1 to %d: %w", len(req.Refs), maxMemoryPerEntry, ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Refs))
	for i, ref := range req.Refs {
		rec, err := s.memoryAt("expire", ref)
		switch {
		case err != nil:
		case rec.Status != MemoryActive:
			err = fmt.Errorf("expire %s: it is %s: %w", rec.Ref(), rec.Status, ErrConflict)
		case rec.ExpireTime == 0 || ctx.header.Time < rec.ExpireTime:
			err = fmt.Errorf("expire %s at %d: it expires at %d: %w", rec.Ref(), ctx.header.Time, rec.ExpireTime, ErrConflict)
		default:
			s.endMemory(ctx, rec, MemoryExpired, "expired", "memory.expire", "")
		}
		ctx.res.Items[i] = err
	}
	return nil
}

func (s *State) applyMemoryDeprecate(ctx *applyCtx, req *MemoryEndRequest) error {
	rec, err := s.memoryAt("deprecate", req.Ref)
	if err != nil {
		return err
	}
	if err := checkEndReason("deprecate", req.Reason); err != nil {
		return err
	}
	if rec.Status != MemoryActive {
		return fmt.Errorf("deprecate %s: it is %s, not %s: %w", rec.Ref(), rec.Status, MemoryActive, ErrConflict)
	}
	s.endMemory(ctx, rec, MemoryDeprecated, req.Reason, "memory.deprecate", ctx.header.Actor)
	return nil
}

// applyMemoryInvalidate invalidates a record and, walking its lineage
// breadth first (each level in record order), every ACTIVE record derived
// from it, each with the reason naming the record it was derived from.
func (s *State) applyMemoryInvalidate(ctx *applyCtx, req *MemoryEndRequest) error {
	rec, err := s.memoryAt("invalidate", req.Ref)
	if err != nil {
		return err
	}
	if err := checkEndReason("invalidate", req.Reason); err != nil {
		return err
	}
	if rec.Status == MemoryInvalidated {
		return fmt.Errorf("invalidate %s: it is %s already: %w", rec.Ref(), rec.Status, ErrConflict)
	}
	s.endMemory(ctx, rec, MemoryInvalidated, req.Reason, "memory.invalidate", ctx.header.Actor)
	seen := map[memKey]bool{keyOf(rec.Ref()): true}
	level := []memKey{keyOf(rec.Ref())}
	for len(level) > 0 {
		var next []memKey
		for _, parent := range level {
			kids := slices.Clone(s.memoryDerived[parent])
			slices.SortFunc(kids, func(a, b memKey) int { return compareRefs(a.ref(), b.ref()) })
			for _, k := range kids {
				if seen[k] {
					continue
				}
				seen[k] = true
				next = append(next, k)
				if d := s.memory[k]; d.Status == MemoryActive {
					s.endMemory(ctx, d, MemoryInvalidated, "derived from "+parent.ref().String(), "memory.invalidate", ctx.header.Actor)
				}
			}
		}
		level = next
	}
	return nil
}

func checkEndReason(step, reason string) error {
	if reason == "" || len(reason) > maxReasonLen {
		return fmt.Errorf("%s: a reason of 1 to %d bytes is required: %w", step, maxReasonLen, ErrInvalid)
	}
	return nil
}

// ExpiredMemory returns the ACTIVE records whose expiry is at or before
// now, at most limit, in record order: what the leader proposes to expire.
func (s *State) ExpiredMemory(now int64, limit int) []MemoryRef {
	var out []MemoryRef
	for _, m := range s.memory {
		if m.Status == MemoryActive && m.ExpireTime != 0 && m.ExpireTime <= now {
			out = append(out, m.Ref())
		}
	}
	slices.SortFunc(out, compareRefs)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// activeVersion returns the ACTIVE version of a key, if one is: the newest
// version that is ACTIVE (at most one is).
func (s *State) activeVersion(typ, key string) (*MemoryRecord, bool) {
	for v := s.memoryHeads[memHead{typ, key}]; v > 0; v-- {
		m, ok := s.memory[memKey{typ, key, v}]
		if ok && m.Status == MemoryActive {
			return m, true
		}
		if ok && m.Status != MemoryInvalidated {
			return nil, false // superseded, expired or deprecated: none older is ACTIVE
		}
	}
	return nil, false
}

// ActiveMemory returns the ACTIVE version of a key, if one is: not always
// the newest, since a version born INVALIDATED supersedes nothing.
func (s *State) ActiveMemory(typ, key string) (*MemoryRecord, bool) { return s.activeVersion(typ, key) }
