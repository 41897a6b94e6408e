package jepsen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Results of a checker.
const (
	Pass    = "pass"    // no violation found
	Fail    = "fail"    // a violation was found
	Unknown = "unknown" // the checker could not decide (e.g. it timed out)
	Skipped = "skipped" // the checker could not run here
)

// maxListed bounds the violations a verdict lists.
const maxListed = 50

// Verdict is what one checker concluded.
type Verdict struct {
	Checker string `json:"checker"`
	Result  string `json:"result"`
	// Summary is one line for summary.md.
	Summary string `json:"summary"`
	// Violations lists what was found (at most maxListed; Count has all).
	Violations []string `json:"violations,omitempty"`
	Count      int      `json:"violation_count"`
	// Notes are observations that are not violations.
	Notes []string       `json:"notes,omitempty"`
	Stats map[string]any `json:"stats,omitempty"`
}

// violate adds a violation and marks the verdict failed.
func (v *Verdict) violate(format string, args ...any) {
	v.Result = Fail
	v.Count++
	if len(v.Violations) < maxListed {
		v.Violations = append(v.Violations, fmt.Sprintf(format, args...))
	}
}

func (v *Verdict) note(format string, args ...any) {
	if len(v.Notes) < maxListed {
		v.Notes = append(v.Notes, fmt.Sprintf(format, args...))
	}
}

func (v *Verdict) stat(k string, val any) {
	if v.Stats == nil {
		v.Stats = map[string]any{}
	}
	v.Stats[k] = val
}

// finish sets the summary of a verdict that found nothing.
func (v *Verdict) finish(okSummary string) *Verdict {
	if v.Result == "" {
		v.Result = Pass
	}
	if v.Summary == "" {
		if v.Result == Fail {
			v.Summary = fmt.Sprintf("%d violation(s); first: %s", v.Count, first(v.Violations))
		} else {
			v.Summary = okSummary
		}
	}
	return v
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// WriteJSON writes v to dir/checks/<checker>.json.
func (v *Verdict) WriteJSON(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "checks"), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "checks", v.Checker+".json"), append(b, '\n'), 0o644)
}
