package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/ice-run/ice/fsm"
)

// SpecFromFSM is the wire form of a stored spec: what, put again, stores
// the same spec (ToFSM gives it back). Durations are Go durations ("1s",
// "720h", "1h30m"), and every field the state machine defaulted is explicit.
func SpecFromFSM(sp *fsm.Spec) *ComponentSpec {
	count := sp.Count
	attempts := sp.Restart.Attempts
	out := &ComponentSpec{
		Name:          sp.Name,
		Plugin:        sp.Plugin,
		Count:         &count,
		Constraints:   slices.Clone(sp.Constraints),
		MaxParallel:   sp.MaxParallel,
		OutputPattern: sp.OutputPattern,
		Dispatch:      sp.Dispatch,
		Reads:         cloneOrNil(sp.Reads),
		Restart: &RestartPolicySpec{
			Attempts: &attempts,
			Delay:    shortDuration(sp.Restart.DelayNanos),
			MaxDelay: shortDuration(sp.Restart.MaxDelayNanos),
		},
	}
	if len(sp.Config) > 0 {
		out.Config = make(map[string]any, len(sp.Config))
		for k, v := range sp.Config {
			out.Config[k] = v
		}
	}
	for _, c := range sp.Capabilities {
		out.Capabilities = append(out.Capabilities, CapabilitySpec{
			Scope: c.Scope, TTL: shortDuration(c.TTLNanos), Effect: string(c.Effect), Approvals: c.Approvals,
		})
	}
	if m := sp.Memory; m != nil {
		w := &MemorySpecWire{Type: m.Type, Key: m.Key, Format: m.Format, Required: cloneOrNil(m.Required)}
		if m.TTLNanos > 0 {
			w.TTL = shortDuration(m.TTLNanos)
		}
		out.Memory = w
	}
	if b := sp.Budget; b != nil {
		w := &BudgetSpec{Limits: maps.Clone(b.Limits), Hard: b.Hard}
		if b.WindowNanos > 0 {
			w.Window = shortDuration(b.WindowNanos)
		}
		out.Budget = w
	}
	return out
}

// FormatSpecHCL writes a spec as the HCL ParseSpecFile reads (see its
// comment for the form): one component block whose fields parse back to
// the same spec. Strings are escaped as HCL needs (a memory key's
// ${input.NAME} is written $${input.NAME}, which the parser reads as the
// same template). It fails for a spec HCL cannot say: no name, a config
// value that is not a string, number or bool, or a budget unit that is not
// an HCL identifier or is named window or hard.
func FormatSpecHCL(sp *ComponentSpec) ([]byte, error) {
	if sp == nil || sp.Name == "" {
		return nil, fmt.Errorf("format spec as HCL: the spec names no component: %w", fsm.ErrBadRequest)
	}
	f := hclwrite.NewEmptyFile()
	blk := f.Body().AppendNewBlock("component", []string{sp.Name})
	b := blk.Body()
	if err := formatAttributes(b, sp); err != nil {
		return nil, fmt.Errorf("format spec %q as HCL: %w", sp.Name, err)
	}
	formatBlocks(b, sp)
	if err := formatMemoryBudget(b, sp); err != nil {
		return nil, fmt.Errorf("format spec %q as HCL: %w", sp.Name, err)
	}
	return hclwrite.Format(f.Bytes()), nil
}

// formatAttributes writes the component's own attributes.
func formatAttributes(b *hclwrite.Body, sp *ComponentSpec) error {
	b.SetAttributeValue("plugin", cty.StringVal(sp.Plugin.Name))
	if sp.Plugin.Version != "" {
		b.SetAttributeValue("plugin_version", cty.StringVal(sp.Plugin.Version))
	}
	if sp.Plugin.SHA256 != "" {
		b.SetAttributeValue("plugin_sha256", cty.StringVal(sp.Plugin.SHA256))
	}
	if sp.Count != nil {
		b.SetAttributeValue("count", cty.NumberIntVal(int64(*sp.Count)))
	}
	if sp.Dispatch {
		b.SetAttributeValue("dispatch", cty.True)
	}
	if len(sp.Config) > 0 {
		obj := make(map[string]cty.Value, len(sp.Config))
		for _, k := range slices.Sorted(maps.Keys(sp.Config)) {
			v, err := configCty(sp.Config[k])
			if err != nil {
				return fmt.Errorf("config key %q: %w", k, err)
			}
			obj[k] = v
		}
		b.SetAttributeValue("config", cty.ObjectVal(obj))
	}
	if sp.OutputPattern != "" {
		b.SetAttributeValue("output_pattern", cty.StringVal(sp.OutputPattern))
	}
	if len(sp.Reads) > 0 {
		b.SetAttributeValue("reads", stringList(sp.Reads))
	}
	return nil
}

// formatBlocks writes the constraint, restart, update and capability
// blocks.
func formatBlocks(b *hclwrite.Body, sp *ComponentSpec) {
	for _, c := range sp.Constraints {
		cb := b.AppendNewBlock("constraint", nil).Body()
		op := c.Op
		if op == "" {
			op = "="
		}
		cb.SetAttributeValue("label", cty.StringVal(c.Label))
		cb.SetAttributeValue("op", cty.StringVal(op))
		cb.SetAttributeValue("value", cty.StringVal(c.Value))
	}
	if r := sp.Restart; r != nil {
		rb := b.AppendNewBlock("restart", nil).Body()
		if r.Attempts != nil {
			rb.SetAttributeValue("attempts", cty.NumberIntVal(int64(*r.Attempts)))
		}
		if r.Delay != "" {
			rb.SetAttributeValue("delay", cty.StringVal(r.Delay))
		}
		if r.MaxDelay != "" {
			rb.SetAttributeValue("max_delay", cty.StringVal(r.MaxDelay))
		}
	}
	if sp.MaxParallel != 0 {
		b.AppendNewBlock("update", nil).Body().SetAttributeValue("max_parallel", cty.NumberIntVal(int64(sp.MaxParallel)))
	}
	for _, c := range sp.Capabilities {
		cb := b.AppendNewBlock("capability", []string{c.Scope}).Body()
		if c.TTL != "" {
			cb.SetAttributeValue("ttl", cty.StringVal(c.TTL))
		}
		if c.Effect != "" {
			cb.SetAttributeValue("effect", cty.StringVal(c.Effect))
		}
		if c.Approvals != 0 {
			cb.SetAttributeValue("approvals", cty.NumberIntVal(int64(c.Approvals)))
		}
	}
}

// formatMemoryBudget writes the memory and budget blocks.
func formatMemoryBudget(b *hclwrite.Body, sp *ComponentSpec) error {
	if m := sp.Memory; m != nil {
		mb := b.AppendNewBlock("memory", []string{m.Type}).Body()
		mb.SetAttributeValue("key", cty.StringVal(m.Key))
		if m.Format != "" {
			mb.SetAttributeValue("format", cty.StringVal(m.Format))
		}
		if len(m.Required) > 0 {
			mb.SetAttributeValue("required", stringList(m.Required))
		}
		if m.TTL != "" {
			mb.SetAttributeValue("ttl", cty.StringVal(m.TTL))
		}
	}
	if bu := sp.Budget; bu != nil {
		bb := b.AppendNewBlock("budget", nil).Body()
		for _, u := range slices.Sorted(maps.Keys(bu.Limits)) {
			if u == "window" || u == "hard" || !hclsyntax.ValidIdentifier(u) {
				return fmt.Errorf("budget unit %q: HCL names a unit by an identifier other than window and hard: %w", u, fsm.ErrBadRequest)
			}
			bb.SetAttributeValue(u, cty.NumberUIntVal(bu.Limits[u]))
		}
		if bu.Window != "" {
			bb.SetAttributeValue("window", cty.StringVal(bu.Window))
		}
		if bu.Hard {
			bb.SetAttributeValue("hard", cty.True)
		}
	}
	return nil
}

// configCty is a config value as HCL writes it.
func configCty(v any) (cty.Value, error) {
	switch x := v.(type) {
	case string:
		return cty.StringVal(x), nil
	case bool:
		return cty.BoolVal(x), nil
	case float64:
		return cty.NumberFloatVal(x), nil
	case json.Number:
		n, err := cty.ParseNumberVal(x.String())
		if err != nil {
			return cty.NilVal, fmt.Errorf("number %s: %v: %w", x, err, fsm.ErrBadRequest)
		}
		return n, nil
	}
	return cty.NilVal, fmt.Errorf("value of type %T: want a string, number or boolean: %w", v, fsm.ErrBadRequest)
}

func stringList(s []string) cty.Value {
	vals := make([]cty.Value, len(s))
	for i, x := range s {
		vals[i] = cty.StringVal(x)
	}
	return cty.ListVal(vals)
}

// shortDuration is a duration as Go writes it without the zero minutes and
// seconds it ends in ("720h", not "720h0m0s").
func shortDuration(ns int64) string {
	s := time.Duration(ns).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
