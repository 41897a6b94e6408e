package fsm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Memory records are what committed runs produce: a record exists only
// because the runtime committed a run whose component declares what its
// output becomes, and the committing entry promotes the output. A record
// names the run, component, generation, index and time it came from, and
// the exact record versions the run read (its inputs), so that when a
// record turns out to be wrong everything derived from it can be found and
// invalidated in one entry.
//
// Lifecycle of a record, with its authority:
//
//	from        step                          actor     to
//	none        run.transition VALIDATING →   runtime   ACTIVE (INVALIDATED, with
//	            COMMITTED of a component                "derived from T/K@V", when
//	            declaring memory                        an input is INVALIDATED)
//	ACTIVE      a newer version of its key    runtime   SUPERSEDED
//	            is promoted
//	ACTIVE      memory.expire, at or after    runtime   EXPIRED
//	            its expiry (leader time)
//	ACTIVE      memory.deprecate              operator  DEPRECATED
//	ACTIVE,     memory.invalidate             operator  INVALIDATED, and every
//	SUPERSEDED,                                         ACTIVE record derived from
//	EXPIRED,                                            it (transitively) with
//	DEPRECATED                                          "derived from T/K@V"
//	INVALIDATED every step is refused (ErrConflict)
//
// No other command creates or changes a record: there is no write API.

// MemorySpec declares the record a finite component's committed output
// becomes.
type MemorySpec struct {
	// Type names the kind of record ("summary", "fact").
	Type string `json:"type"`
	// Key is the record's key, with ${input.NAME} (the run's dispatch
	// meta) and ${config.NAME} (the spec's config) expanded.
	Key string `json:"key"`
	// Format is "json" (the output must be a JSON object) or "" (text).
	Format string `json:"format,omitempty"`
	// Required are top-level fields a JSON output must have.
	Required []string `json:"required,omitempty"`
	// TTLNanos is how long a record stays ACTIVE (0: until superseded).
	TTLNanos int64 `json:"ttl_ns,omitempty"`
}

// MemoryStatus is where a record is in its lifecycle.
type MemoryStatus string

// Memory record statuses.
const (
	MemoryActive      MemoryStatus = "ACTIVE"
	MemoryExpired     MemoryStatus = "EXPIRED"
	MemoryDeprecated  MemoryStatus = "DEPRECATED"
	MemorySuperseded  MemoryStatus = "SUPERSEDED"
	MemoryInvalidated MemoryStatus = "INVALIDATED"
)

// AllMemoryStatuses lists the statuses, for decoding and tests.
var AllMemoryStatuses = []MemoryStatus{MemoryActive, MemoryExpired, MemoryDeprecated, MemorySuperseded, MemoryInvalidated}

// MemoryRef names one version of a record; Version 0 means the newest.
type MemoryRef struct {
	Type    string `json:"type"`
	Key     string `json:"key"`
	Version uint64 `json:"version,omitempty"`
}

// String is "type/key@version" ("type/key" for the newest).
func (r MemoryRef) String() string {
	if r.Version == 0 {
		return r.Type + "/" + r.Key
	}
	return r.Type + "/" + r.Key + "@" + strconv.FormatUint(r.Version, 10)
}

// ParseMemoryRef parses "type/key[@version]".
func ParseMemoryRef(s string) (MemoryRef, error) {
	typ, rest, ok := strings.Cut(s, "/")
	if !ok {
		return MemoryRef{}, fmt.Errorf("memory record %q: want TYPE/KEY[@VERSION]: %w", s, ErrInvalid)
	}
	ref := MemoryRef{Type: typ, Key: rest}
	if k, v, ok := strings.Cut(rest, "@"); ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return MemoryRef{}, fmt.Errorf("memory record %q: version %q is not a positive number: %w", s, v, ErrInvalid)
		}
		ref.Key, ref.Version = k, n
	}
	if err := ref.validate(); err != nil {
		return MemoryRef{}, err
	}
	return ref, nil
}

func (r MemoryRef) validate() error {
	if err := validName("memory type", r.Type); err != nil {
		return err
	}
	return validMemoryKey(r.Key)
}

// validMemoryKey accepts 1 to 256 printable characters without spaces,
// '/' or '@' (which separate the parts of a reference).
func validMemoryKey(k string) error {
	if k == "" || len(k) > maxMemoryKeyLen {
		return fmt.Errorf("memory key %q: want 1 to %d characters: %w", k, maxMemoryKeyLen, ErrInvalid)
	}
	for i, c := range k {
		if c <= ' ' || c == 0x7f || c == '/' || c == '@' {
			return fmt.Errorf("memory key %q: character %q at %d not allowed (no spaces, control characters, '/' or '@'): %w", k, c, i, ErrInvalid)
		}
	}
	return nil
}

// MemoryRecord is one version of a record.
type MemoryRecord struct {
	Type    string       `json:"type"`
	Key     string       `json:"key"`
	Version uint64       `json:"version"`
	Value   string       `json:"value"`
	Status  MemoryStatus `json:"status"`
	Reason  string       `json:"reason,omitempty"`
	// Run, Component and Generation are the committed run it came from;
	// Index and Time the committing entry.
	Run        string `json:"run"`
	Component  string `json:"component"`
	Generation uint64 `json:"generation"`
	Index      uint64 `json:"index"`
	Time       int64  `json:"time"`
	// ExpireTime is when it expires (leader time; 0: never).
	ExpireTime int64 `json:"expire_time,omitempty"`
	// Inputs are the record versions the run read, sorted.
	Inputs      []MemoryRef `json:"inputs,omitempty"`
	ModifyIndex uint64      `json:"modify_index"`
	// EndIndex and EndTime are when it left ACTIVE.
	EndIndex uint64 `json:"end_index,omitempty"`
	EndTime  int64  `json:"end_time,omitempty"`
}

// Ref is the record's reference.
func (m *MemoryRecord) Ref() MemoryRef { return MemoryRef{m.Type, m.Key, m.Version} }

// Limits of memory.
const (
	maxMemoryKeyLen   = 256
	maxReadsPerRun    = 256
	maxReadTypes      = 64
	maxRequiredFields = 64
	maxCostUnits      = 16
	maxMemoryPerEntry = 4096
	maxMetaKeys       = 64
)

// validateMemory checks a spec's memory, reads, budget and dispatch.
func validateMemory(sp *Spec) error {
	if m := sp.Memory; m != nil {
		if err := validName("memory type", m.Type); err != nil {
			return fmt.Errorf("component %q: %w", sp.Name, err)
		}
		if m.Key == "" || len(m.Key) > maxMemoryKeyLen {
			return fmt.Errorf("component %q: memory %q: key template of 1 to %d characters required: %w", sp.Name, m.Type, maxMemoryKeyLen, ErrInvalid)
		}
		if err := checkKeyTemplate(m.Key); err != nil {
			return fmt.Errorf("component %q: memory %q: %w", sp.Name, m.Type, err)
		}
		if m.Format != "" && m.Format != "json" {
			return fmt.Errorf("component %q: memory %q: format %q, want \"json\" or none: %w", sp.Name, m.Type, m.Format, ErrInvalid)
		}
		if len(m.Required) > 0 && m.Format != "json" {
			return fmt.Errorf("component %q: memory %q: required fields need format = \"json\": %w", sp.Name, m.Type, ErrInvalid)
		}
		if len(m.Required) > maxRequiredFields || m.TTLNanos < 0 {
			return fmt.Errorf("component %q: memory %q: at most %d required fields and a ttl not below 0: %w", sp.Name, m.Type, maxRequiredFields, ErrInvalid)
		}
		for _, f := range m.Required {
			if f == "" || len(f) > maxNameLen {
				return fmt.Errorf("component %q: memory %q: required field %q: want 1 to %d characters: %w", sp.Name, m.Type, f, maxNameLen, ErrInvalid)
			}
		}
	}
	if len(sp.Reads) > maxReadTypes {
		return fmt.Errorf("component %q: %d read types, at most %d: %w", sp.Name, len(sp.Reads), maxReadTypes, ErrInvalid)
	}
	for _, t := range sp.Reads {
		if err := validName("read type", t); err != nil {
			return fmt.Errorf("component %q: %w", sp.Name, err)
		}
	}
	if sp.Dispatch && sp.Count != 0 {
		return fmt.Errorf("component %q: a dispatched component has no standing runs: count %d, want 0: %w", sp.Name, sp.Count, ErrInvalid)
	}
	return validateBudget(sp)
}

// checkKeyTemplate checks that every ${...} of a key template names
// input.NAME or config.NAME.
func checkKeyTemplate(tmpl string) error {
	_, err := expandKey(tmpl, func(string, string) (string, bool) { return "x", true })
	return err
}

// MemoryKey is the key of the record a run of a component with memory m
// would become: its template with ${input.NAME} from the run's meta and
// ${config.NAME} from config.
func MemoryKey(m *MemorySpec, run *Run, config map[string]string) (string, error) {
	key, err := expandKey(m.Key, func(src, name string) (string, bool) {
		var v string
		var ok bool
		if src == "input" {
			v, ok = run.Meta[name]
		} else {
			v, ok = config[name]
		}
		return v, ok
	})
	if err != nil {
		return "", fmt.Errorf("memory %q key %q: %w", m.Type, m.Key, err)
	}
	if err := validMemoryKey(key); err != nil {
		return "", fmt.Errorf("memory %q: %w", m.Type, err)
	}
	return key, nil
}

func expandKey(tmpl string, lookup func(src, name string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed \"${\": %w", ErrInvalid)
		}
		ref := tmpl[i+2 : i+j]
		src, name, ok := strings.Cut(ref, ".")
		if !ok || (src != "input" && src != "config") || name == "" {
			return "", fmt.Errorf("${%s}: want ${input.NAME} or ${config.NAME}: %w", ref, ErrInvalid)
		}
		v, ok := lookup(src, name)
		if !ok {
			where := "the run's dispatch meta"
			if src == "config" {
				where = "the spec's config"
			}
			return "", fmt.Errorf("${%s}: %q is not in %s: %w", ref, name, where, ErrInvalid)
		}
		b.WriteString(v)
		tmpl = tmpl[i+j+1:]
	}
}

// CheckMemoryValue checks a run's output against the memory it becomes:
// a JSON object with the required fields when the format is json.
func CheckMemoryValue(m *MemorySpec, output string) error {
	if m.Format != "json" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(output), &obj); err != nil {
		return fmt.Errorf("memory %q: the output is not a JSON object: %v: %w", m.Type, err, ErrInvalid)
	}
	for _, f := range m.Required {
		if _, ok := obj[f]; !ok {
			return fmt.Errorf("memory %q: the output lacks the required field %q: %w", m.Type, f, ErrInvalid)
		}
	}
	return nil
}

// MayRead reports whether a component's runs may read records of typ.
func MayRead(sp *Spec, typ string) bool { return slices.Contains(sp.Reads, typ) }

// memKey indexes a record version; memHead a record's key.
type memKey struct {
	typ, key string
	version  uint64
}

type memHead struct{ typ, key string }

func keyOf(r MemoryRef) memKey { return memKey{r.Type, r.Key, r.Version} }

func (k memKey) ref() MemoryRef { return MemoryRef{k.typ, k.key, k.version} }

// MemoryFilter selects records; empty fields match all.
type MemoryFilter struct {
	Type, Key string
	Status    MemoryStatus
	Run       string
}

// Memory returns the records the filter selects, by type, key and
// version.
func (s *State) Memory(f MemoryFilter) []*MemoryRecord {
	out := make([]*MemoryRecord, 0)
	for _, m := range s.memory {
		if (f.Type == "" || m.Type == f.Type) && (f.Key == "" || m.Key == f.Key) && (f.Status == "" || m.Status == f.Status) && (f.Run == "" || m.Run == f.Run) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, compareMemory)
	return out
}

// MemoryRecordOf returns one version of a record; version 0 is the newest.
func (s *State) MemoryRecordOf(ref MemoryRef) (*MemoryRecord, bool) {
	if ref.Version == 0 {
		ref.Version = s.memoryHeads[memHead{ref.Type, ref.Key}]
	}
	m, ok := s.memory[keyOf(ref)]
	return m, ok
}

// MemoryDerived returns the records whose inputs include ref, sorted.
func (s *State) MemoryDerived(ref MemoryRef) []*MemoryRecord {
	out := make([]*MemoryRecord, 0)
	for _, k := range s.memoryDerived[keyOf(ref)] {
		out = append(out, s.memory[k])
	}
	slices.SortFunc(out, compareMemory)
	return out
}

func compareMemory(a, b *MemoryRecord) int { return compareRefs(a.Ref(), b.Ref()) }

// compareRefs orders references by type, key, then version.
func compareRefs(a, b MemoryRef) int {
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return cmp.Compare(a.Version, b.Version)
}

// MemoryCounts counts the record versions by status.
func (s *State) MemoryCounts() map[MemoryStatus]int {
	out := make(map[MemoryStatus]int, len(AllMemoryStatuses))
	for _, m := range s.memory {
		out[m.Status]++
	}
	return out
}
