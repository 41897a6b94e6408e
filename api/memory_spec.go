package api

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/ice-run/ice/fsm"
)

// Dispatch, memory, reads and budgets in a spec (fsm/memory.go,
// fsm/budget.go). In HCL:
//
//	component "summarize" {
//	  plugin   = "summarizer"
//	  dispatch = true               # runs only by `ice dispatch`; count is 0
//	  memory "summary" {            # at most one: what a committed output becomes
//	    key      = "doc-${input.doc}"
//	    format   = "json"           # or omit: text
//	    required = ["text"]         # top-level fields a json output must have
//	    ttl      = "720h"           # omit: ACTIVE until superseded
//	  }
//	  reads = ["fact", "summary"]   # record types its runs may read
//	  budget {
//	    tokens   = 200000           # every other attribute is a unit limit
//	    requests = 50
//	    window   = "24h"            # omit: one window forever
//	    hard     = false            # true: running runs end once exhausted
//	  }
//	}
//
// and in JSON "dispatch": true, "memory": {"type": "summary", "key":
// "doc-${input.doc}", "format": "json", "required": ["text"], "ttl":
// "720h"}, "reads": [...], "budget": {"limits": {"tokens": 200000,
// "requests": 50}, "window": "24h", "hard": false}.
//
// The key is a template the state machine expands when it promotes a
// committed output: ${input.NAME} is the run's dispatch meta NAME and
// ${config.NAME} the spec's config NAME. HCL would read "${...}" inside a
// string as its own interpolation; the parser takes the key's template
// apart instead and keeps ${input.NAME} and ${config.NAME} literally, so
// both key = "doc-${input.doc}" and the escaped key = "doc-$${input.doc}"
// give the key template doc-${input.doc}. Any other interpolation
// (functions, other variables, %{ } directives) is refused.

// MemorySpecWire is the wire form of fsm.MemorySpec.
type MemorySpecWire struct {
	Type     string   `json:"type"`
	Key      string   `json:"key"`
	Format   string   `json:"format,omitempty"`
	Required []string `json:"required,omitempty"`
	// TTL is a Go duration ("720h"); empty: no expiry.
	TTL string `json:"ttl,omitempty"`
}

// BudgetSpec is the wire form of fsm.Budget.
type BudgetSpec struct {
	// Limits is the most of each unit ("tokens", "requests") the runs may
	// spend per window: positive integers.
	Limits map[string]uint64 `json:"limits"`
	// Window is a Go duration ("24h"); empty: one window forever.
	Window string `json:"window,omitempty"`
	Hard   bool   `json:"hard,omitempty"`
}

// memoryToFSM converts the memory, reads and budget of a spec; the state
// machine's ValidateSpec checks names, the key template and limits.
func (c *ComponentSpec) memoryToFSM(sp *fsm.Spec) error {
	sp.Dispatch = c.Dispatch
	if c.Dispatch {
		switch {
		case c.Count == nil:
			sp.Count = 0
		case *c.Count != 0:
			return &InputError{Field: "spec.count", Problem: fmt.Sprintf("%d: a dispatched component has no standing runs; omit count or set it to 0", *c.Count)}
		}
	}
	if m := c.Memory; m != nil {
		if m.Type == "" {
			return &InputError{Field: "spec.memory.type", Problem: "required: the record type, like \"summary\""}
		}
		if m.Key == "" {
			return &InputError{Field: "spec.memory.key", Problem: "required: a key template like \"doc-${input.doc}\""}
		}
		ttl := int64(0)
		if m.TTL != "" {
			d, err := time.ParseDuration(m.TTL)
			if err != nil || d <= 0 {
				return &InputError{Field: "spec.memory.ttl", Problem: fmt.Sprintf("%s: want a positive duration like \"720h\"", quoteShort(m.TTL))}
			}
			ttl = int64(d)
		}
		sp.Memory = &fsm.MemorySpec{Type: m.Type, Key: m.Key, Format: m.Format, Required: cloneOrNil(m.Required), TTLNanos: ttl}
	}
	sp.Reads = cloneOrNil(c.Reads)
	if b := c.Budget; b != nil {
		if len(b.Limits) == 0 {
			return &InputError{Field: "spec.budget.limits", Problem: "required: at least one unit limit, like tokens = 200000"}
		}
		fb := &fsm.Budget{Limits: make(map[string]uint64, len(b.Limits)), Hard: b.Hard}
		for _, u := range slices.Sorted(maps.Keys(b.Limits)) {
			if b.Limits[u] == 0 {
				return &InputError{Field: "spec.budget.limits" + keyStep(u), Problem: "0: want a positive integer"}
			}
			fb.Limits[u] = b.Limits[u]
		}
		if b.Window != "" {
			d, err := time.ParseDuration(b.Window)
			if err != nil || d <= 0 {
				return &InputError{Field: "spec.budget.window", Problem: fmt.Sprintf("%s: want a positive duration like \"24h\"", quoteShort(b.Window))}
			}
			fb.WindowNanos = int64(d)
		}
		sp.Budget = fb
	}
	return nil
}

// cloneOrNil copies a list; an empty one is nil, as JSON without it decodes.
func cloneOrNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// memoryText lists the memory, reads and budget strings for CheckText.
func (c *ComponentSpec) memoryText() [][2]string {
	var pairs [][2]string
	if m := c.Memory; m != nil {
		pairs = append(pairs, [2]string{"memory type", m.Type}, [2]string{"memory key", m.Key}, [2]string{"memory format", m.Format}, [2]string{"memory ttl", m.TTL})
		for i, f := range m.Required {
			pairs = append(pairs, [2]string{"memory required field " + strconv.Itoa(i), f})
		}
	}
	for i, t := range c.Reads {
		pairs = append(pairs, [2]string{"reads " + strconv.Itoa(i), t})
	}
	if b := c.Budget; b != nil {
		pairs = append(pairs, [2]string{"budget window", b.Window})
		for _, u := range slices.Sorted(maps.Keys(b.Limits)) {
			pairs = append(pairs, [2]string{"budget unit", u})
		}
	}
	return pairs
}

// The HCL forms.

type hclMemory struct {
	Type     string         `hcl:"type,label"`
	Key      hcl.Expression `hcl:"key"`
	Format   string         `hcl:"format,optional"`
	Required []string       `hcl:"required,optional"`
	TTL      string         `hcl:"ttl,optional"`
	Range    hcl.Range      `hcl:",def_range"`
}

type hclBudget struct {
	Window string    `hcl:"window,optional"`
	Hard   bool      `hcl:"hard,optional"`
	Units  hcl.Body  `hcl:",remain"`
	Range  hcl.Range `hcl:",def_range"`
}

// hclMemoryInto sets the memory, reads and budget of sp from the block.
func hclMemoryInto(c *hclComponent, sp *ComponentSpec) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if c.Dispatch != nil {
		sp.Dispatch = *c.Dispatch
	}
	sp.Reads = c.Reads
	if len(c.Memory) > 1 {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Duplicate memory block",
			Detail:  fmt.Sprintf("A component's committed output becomes one record type: memory %q is declared at %s already.", c.Memory[0].Type, c.Memory[0].Range),
			Subject: c.Memory[1].Range.Ptr(),
		})
	}
	if len(c.Memory) == 1 {
		m := c.Memory[0]
		key, d := hclKeyTemplate(m.Key)
		if d.HasErrors() {
			return append(diags, d...)
		}
		sp.Memory = &MemorySpecWire{Type: m.Type, Key: key, Format: m.Format, Required: m.Required, TTL: m.TTL}
	}
	if b := c.Budget; b != nil {
		attrs, d := b.Units.JustAttributes()
		if d.HasErrors() {
			return append(diags, d...)
		}
		spec := &BudgetSpec{Limits: map[string]uint64{}, Window: b.Window, Hard: b.Hard}
		names := slices.Sorted(maps.Keys(attrs))
		for _, name := range names {
			attr := attrs[name]
			n, d := hclUnitLimit(attr)
			if d.HasErrors() {
				return append(diags, d...)
			}
			spec.Limits[name] = n
		}
		if len(spec.Limits) == 0 {
			return append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Budget without limits",
				Detail:  "A budget block needs at least one unit limit, like tokens = 200000 (window and hard are not limits).",
				Subject: b.Range.Ptr(),
			})
		}
		sp.Budget = spec
	}
	return diags
}

// hclUnitLimit reads a budget unit limit: a positive integer.
func hclUnitLimit(attr *hcl.Attribute) (uint64, hcl.Diagnostics) {
	bad := func(detail string) (uint64, hcl.Diagnostics) {
		return 0, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid budget limit",
			Detail:  fmt.Sprintf("Budget unit %q: %s. Every attribute of a budget block but window and hard is a unit limit, a positive integer like %s = 200000.", attr.Name, detail, attr.Name),
			Subject: attr.Expr.Range().Ptr(),
		}}
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return 0, diags
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return bad("want a number, got " + v.Type().FriendlyName())
	}
	f := v.AsBigFloat()
	if !f.IsInt() || f.Sign() <= 0 {
		return bad(fmt.Sprintf("%s is not a positive integer", f.Text('f', -1)))
	}
	i, acc := f.Int(nil)
	if acc != big.Exact || !i.IsUint64() {
		return bad(fmt.Sprintf("%s is out of range", f.Text('f', -1)))
	}
	return i.Uint64(), nil
}

// hclKeyTemplate reads the key of a memory block as the state machine's
// key template: literal parts as HCL unescapes them ($${ is a literal ${),
// and an interpolation of input.NAME or config.NAME kept as ${input.NAME}
// or ${config.NAME}. Anything else interpolated is refused.
func hclKeyTemplate(expr hcl.Expression) (string, hcl.Diagnostics) {
	bad := func(at hcl.Range, detail string) (string, hcl.Diagnostics) {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid memory key",
			Detail:  detail + ` The key is a string like "doc-${input.doc}": ${input.NAME} (the dispatch meta) and ${config.NAME} (the spec's config) are expanded when a run's output is promoted; write $${ for a literal ${ elsewhere.`,
			Subject: at.Ptr(),
		}}
	}
	var parts []hclsyntax.Expression
	switch e := expr.(type) {
	case *hclsyntax.TemplateExpr:
		parts = e.Parts
	case *hclsyntax.TemplateWrapExpr:
		parts = []hclsyntax.Expression{e.Wrapped}
	default:
		if v, d := expr.Value(nil); !d.HasErrors() && v.IsNull() {
			// gohcl gives an absent expression attribute as a null.
			return "", hcl.Diagnostics{{
				Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail:  `The argument "key" is required: the record's key, like key = "doc-${input.doc}".`,
				Subject: expr.Range().Ptr(),
			}}
		}
		return bad(expr.Range(), "The key must be a quoted string.")
	}
	var b strings.Builder
	for _, p := range parts {
		switch e := p.(type) {
		case *hclsyntax.LiteralValueExpr:
			if e.Val.Type() != cty.String || e.Val.IsNull() {
				return bad(e.Range(), "Only strings and ${input.NAME} or ${config.NAME} may make up the key.")
			}
			b.WriteString(e.Val.AsString())
		case *hclsyntax.ScopeTraversalExpr:
			tr := e.Traversal
			root := tr.RootName()
			if len(tr) != 2 || (root != "input" && root != "config") {
				return bad(e.Range(), fmt.Sprintf("${%s} is not ${input.NAME} or ${config.NAME}.", traversalText(tr)))
			}
			attr, ok := tr[1].(hcl.TraverseAttr)
			if !ok {
				return bad(e.Range(), fmt.Sprintf("${%s} is not ${input.NAME} or ${config.NAME}.", traversalText(tr)))
			}
			b.WriteString("${" + root + "." + attr.Name + "}")
		default:
			return bad(p.Range(), "Only ${input.NAME} and ${config.NAME} may be interpolated in a key (no functions, expressions or %{ } directives).")
		}
	}
	return b.String(), nil
}

// traversalText renders a traversal for an error message.
func traversalText(tr hcl.Traversal) string {
	var b strings.Builder
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		default:
			b.WriteString("[...]")
		}
	}
	return b.String()
}
