package jepsen

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ice-run/ice/fsm"
)

// PutRecord is one component.put event: a write that took effect.
type PutRecord struct {
	Key   string
	Gen   uint64
	Value int64
	// HasValue is false when the spec carried no integer value.
	HasValue bool
	Index    uint64
}

// ComponentPuts extracts the component.put events of a log.
func ComponentPuts(events []fsm.Event) []PutRecord {
	var out []PutRecord
	for _, e := range events {
		if e.Type != "component.put" {
			continue
		}
		var p struct {
			Generation uint64   `json:"generation"`
			Spec       fsm.Spec `json:"spec"`
		}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			continue
		}
		r := PutRecord{Key: e.Subject, Gen: p.Generation, Index: e.Index}
		if s, ok := p.Spec.Config[ValueKey]; ok {
			if v, err := strconv.ParseInt(s, 10, 64); err == nil {
				r.Value, r.HasValue = v, true
			}
		}
		out = append(out, r)
	}
	return out
}

type keyValue struct {
	key   string
	value int64
}

// AppliedFromEvents returns an Applied backed by the component.put events.
func AppliedFromEvents(events []fsm.Event) Applied {
	set := map[keyValue]bool{}
	for _, p := range ComponentPuts(events) {
		if p.HasValue {
			set[keyValue{p.Key, p.Value}] = true
		}
	}
	return func(key string, value int64) bool { return set[keyValue{key, value}] }
}

// CheckDurability checks every write of the history (register writes and
// ticker deploys) against the final event log and components:
//   - an acknowledged write is in the log with the generation it was
//     acknowledged with and its value, and the component's final
//     generation is not below it;
//   - a write that definitely failed is not in the log;
//   - no write took effect twice.
func CheckDurability(ops []Op, events []fsm.Event, final map[string]fsm.Component) *Verdict {
	v := &Verdict{Checker: "durability"}
	puts := ComponentPuts(events)
	byKV := map[keyValue][]PutRecord{}
	for _, p := range puts {
		if p.HasValue {
			kv := keyValue{p.Key, p.Value}
			byKV[kv] = append(byKV[kv], p)
		}
	}
	for kv, ps := range byKV {
		if len(ps) > 1 {
			v.violate("write of %s value %d took effect %d times (generations %d and %d)", kv.key, kv.value, len(ps), ps[0].Gen, ps[1].Gen)
		}
	}
	var acked, failed, infoApplied, infoLost int
	for _, op := range ops {
		inv, c := op.Invoke, op.Complete
		if inv.F != FWrite && inv.F != FDeploy {
			continue
		}
		ps := byKV[keyValue{inv.Key, inv.Value}]
		switch c.Type {
		case TOK:
			acked++
			if len(ps) == 0 {
				v.violate("lost acknowledged write: %s of %s value %d acknowledged at t=%.3fs with generation %d is not in the event log",
					inv.F, inv.Key, inv.Value, float64(c.Mono)/1e9, c.Gen)
				continue
			}
			if ps[0].Gen != c.Gen {
				v.violate("%s of %s value %d was acknowledged with generation %d, the log has it at generation %d", inv.F, inv.Key, inv.Value, c.Gen, ps[0].Gen)
			}
			if fc, ok := final[inv.Key]; !ok {
				v.violate("component %s, written at generation %d (acknowledged), is missing at the end", inv.Key, c.Gen)
			} else if fc.Generation < c.Gen {
				v.violate("component %s ends at generation %d, below the acknowledged generation %d", inv.Key, fc.Generation, c.Gen)
			}
		case TFail:
			failed++
			if len(ps) > 0 {
				v.violate("%s of %s value %d was reported failed (%s) but took effect at index %d (generation %d)",
					inv.F, inv.Key, inv.Value, c.Error, ps[0].Index, ps[0].Gen)
			}
		default:
			if len(ps) > 0 {
				infoApplied++
			} else {
				infoLost++
			}
		}
	}
	v.stat("acknowledged", acked)
	v.stat("failed", failed)
	v.stat("indeterminate_applied", infoApplied)
	v.stat("indeterminate_not_applied", infoLost)
	v.stat("component_puts_in_log", len(puts))
	return v.finish(fmt.Sprintf("all %d acknowledged writes present, none of %d failed writes applied (%d indeterminate: %d applied, %d not)",
		acked, failed, infoApplied+infoLost, infoApplied, infoLost))
}
