package api

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ice-run/ice/fsm"
)

// CapabilitySpec is the wire form of fsm.Capability: one capability a
// component's runs may request grants for. In HCL it is a block labelled
// with the scope:
//
//	capability "net:http:*" {
//	  ttl       = "10m"
//	  effect    = "external"
//	  approvals = 1
//	}
//
// and in JSON {"scope": "net:http:*", "ttl": "10m", "effect": "external",
// "approvals": 1}. Scope, ttl and effect are required; approvals applies to
// irreversible capabilities only (0: one approval).
type CapabilitySpec struct {
	Scope     string `json:"scope"`
	TTL       string `json:"ttl"`
	Effect    string `json:"effect"`
	Approvals int    `json:"approvals,omitempty"`
}

// capabilitiesToFSM converts declared capabilities; errors name the field
// as a JSON path (spec.capabilities[1].ttl). The state machine's
// ValidateSpec checks the rest (scope syntax, duplicates, limits).
func capabilitiesToFSM(cs []CapabilitySpec) ([]fsm.Capability, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make([]fsm.Capability, 0, len(cs))
	for i, c := range cs {
		field := "spec.capabilities[" + strconv.Itoa(i) + "]"
		if c.Scope == "" {
			return nil, &InputError{Field: field + ".scope", Problem: "required: a scope like \"net:http:*\""}
		}
		field += " (" + quoteShort(c.Scope) + ")"
		if c.TTL == "" {
			return nil, &InputError{Field: field + ".ttl", Problem: "required: a positive duration like \"10m\""}
		}
		ttl, err := time.ParseDuration(c.TTL)
		if err != nil || ttl <= 0 {
			return nil, &InputError{Field: field + ".ttl", Problem: fmt.Sprintf("%s: want a positive duration like \"10m\"", quoteShort(c.TTL))}
		}
		switch fsm.Effect(c.Effect) {
		case fsm.EffectInternal, fsm.EffectExternal, fsm.EffectIrreversible:
		case "":
			return nil, &InputError{Field: field + ".effect", Problem: "required: internal, external or irreversible"}
		default:
			return nil, &InputError{Field: field + ".effect", Problem: fmt.Sprintf("%s: want internal, external or irreversible", quoteShort(c.Effect))}
		}
		if c.Approvals < 0 {
			return nil, &InputError{Field: field + ".approvals", Problem: fmt.Sprintf("%d: want 1 or more", c.Approvals)}
		}
		out = append(out, fsm.Capability{Scope: c.Scope, TTLNanos: int64(ttl), Effect: fsm.Effect(c.Effect), Approvals: c.Approvals})
	}
	return out, nil
}

// capabilityText lists the capabilities' strings for CheckText.
func capabilityText(cs []CapabilitySpec) [][2]string {
	var pairs [][2]string
	for i, c := range cs {
		what := "capability " + strconv.Itoa(i)
		pairs = append(pairs, [2]string{what + " scope", c.Scope}, [2]string{what + " ttl", c.TTL}, [2]string{what + " effect", c.Effect})
	}
	return pairs
}
