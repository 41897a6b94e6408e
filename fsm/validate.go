package fsm

import (
	"fmt"
	"regexp"
	"strings"
)

// Limits on command content. They bound memory and keep names printable.
const (
	maxNameLen    = 128
	MaxCount      = 100_000
	maxConfigKeys = 256
	maxValueLen   = 64 << 10
	maxReasonLen  = 4 << 10
	maxOutputLen  = 1 << 20
)

// validName accepts names of 1 to 128 characters from [A-Za-z0-9_.-],
// starting with a letter or digit.
func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%s %q is longer than %d characters: %w", what, s[:32]+"...", maxNameLen, ErrInvalid)
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '-' || c == '_' || c == '.')) {
			continue
		}
		return fmt.Errorf("%s %q: character %q at %d not allowed (use letters, digits, '-', '_', '.'; start with a letter or digit): %w", what, s, c, i, ErrInvalid)
	}
	return nil
}

// ValidateSpec checks a component spec as Apply would, so that the API can
// refuse bad input before proposing it.
func ValidateSpec(sp *Spec) error {
	if err := validName("component name", sp.Name); err != nil {
		return err
	}
	if sp.Plugin.Name == "" {
		return fmt.Errorf("component %q: plugin name is required: %w", sp.Name, ErrInvalid)
	}
	if err := validName("plugin name", sp.Plugin.Name); err != nil {
		return fmt.Errorf("component %q: %w", sp.Name, err)
	}
	if h := sp.Plugin.SHA256; h != "" && !isHex(h, 64) {
		return fmt.Errorf("component %q: plugin sha256 %q is not 64 hex characters: %w", sp.Name, h, ErrInvalid)
	}
	if sp.Count < 0 || sp.Count > MaxCount {
		return fmt.Errorf("component %q: count %d out of range 0..%d: %w", sp.Name, sp.Count, MaxCount, ErrInvalid)
	}
	if len(sp.Config) > maxConfigKeys {
		return fmt.Errorf("component %q: %d config keys, at most %d: %w", sp.Name, len(sp.Config), maxConfigKeys, ErrInvalid)
	}
	for k, v := range sp.Config {
		if k == "" || len(k) > maxNameLen || len(v) > maxValueLen {
			return fmt.Errorf("component %q: config key %q: empty, or key over %d or value over %d bytes: %w", sp.Name, k, maxNameLen, maxValueLen, ErrInvalid)
		}
	}
	for i, c := range sp.Constraints {
		if c.Label == "" || (c.Op != "=" && c.Op != "!=") {
			return fmt.Errorf("component %q: constraint %d: want a label and op \"=\" or \"!=\", got label %q op %q: %w", sp.Name, i, c.Label, c.Op, ErrInvalid)
		}
	}
	if len(sp.OutputPattern) > maxNameLen*8 {
		return fmt.Errorf("component %q: output_pattern longer than %d bytes: %w", sp.Name, maxNameLen*8, ErrInvalid)
	}
	if sp.OutputPattern == "" {
		// no pattern: any non-empty output is committed
	} else if _, err := regexp.Compile(sp.OutputPattern); err != nil {
		return fmt.Errorf("component %q: output_pattern: %v: %w", sp.Name, err, ErrInvalid)
	}
	if err := validateCapabilities(sp); err != nil {
		return err
	}
	if err := validateMemory(sp); err != nil {
		return err
	}
	if sp.MaxParallel < 0 || sp.MaxParallel > MaxCount {
		return fmt.Errorf("component %q: max_parallel %d out of range 0..%d: %w", sp.Name, sp.MaxParallel, MaxCount, ErrInvalid)
	}
	r := sp.Restart
	if r.Attempts < 0 || r.DelayNanos < 0 || r.MaxDelayNanos < 0 {
		return fmt.Errorf("component %q: restart policy values must not be negative: %w", sp.Name, ErrInvalid)
	}
	if r.MaxDelayNanos > 0 && r.DelayNanos > r.MaxDelayNanos {
		return fmt.Errorf("component %q: restart delay exceeds max_delay: %w", sp.Name, ErrInvalid)
	}
	return nil
}

func validateNode(n *Node) error {
	if err := validName("node id", n.ID); err != nil {
		return err
	}
	if len(n.Address) > 256 || len(n.Labels) > maxConfigKeys || len(n.Plugins) > maxConfigKeys {
		return fmt.Errorf("node %q: address, labels or plugin catalogue too large: %w", n.ID, ErrInvalid)
	}
	for _, p := range n.Plugins {
		if err := validName("plugin name", p.Name); err != nil {
			return fmt.Errorf("node %q: %w", n.ID, err)
		}
		if !isHex(p.SHA256, 64) {
			return fmt.Errorf("node %q: plugin %q sha256 %q is not 64 hex characters: %w", n.ID, p.Name, p.SHA256, ErrInvalid)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	return strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}
