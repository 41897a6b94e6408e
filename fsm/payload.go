package fsm

import (
	"encoding/json"
	"sort"
	"strconv"
)

// Event payloads are JSON and part of the hash chain, so their bytes must be
// what encoding/json.Marshal produces, on every server and in every
// version. The two payloads Apply emits most (component.put and
// run.transition) are written by hand here, several times faster than
// through reflection; TestPayloadsMatchEncodingJSON checks them against
// json.Marshal over generated values.

// componentPutPayload is the payload of a component.put event.
type componentPutPayload struct {
	Generation uint64 `json:"generation"`
	Spec       Spec   `json:"spec"`
}

func (p *componentPutPayload) appendJSON(b []byte) []byte {
	b = append(b, `{"generation":`...)
	b = strconv.AppendUint(b, p.Generation, 10)
	b = append(b, `,"spec":`...)
	b = p.Spec.appendJSON(b)
	return append(b, '}')
}

func (s *Spec) appendJSON(b []byte) []byte {
	if s.hasV8() {
		raw, _ := json.Marshal(s) // plain fields: cannot fail
		return append(b, raw...)
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"plugin":{"name":`...)
	b = appendJSONString(b, s.Plugin.Name)
	if s.Plugin.Version != "" {
		b = append(b, `,"version":`...)
		b = appendJSONString(b, s.Plugin.Version)
	}
	if s.Plugin.SHA256 != "" {
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, s.Plugin.SHA256)
	}
	b = append(b, '}')
	if len(s.Config) > 0 {
		b = append(b, `,"config":{`...)
		for i, k := range sortedKeys(s.Config) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, s.Config[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(s.Count), 10)
	if len(s.Constraints) > 0 {
		b = append(b, `,"constraints":[`...)
		for i, c := range s.Constraints {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"label":`...)
			b = appendJSONString(b, c.Label)
			b = append(b, `,"op":`...)
			b = appendJSONString(b, c.Op)
			b = append(b, `,"value":`...)
			b = appendJSONString(b, c.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"restart":{`...)
	sep := ""
	if r := s.Restart; r.Attempts != 0 || r.DelayNanos != 0 || r.MaxDelayNanos != 0 {
		if r.Attempts != 0 {
			b = append(b, `"attempts":`...)
			b = strconv.AppendInt(b, int64(r.Attempts), 10)
			sep = ","
		}
		if r.DelayNanos != 0 {
			b = append(b, sep+`"delay_ns":`...)
			b = strconv.AppendInt(b, r.DelayNanos, 10)
			sep = ","
		}
		if r.MaxDelayNanos != 0 {
			b = append(b, sep+`"max_delay_ns":`...)
			b = strconv.AppendInt(b, r.MaxDelayNanos, 10)
		}
	}
	b = append(b, '}')
	if s.MaxParallel != 0 {
		b = append(b, `,"max_parallel":`...)
		b = strconv.AppendInt(b, int64(s.MaxParallel), 10)
	}
	if s.OutputPattern != "" {
		b = append(b, `,"output_pattern":`...)
		b = appendJSONString(b, s.OutputPattern)
	}
	if len(s.Capabilities) > 0 {
		b = append(b, `,"capabilities":[`...)
		for i, c := range s.Capabilities {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"scope":`...)
			b = appendJSONString(b, c.Scope)
			b = append(b, `,"ttl_ns":`...)
			b = strconv.AppendInt(b, c.TTLNanos, 10)
			b = append(b, `,"effect":`...)
			b = appendJSONString(b, string(c.Effect))
			if c.Approvals != 0 {
				b = append(b, `,"approvals":`...)
				b = strconv.AppendInt(b, int64(c.Approvals), 10)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (p *TransitionPayload) appendJSON(b []byte) []byte {
	if len(p.Reads) > 0 || len(p.Cost) > 0 {
		raw, _ := json.Marshal(p) // plain fields: cannot fail
		return append(b, raw...)
	}
	b = append(b, `{"from":`...)
	b = appendJSONString(b, string(p.From))
	b = append(b, `,"to":`...)
	b = appendJSONString(b, string(p.To))
	if p.Node != "" {
		b = append(b, `,"node":`...)
		b = appendJSONString(b, p.Node)
	}
	if p.Epoch != 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, p.Epoch, 10)
	}
	if p.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, p.Reason)
	}
	if p.Output != "" {
		b = append(b, `,"output":`...)
		b = appendJSONString(b, p.Output)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json does: a string of
// printable ASCII without characters it escapes is copied as it is, and
// anything else goes through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string: cannot fail
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// sortedKeys returns a map's keys in order, as encoding/json writes them.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
