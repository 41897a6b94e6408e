package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/ice-run/ice/fsm"
)

// ParseSpecFile parses a component spec file: JSON (the API's wire form) when
// the name ends in .json or the content starts with '{', HCL otherwise:
//
//	component "ticker" {
//	  plugin = "ticker"            # plugin_version, plugin_sha256 optional
//	  count  = 2
//	  config = { file = "/tmp/ticker.log", interval = "1s" }
//	  constraint {
//	    label = "zone"
//	    op    = "="                # "=" (default) or "!="
//	    value = "a"
//	  }
//	  restart {
//	    attempts  = 3
//	    delay     = "1s"
//	    max_delay = "30s"
//	  }
//	  update { max_parallel = 1 }   # rolling updates and drains
//	  capability "net:http:*" {    # what its runs may request grants for
//	    ttl       = "10m"
//	    effect    = "external"     # internal, external or irreversible
//	    approvals = 1              # irreversible only (default 1)
//	  }
//	  memory "summary" {           # what a committed output becomes (memory_spec.go)
//	    key = "doc-${config.doc}"  # ${input.NAME}, ${config.NAME} kept literally
//	  }
//	  reads  = ["fact"]            # record types its runs may read
//	  budget { tokens = 200000 }   # unit limits per window (memory_spec.go)
//	}
//
// A dispatched component (dispatch = true) has no standing runs: count
// defaults to 0 and must be 0, and each `ice dispatch` creates one run.
//
// (HCL writes a block on one line only when it has one argument.) In JSON,
// "plugin" is an object {"name": ..., "version": ..., "sha256": ...} or just
// the plugin's name, as in HCL.
//
// Explicit nulls (count = null, "count": null) are refused, as are control
// characters and invalid UTF-8 in names, labels and config (input.go):
// omit a field for its default.
func ParseSpecFile(filename string, src []byte) (*ComponentSpec, error) {
	trimmed := bytes.TrimSpace(src)
	var sp *ComponentSpec
	var err error
	if strings.HasSuffix(filename, ".json") || bytes.HasPrefix(trimmed, []byte("{")) {
		sp, err = parseSpecJSON(filename, trimmed)
	} else {
		sp, err = parseSpecHCL(filename, src)
	}
	if err != nil {
		return nil, err
	}
	if err := sp.CheckText(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filename, err)
	}
	return sp, nil
}

func parseSpecJSON(filename string, src []byte) (*ComponentSpec, error) {
	var sp ComponentSpec
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sp); err != nil {
		if ie := (*InputError)(nil); errors.As(err, &ie) {
			return nil, fmt.Errorf("parse %s: %w", filename, ie)
		}
		return nil, fmt.Errorf("parse %s as JSON: %v: %w", filename, err, fsm.ErrBadRequest)
	}
	if dec.More() {
		return nil, fmt.Errorf("parse %s: more than one JSON value: %w", filename, fsm.ErrBadRequest)
	}
	if sp.Name == "" {
		sp.Name = strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename))
	}
	return &sp, nil
}

type hclFile struct {
	Components []hclComponent `hcl:"component,block"`
}

type hclComponent struct {
	Name          string          `hcl:"name,label"`
	Plugin        string          `hcl:"plugin"`
	PluginVersion string          `hcl:"plugin_version,optional"`
	PluginSHA256  string          `hcl:"plugin_sha256,optional"`
	Count         *int            `hcl:"count,optional"`
	Config        *hcl.Attribute  `hcl:"config,optional"`
	Constraints   []hclConstraint `hcl:"constraint,block"`
	Restart       *hclRestart     `hcl:"restart,block"`
	OutputPattern string          `hcl:"output_pattern,optional"`
	Update        *hclUpdate      `hcl:"update,block"`
	Capabilities  []hclCapability `hcl:"capability,block"`
	Dispatch      *bool           `hcl:"dispatch,optional"`
	Memory        []hclMemory     `hcl:"memory,block"`
	Reads         []string        `hcl:"reads,optional"`
	Budget        *hclBudget      `hcl:"budget,block"`
}

type hclConstraint struct {
	Label string `hcl:"label"`
	Op    string `hcl:"op,optional"`
	Value string `hcl:"value"`
}

type hclCapability struct {
	Scope     string `hcl:"scope,label"`
	TTL       string `hcl:"ttl,optional"`
	Effect    string `hcl:"effect,optional"`
	Approvals int    `hcl:"approvals,optional"`
}

type hclUpdate struct {
	MaxParallel int `hcl:"max_parallel,optional"`
}

type hclRestart struct {
	Attempts *int   `hcl:"attempts,optional"`
	Delay    string `hcl:"delay,optional"`
	MaxDelay string `hcl:"max_delay,optional"`
}

func parseSpecHCL(filename string, src []byte) (*ComponentSpec, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", filename, diagError(diags))
	}
	if err := hclNulls(filename, f.Body); err != nil {
		return nil, err
	}
	var file hclFile
	if diags := gohcl.DecodeBody(f.Body, nil, &file); diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", filename, diagError(diags))
	}
	if len(file.Components) != 1 {
		return nil, fmt.Errorf("parse %s: want exactly one component block, found %d: %w", filename, len(file.Components), fsm.ErrBadRequest)
	}
	c := file.Components[0]
	sp := &ComponentSpec{
		Name:   c.Name,
		Plugin: fsm.PluginRef{Name: c.Plugin, Version: c.PluginVersion, SHA256: c.PluginSHA256},
		Count:  c.Count,

		OutputPattern: c.OutputPattern,
	}
	if c.Update != nil {
		sp.MaxParallel = c.Update.MaxParallel
	}
	for _, k := range c.Constraints {
		op := k.Op
		if op == "" {
			op = "="
		}
		sp.Constraints = append(sp.Constraints, fsm.Constraint{Label: k.Label, Op: op, Value: k.Value})
	}
	for _, k := range c.Capabilities {
		sp.Capabilities = append(sp.Capabilities, CapabilitySpec(k))
	}
	if r := c.Restart; r != nil {
		sp.Restart = &RestartPolicySpec{Attempts: r.Attempts, Delay: r.Delay, MaxDelay: r.MaxDelay}
	}
	if diags := hclMemoryInto(&c, sp); diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %w", filename, diagError(diags))
	}
	if c.Config != nil {
		cfg, err := hclConfig(c.Config)
		if err != nil {
			return nil, fmt.Errorf("parse %s: component %q: %w", filename, c.Name, err)
		}
		sp.Config = cfg
	}
	return sp, nil
}

// DiagnosticsError is an HCL spec's diagnostics, every one of them (hcl's
// own Diagnostics.Error names the first and counts the others). It is a
// bad request.
type DiagnosticsError struct {
	Diags hcl.Diagnostics
}

func diagError(diags hcl.Diagnostics) error {
	return &DiagnosticsError{Diags: diags}
}

// Error is one diagnostic on one line, with its position and hcl's detail
// (which holds the "Did you mean ...?" suggestion):
//
//	s.hcl:3,3-8: Unsupported argument; An argument named "cuont" is not expected here. Did you mean "count"?: bad request
//
// or, for several, a count and then each on a line of its own:
//
//	2 problems: bad request
//	  s.hcl:3,3-8: Unsupported argument; ...
//	  s.hcl:5,16-23: Unsuitable value type; ...
func (e *DiagnosticsError) Error() string {
	if len(e.Diags) == 1 {
		return diagLine(e.Diags[0]) + ": " + fsm.ErrBadRequest.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems: %s", len(e.Diags), fsm.ErrBadRequest)
	for _, d := range e.Diags {
		b.WriteString("\n  ")
		b.WriteString(diagLine(d))
	}
	return b.String()
}

// Unwrap makes the error a bad request.
func (e *DiagnosticsError) Unwrap() error { return fsm.ErrBadRequest }

func diagLine(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		b.WriteString(d.Subject.String())
		b.WriteString(": ")
	}
	if d.Severity == hcl.DiagWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("; ")
		b.WriteString(strings.Join(strings.Fields(d.Detail), " "))
	}
	return b.String()
}

// hclConfig evaluates the config attribute, an object of primitives.
func hclConfig(attr *hcl.Attribute) (map[string]any, error) {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, fmt.Errorf("config: %w", diagError(diags))
	}
	if v.IsNull() {
		return nil, nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		return nil, fmt.Errorf("config: want an object like { key = \"value\" }, got %s: %w", v.Type().FriendlyName(), fsm.ErrBadRequest)
	}
	out := map[string]any{}
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		key := k.AsString()
		switch {
		case val.IsNull():
			return nil, &InputError{Field: "config key " + quoteShort(key), Problem: "null is not allowed; omit the key"}
		case val.Type() == cty.String:
			out[key] = val.AsString()
		case val.Type() == cty.Bool:
			out[key] = val.True()
		case val.Type() == cty.Number:
			out[key] = json.Number(val.AsBigFloat().Text('f', -1))
		default:
			return nil, fmt.Errorf("config key %q: want a string, number or bool, got %s: %w", key, val.Type().FriendlyName(), fsm.ErrBadRequest)
		}
	}
	return out, nil
}

// hclNulls refuses an attribute of a component block (or of a block in it)
// whose value is null or holds a null: count = null would read as count
// omitted. Paths are named as in JSON ("spec.restart.attempts"), with the
// line. Attributes that do not evaluate are left to gohcl to report.
func hclNulls(filename string, body hcl.Body) error {
	b, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	for _, blk := range b.Blocks {
		if blk.Type == "component" {
			if err := hclBodyNulls(filename, "spec", blk.Body); err != nil {
				return err
			}
		}
	}
	return nil
}

func hclBodyNulls(filename, path string, b *hclsyntax.Body) error {
	names := slices.Sorted(maps.Keys(b.Attributes))
	for _, name := range names {
		attr := b.Attributes[name]
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			continue
		}
		var found cty.Path
		null := false
		_ = cty.Walk(v, func(p cty.Path, v cty.Value) (bool, error) {
			if !null && v.IsNull() {
				null, found = true, slices.Clone(p)
			}
			return !null && v.IsKnown(), nil
		})
		if null {
			field := path + "." + name + ctyPath(found)
			problem := "null is not allowed; omit the field for the default"
			return fmt.Errorf("parse %s:%d: %w", filename, attr.SrcRange.Start.Line, &InputError{Field: field, Problem: problem})
		}
	}
	seen := map[string]int{}
	for _, blk := range b.Blocks {
		sub := path + "." + blk.Type
		switch blk.Type {
		case "constraint":
			sub += "[" + strconv.Itoa(seen[blk.Type]) + "]"
		case "capability":
			// As in JSON: spec.capabilities[0].ttl.
			sub = path + ".capabilities[" + strconv.Itoa(seen[blk.Type]) + "]"
		}
		seen[blk.Type]++
		if err := hclBodyNulls(filename, sub, blk.Body); err != nil {
			return err
		}
	}
	return nil
}

// ctyPath renders a path inside a value: .key, ["a b"], [2].
func ctyPath(p cty.Path) string {
	var out string
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			out += keyStep(s.Name)
		case cty.IndexStep:
			switch {
			case s.Key.Type() == cty.String:
				out += keyStep(s.Key.AsString())
			case s.Key.Type() == cty.Number:
				out += "[" + s.Key.AsBigFloat().Text('f', -1) + "]"
			}
		}
	}
	return out
}
