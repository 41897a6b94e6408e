package fsm

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Budgets bound what a component's runs spend. Agents report a run's cost
// (units by name: tokens, requests) with the transition that ends its
// execution (into VALIDATING or ABORTED); the state machine adds it to the
// component's spend for the current window (leader time). Once any unit's
// spend reaches its limit the budget is exhausted until the window ends:
// new runs and dispatches of the component are refused with "budget
// exhausted", and with Hard the runtime also ends its running runs.

// Budget limits a component's spend per window.
type Budget struct {
	// Limits is the most of each unit the component may spend per window.
	Limits map[string]uint64 `json:"limits"`
	// WindowNanos is the window's length (0: one window forever).
	WindowNanos int64 `json:"window_ns,omitempty"`
	// Hard ends running runs once the budget is exhausted.
	Hard bool `json:"hard,omitempty"`
}

// Spend is what a component's runs spent in the current window.
type Spend struct {
	// WindowStart is when the window began (leader time, unix nanos): at
	// the first cost reported after the previous window ended.
	WindowStart int64             `json:"window_start"`
	Units       map[string]uint64 `json:"units"`
}

func validateBudget(sp *Spec) error {
	b := sp.Budget
	if b == nil {
		return nil
	}
	if len(b.Limits) == 0 || len(b.Limits) > maxCostUnits || b.WindowNanos < 0 {
		return fmt.Errorf("component %q: budget: 1 to %d unit limits and a window not below 0 required: %w", sp.Name, maxCostUnits, ErrInvalid)
	}
	for u, n := range b.Limits {
		if err := validName("budget unit", u); err != nil {
			return fmt.Errorf("component %q: %w", sp.Name, err)
		}
		if n == 0 {
			return fmt.Errorf("component %q: budget: %s limit of 0: %w", sp.Name, u, ErrInvalid)
		}
	}
	return nil
}

func validateCost(cost map[string]uint64) error {
	if len(cost) > maxCostUnits {
		return fmt.Errorf("cost of %d units, at most %d: %w", len(cost), maxCostUnits, ErrInvalid)
	}
	for u := range cost {
		if err := validName("cost unit", u); err != nil {
			return err
		}
	}
	return nil
}

// windowOpen reports whether the spend's window still runs at now.
func windowOpen(b *Budget, sp *Spend, now int64) bool {
	if sp == nil || sp.WindowStart == 0 {
		return false
	}
	return b == nil || b.WindowNanos == 0 || now < sp.WindowStart+b.WindowNanos
}

// BudgetExhausted says whether a component's budget is exhausted at now
// (leader time), and why ("budget exhausted: tokens 200100 of 200000 in
// the window since ...").
func BudgetExhausted(c *Component, now int64) (string, bool) {
	b := c.Budget
	if b == nil || !windowOpen(b, c.Spend, now) {
		return "", false
	}
	units := make([]string, 0, len(b.Limits))
	for u := range b.Limits {
		units = append(units, u)
	}
	slices.Sort(units)
	var over []string
	for _, u := range units {
		if spent := c.Spend.Units[u]; spent >= b.Limits[u] {
			over = append(over, fmt.Sprintf("%s %d of %d", u, spent, b.Limits[u]))
		}
	}
	if len(over) == 0 {
		return "", false
	}
	reason := "budget exhausted: " + strings.Join(over, ", ")
	if b.WindowNanos > 0 {
		end := time.Unix(0, c.Spend.WindowStart+b.WindowNanos).UTC().Format(time.RFC3339)
		reason += " in the window that ends at " + end
	}
	return reason, true
}

// BudgetWindowEnd is when the component's current budget window ends (0:
// no window is open, or it never ends).
func BudgetWindowEnd(c *Component, now int64) int64 {
	if c.Budget == nil || c.Budget.WindowNanos == 0 || !windowOpen(c.Budget, c.Spend, now) {
		return 0
	}
	return c.Spend.WindowStart + c.Budget.WindowNanos
}

// addSpend adds a run's cost to its component's spend, starting a new
// window when the last one ended.
func (s *State) addSpend(ctx *applyCtx, component string, cost map[string]uint64) {
	old, ok := s.components[component]
	if !ok || len(cost) == 0 {
		return
	}
	c := *old
	now := ctx.header.Time
	sp := &Spend{WindowStart: now, Units: map[string]uint64{}}
	if windowOpen(c.Budget, old.Spend, now) {
		sp.WindowStart = old.Spend.WindowStart
		for u, n := range old.Spend.Units {
			sp.Units[u] = n
		}
	}
	for u, n := range cost {
		sp.Units[u] = satAdd(sp.Units[u], n)
	}
	c.Spend = sp
	s.components[component] = &c
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}
