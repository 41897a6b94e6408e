package sdk

import (
	"context"

	"github.com/ice-run/ice/plugins"
)

// Cost and meta, for plugin authors. A run reports what it spent (units by
// name: "tokens", "requests") for its component's budget; the SDK sends the
// totals back with Execute's outcome, a failed Execute's too, and the agent
// reports them with the run's VALIDATING or ABORTED transition:
//
//	func (p *summarizer) Execute(ctx context.Context, input string) (string, error) {
//		doc := sdk.RunMeta(ctx)["doc"]
//		out, used, err := p.llm.Summarize(ctx, doc, input)
//		sdk.AddCost("tokens", used)
//		return out, err
//	}

// meter is the current run's cost: one plugin process serves one run at a
// time (guard.Start resets it for the next run of a reusable plugin).
var meter = plugins.NewCostMeter()

// AddCost adds n of unit to this run's cost (saturating at the largest
// uint64). A unit is 1 to 128 letters, digits, '-', '_' or '.', starting
// with a letter or digit; a run reports at most plugins.MaxCostUnits
// units. A unit refused for either reason is logged and not counted.
func AddCost(unit string, n uint64) {
	if err := meter.Add(unit, n); err != nil {
		logger.Warn("cost not counted", "unit", unit, "amount", n, "error", err)
	}
}

// Cost returns this run's cost so far, units by name.
func Cost() map[string]uint64 { return meter.Totals() }

// RunMeta returns a dispatched run's meta (given with the dispatch, and
// what memory keys name as ${input.NAME}) from the context Execute was
// called with; nil for a run that was not dispatched, or under an
// agent that predates meta.
func RunMeta(ctx context.Context) map[string]string { return plugins.RunMeta(ctx) }
