package acl

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// ErrInvalidPolicy is wrapped by every error Parse returns.
var ErrInvalidPolicy = errors.New("invalid policy")

// Level is a degree of access.
type Level uint8

// Levels, in order of what they allow. Deny is a decision of its own: it
// overrides any allowing rule.
const (
	// None: no rule applies (denied).
	None Level = iota
	// Read allows reading.
	Read
	// Write allows reading and changing.
	Write
	// Deny refuses, whatever other rules allow.
	Deny
)

// String returns the level as written in a policy.
func (l Level) String() string {
	switch l {
	case Read:
		return "read"
	case Write:
		return "write"
	case Deny:
		return "deny"
	}
	return "none"
}

// ParseLevel reads "read", "write" or "deny".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	case "deny":
		return Deny, nil
	}
	return None, fmt.Errorf("policy %q: want \"read\", \"write\" or \"deny\": %w", s, ErrInvalidPolicy)
}

// Kind is a kind of resource rules name.
type Kind string

// Resource kinds. Prefix kinds name resources by a prefix label; Operator
// and ACL are single resources written without a label.
const (
	KindComponent  Kind = "component"
	KindNode       Kind = "node"
	KindCapability Kind = "capability"
	KindMemory     Kind = "memory"
	KindOperator   Kind = "operator"
	KindACL        Kind = "acl"
)

// PrefixKinds are the kinds whose rules carry a name prefix, in the order a
// policy's canonical text lists them.
var PrefixKinds = []Kind{KindComponent, KindNode, KindCapability, KindMemory}

// Rule grants Level on the resources of Kind whose names start with Prefix
// (Prefix is empty for the single kinds).
type Rule struct {
	Kind   Kind
	Prefix string
	Level  Level
}

// Policy is a parsed policy: its rules sorted by kind, then prefix.
type Policy struct {
	Name  string
	Rules []Rule
}

// MaxPolicyBytes bounds a policy's source text.
const MaxPolicyBytes = 64 << 10

type policyFile struct {
	Components   []prefixBlock `hcl:"component,block"`
	Nodes        []prefixBlock `hcl:"node,block"`
	Capabilities []prefixBlock `hcl:"capability,block"`
	Memory       []prefixBlock `hcl:"memory,block"`
	Operator     []singleBlock `hcl:"operator,block"`
	ACL          []singleBlock `hcl:"acl,block"`
}

type prefixBlock struct {
	Prefix string    `hcl:"prefix,label"`
	Policy string    `hcl:"policy"`
	Range  hcl.Range `hcl:",def_range"`
}

type singleBlock struct {
	Policy string    `hcl:"policy"`
	Range  hcl.Range `hcl:",def_range"`
}

// everyDiagnostic lists every error diagnostic with its position and
// detail (hcl's Diagnostics.Error names the first and counts the rest).
func everyDiagnostic(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			parts = append(parts, d.Error())
		}
	}
	return strings.Join(parts, "; ")
}

// Parse reads a policy's HCL. Errors name the line and what is wrong, and
// wrap ErrInvalidPolicy. A prefix or single kind given twice is refused.
func Parse(name string, src []byte) (*Policy, error) {
	if len(src) > MaxPolicyBytes {
		return nil, fmt.Errorf("policy %s: %d bytes, more than %d: %w", name, len(src), MaxPolicyBytes, ErrInvalidPolicy)
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return nil, fmt.Errorf("policy %s: %s: %w", name, everyDiagnostic(diags), ErrInvalidPolicy)
	}
	var pf policyFile
	if diags := gohcl.DecodeBody(f.Body, nil, &pf); diags.HasErrors() {
		return nil, fmt.Errorf("policy %s: %s: %w", name, everyDiagnostic(diags), ErrInvalidPolicy)
	}
	p := &Policy{Name: name}
	for _, k := range []struct {
		kind   Kind
		blocks []prefixBlock
	}{{KindComponent, pf.Components}, {KindNode, pf.Nodes}, {KindCapability, pf.Capabilities}, {KindMemory, pf.Memory}} {
		seen := map[string]bool{}
		for _, b := range k.blocks {
			if seen[b.Prefix] {
				return nil, fmt.Errorf("policy %s: %s: %s %q is given twice: %w", name, b.Range, k.kind, b.Prefix, ErrInvalidPolicy)
			}
			seen[b.Prefix] = true
			if err := addRule(p, k.kind, b.Prefix, b.Policy, b.Range); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range []struct {
		kind   Kind
		blocks []singleBlock
	}{{KindOperator, pf.Operator}, {KindACL, pf.ACL}} {
		if len(k.blocks) > 1 {
			return nil, fmt.Errorf("policy %s: %s: %s is given %d times: %w", name, k.blocks[1].Range, k.kind, len(k.blocks), ErrInvalidPolicy)
		}
		for _, b := range k.blocks {
			if err := addRule(p, k.kind, "", b.Policy, b.Range); err != nil {
				return nil, err
			}
		}
	}
	sortRules(p.Rules)
	return p, nil
}

func addRule(p *Policy, kind Kind, prefix, level string, at hcl.Range) error {
	l, err := ParseLevel(level)
	if err != nil {
		return fmt.Errorf("policy %s: %s: %s %q: %w", p.Name, at, kind, prefix, err)
	}
	if strings.ContainsAny(prefix, "\x00\n") {
		return fmt.Errorf("policy %s: %s: %s prefix %q holds a NUL or newline: %w", p.Name, at, kind, prefix, ErrInvalidPolicy)
	}
	p.Rules = append(p.Rules, Rule{Kind: kind, Prefix: prefix, Level: l})
	return nil
}

func kindOrder(k Kind) int {
	order := append(slices.Clone(PrefixKinds), KindOperator, KindACL)
	return slices.Index(order, k)
}

func sortRules(rs []Rule) {
	slices.SortFunc(rs, func(a, b Rule) int {
		if d := kindOrder(a.Kind) - kindOrder(b.Kind); d != 0 {
			return d
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
}

// String renders the policy as canonical HCL: rules sorted, one block each.
// Parse(String()) gives the same rules.
func (p *Policy) String() string {
	var b strings.Builder
	for _, r := range p.Rules {
		if r.Kind == KindOperator || r.Kind == KindACL {
			fmt.Fprintf(&b, "%s {\n  policy = %q\n}\n", r.Kind, r.Level.String())
			continue
		}
		fmt.Fprintf(&b, "%s %s {\n  policy = %q\n}\n", r.Kind, hclString(r.Prefix), r.Level.String())
	}
	return b.String()
}

// hclString quotes s for HCL: as Go quoting, with template sequences escaped.
func hclString(s string) string {
	q := fmt.Sprintf("%q", s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}
