package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
)

// ExecuteRequest is what the agent hands a finite plugin's Execute.
type ExecuteRequest struct {
	// Input is a dispatched run's input, else the spec's config "input".
	Input string
	// Meta is a dispatched run's meta (nil otherwise). The plugin's Execute
	// finds it in its context: RunMeta.
	Meta map[string]string
}

// ExecuteResult is what a finite plugin's Execute answers.
type ExecuteResult struct {
	Output string
	// Cost is what the run spent, units by name: the totals since the
	// run's Start (one process serves one run at a time).
	Cost map[string]uint64
}

// Executor is implemented by the host side of a dispensed Component
// (next to Component's Execute, which passes no meta and loses the cost):
// ExecuteRun passes the run's meta and returns its cost. The result's
// Cost is set even when err is not nil: what a failed execution spent.
type Executor interface {
	ExecuteRun(ctx context.Context, req ExecuteRequest) (ExecuteResult, error)
}

type runMetaKey struct{}

// WithRunMeta returns ctx carrying a run's meta (what the plugin side
// hands Component.Execute).
func WithRunMeta(ctx context.Context, meta map[string]string) context.Context {
	return context.WithValue(ctx, runMetaKey{}, meta)
}

// RunMeta returns the run's meta that ctx carries (nil: none; a run that
// was not dispatched, or an agent that predates meta).
func RunMeta(ctx context.Context) map[string]string {
	m, _ := ctx.Value(runMetaKey{}).(map[string]string)
	return m
}

// MaxCostUnits is the most distinct cost units a run reports (the state
// machine refuses a report with more).
const MaxCostUnits = 16

// maxUnitLen is the longest cost unit name.
const maxUnitLen = 128

// ErrCostUnit: a cost unit the runtime does not accept.
var ErrCostUnit = errors.New("invalid cost unit")

// CheckCostUnit accepts what the runtime accepts as a unit name: 1 to 128
// letters, digits, '-', '_' and '.', starting with a letter or digit.
func CheckCostUnit(unit string) error {
	if unit == "" || len(unit) > maxUnitLen {
		return fmt.Errorf("cost unit %q: want 1 to %d characters: %w", unit, maxUnitLen, ErrCostUnit)
	}
	for i, c := range unit {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '-' || c == '_' || c == '.')) {
			continue
		}
		return fmt.Errorf("cost unit %q: character %q at %d not allowed (letters, digits, '-', '_', '.'; starting with a letter or digit): %w", unit, c, i, ErrCostUnit)
	}
	return nil
}

// CostMeter accumulates a plugin process's cost, units by name. It is
// safe for concurrent use.
type CostMeter struct {
	mu    sync.Mutex
	units map[string]uint64
}

// NewCostMeter returns an empty meter.
func NewCostMeter() *CostMeter { return &CostMeter{units: map[string]uint64{}} }

// Add adds n of unit (saturating). It refuses an invalid unit name and a
// unit past the first MaxCostUnits.
func (m *CostMeter) Add(unit string, n uint64) error {
	if err := CheckCostUnit(unit); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.units[unit]
	if !ok && len(m.units) >= MaxCostUnits {
		return fmt.Errorf("cost unit %q: the run already reports %d units, at most %d: %w", unit, len(m.units), MaxCostUnits, ErrCostUnit)
	}
	if cur+n < cur {
		n = ^uint64(0) - cur
	}
	m.units[unit] = cur + n
	return nil
}

// Reset empties the meter: a reusable plugin's process starts the next
// run's cost at zero.
func (m *CostMeter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.units)
}

// Totals returns a copy of the totals (nil when nothing was added).
func (m *CostMeter) Totals() map[string]uint64 {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.units) == 0 {
		return nil
	}
	return maps.Clone(m.units)
}

// CleanCost returns the part of cost the runtime accepts: valid unit
// names, at most MaxCostUnits of them (in name order), and the units it
// dropped (nil: none).
func CleanCost(cost map[string]uint64) (map[string]uint64, []string) {
	if len(cost) == 0 {
		return nil, nil
	}
	units := make([]string, 0, len(cost))
	for u := range cost {
		units = append(units, u)
	}
	sort.Strings(units)
	out := make(map[string]uint64, min(len(cost), MaxCostUnits))
	var dropped []string
	for _, u := range units {
		if CheckCostUnit(u) != nil || len(out) >= MaxCostUnits {
			dropped = append(dropped, u)
			continue
		}
		out[u] = cost[u]
	}
	if len(out) == 0 {
		out = nil
	}
	return out, dropped
}
