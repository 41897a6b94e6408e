package fsm

import "fmt"

// The binary encoding of what body version 8 and snapshot format 7 added:
// dispatch, memory and budgets. Fields added to older records are written
// after the older fields (see putSpec, putComponent, putRun), so that
// older forms stay prefixes of the new.

func (e *encoder) uintMap(m map[string]uint64) {
	e.uvarint(uint64(len(m)))
	for _, k := range sortedKeys(m) {
		e.str(k)
		e.uvarint(m[k])
	}
}

func (d *decoder) uintMap() map[string]uint64 {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]uint64, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		if i > 0 && k <= prev {
			d.fail("map keys not sorted and unique at %q", k)
			return nil
		}
		m[k], prev = d.uvarint(), k
	}
	return m
}

func (e *encoder) refs(rs []MemoryRef) {
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.str(r.Type)
		e.str(r.Key)
		e.uvarint(r.Version)
	}
}

func (d *decoder) refs() []MemoryRef {
	n := d.count(3)
	if n == 0 {
		return nil
	}
	out := make([]MemoryRef, n)
	for i := range out {
		out[i] = MemoryRef{Type: d.str(), Key: d.str(), Version: d.uvarint()}
	}
	return out
}

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

// putSpecV8 and getSpecV8 are the spec's version 8 fields.
func putSpecV8(e *encoder, s *Spec) {
	e.bool(s.Dispatch)
	e.bool(s.Memory != nil)
	if m := s.Memory; m != nil {
		e.str(m.Type)
		e.str(m.Key)
		e.str(m.Format)
		e.strs(m.Required)
		e.varint(m.TTLNanos)
	}
	e.strs(s.Reads)
	e.bool(s.Budget != nil)
	if b := s.Budget; b != nil {
		e.uintMap(b.Limits)
		e.varint(b.WindowNanos)
		e.bool(b.Hard)
	}
}

func getSpecV8(d *decoder, s *Spec) {
	s.Dispatch = d.bool()
	if d.bool() {
		s.Memory = &MemorySpec{Type: d.str(), Key: d.str(), Format: d.str(), Required: d.strs(), TTLNanos: d.varint()}
	}
	s.Reads = d.strs()
	if d.bool() {
		s.Budget = &Budget{Limits: d.uintMap(), WindowNanos: d.varint(), Hard: d.bool()}
	}
}

func putSpend(e *encoder, sp *Spend) {
	e.bool(sp != nil)
	if sp != nil {
		e.varint(sp.WindowStart)
		e.uintMap(sp.Units)
	}
}

func getSpend(d *decoder) *Spend {
	if !d.bool() {
		return nil
	}
	return &Spend{WindowStart: d.varint(), Units: d.uintMap()}
}

func putRunV8(e *encoder, r *Run) {
	e.bool(r.Dispatch)
	e.str(r.Input)
	e.strMap(r.Meta)
	e.refs(r.Reads)
	e.uintMap(r.Cost)
}

func getRunV8(d *decoder, r *Run) {
	r.Dispatch = d.bool()
	r.Input = d.str()
	r.Meta = d.strMap()
	r.Reads = d.refs()
	r.Cost = d.uintMap()
}

func putMemoryBody(e *encoder, body any) bool {
	switch b := body.(type) {
	case *ComponentDispatchRequest:
		e.str(b.Name)
		e.str(b.Input)
		e.strMap(b.Meta)
		e.optUint(b.CAS)
	case *MemoryExpireRequest:
		e.refs(b.Refs)
	case *MemoryEndRequest:
		e.refs([]MemoryRef{b.Ref})
		e.str(b.Reason)
	default:
		return false
	}
	return true
}

func getMemoryBody(d *decoder, body any) bool {
	switch b := body.(type) {
	case *ComponentDispatchRequest:
		b.Name, b.Input, b.Meta, b.CAS = d.str(), d.str(), d.strMap(), d.optUint()
	case *MemoryExpireRequest:
		b.Refs = d.refs()
	case *MemoryEndRequest:
		if rs := d.refs(); len(rs) == 1 {
			b.Ref = rs[0]
		} else if d.err == nil {
			d.fail("memory end request names %d records, want 1", len(rs))
		}
		b.Reason = d.str()
	default:
		return false
	}
	return true
}

// putMemoryRecord and getMemoryRecord are the snapshot (and digest)
// record of one record version.
func putMemoryRecord(e *encoder, m *MemoryRecord) {
	e.str(m.Type)
	e.str(m.Key)
	e.uvarint(m.Version)
	e.str(m.Value)
	e.str(string(m.Status))
	e.str(m.Reason)
	e.str(m.Run)
	e.str(m.Component)
	e.uvarint(m.Generation)
	e.uvarint(m.Index)
	e.varint(m.Time)
	e.varint(m.ExpireTime)
	e.refs(m.Inputs)
	e.uvarint(m.ModifyIndex)
	e.uvarint(m.EndIndex)
	e.varint(m.EndTime)
}

func getMemoryRecord(d *decoder, m *MemoryRecord) {
	m.Type, m.Key, m.Version, m.Value = d.str(), d.str(), d.uvarint(), d.str()
	m.Status = known(d.raw(), AllMemoryStatuses)
	m.Reason, m.Run, m.Component = d.str(), d.str(), d.str()
	m.Generation, m.Index, m.Time, m.ExpireTime = d.uvarint(), d.uvarint(), d.varint(), d.varint()
	m.Inputs = d.refs()
	m.ModifyIndex, m.EndIndex, m.EndTime = d.uvarint(), d.uvarint(), d.varint()
}

// hasMemoryData says whether the snapshot holds what only format 7 can:
// memory records, spend, dispatched runs, specs with dispatch, memory,
// reads or a budget.
func (snap *Snapshot) hasMemoryData() bool {
	if len(snap.memory) > 0 {
		return true
	}
	for _, c := range snap.components {
		if c.hasV8() || c.Spend != nil {
			return true
		}
	}
	for _, r := range snap.runs {
		if r.hasV8() {
			return true
		}
	}
	return false
}

// writeMemoryRecords writes the memory records (format 7).
func (snap *Snapshot) writeMemoryRecords(enc *recordWriter, e *encoder) {
	for _, m := range snap.memory {
		e.b = e.b[:0]
		putMemoryRecord(e, m)
		enc.put(recordMemory, e.b)
	}
}

// readMemory reads the meta's count of memory records, refusing
// duplicates, unknown statuses and inputs the snapshot does not hold
// (checked once all are read), and rebuilds the key and lineage indexes.
func (sr *snapshotReader) readMemory() error {
	st := sr.st
	read := make([]*MemoryRecord, 0, sr.meta.Memory)
	for i := 0; i < sr.meta.Memory; i++ {
		m := &MemoryRecord{}
		if err := sr.decode(recordMemory, m, func(d *decoder) { getMemoryRecord(d, m) }); err != nil {
			return fmt.Errorf("read snapshot memory record %d: %w", i, err)
		}
		if err := m.Ref().validate(); err != nil || m.Version == 0 {
			return fmt.Errorf("read snapshot memory record %d %s: a type, key and version required: %w", i, m.Ref(), ErrMalformed)
		}
		if _, dup := st.memory[keyOf(m.Ref())]; dup {
			return fmt.Errorf("read snapshot: memory record %s twice: %w", m.Ref(), ErrMalformed)
		}
		switch m.Status {
		case MemoryActive, MemoryExpired, MemoryDeprecated, MemorySuperseded, MemoryInvalidated:
		default:
			return fmt.Errorf("read snapshot: memory record %s has status %q: %w", m.Ref(), m.Status, ErrMalformed)
		}
		st.putMemory(m)
		read = append(read, m)
		sr.tick()
	}
	for _, m := range read {
		for _, in := range m.Inputs {
			if _, ok := st.memory[keyOf(in)]; !ok {
				return fmt.Errorf("read snapshot: memory record %s names input %s the snapshot does not hold: %w", m.Ref(), in, ErrMalformed)
			}
		}
	}
	return nil
}
