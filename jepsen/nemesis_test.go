package jepsen

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var testPlan = PlanParams{GapMin: time.Second, GapMax: 3 * time.Second, HoldMin: 2 * time.Second, HoldMax: 6 * time.Second,
	AgentHoldMin: 7 * time.Second, CorruptHoldMin: 11 * time.Second, BackgroundGapMin: 4 * time.Second, BackgroundGapMax: 9 * time.Second,
	Tail: 3 * time.Second}

func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	a := PlanFaults(42, AllKinds, 3*time.Minute, 3, testPlan)
	b := PlanFaults(42, AllKinds, 3*time.Minute, 3, testPlan)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two plans of seed 42 differ:\n%v\n%v", a, b)
	}
	c := PlanFaults(43, AllKinds, 3*time.Minute, 3, testPlan)
	if reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same plan")
	}
}

// track returns the faults of one track of a plan.
func track(plan []PlannedFault, background bool) []PlannedFault {
	var out []PlannedFault
	for _, f := range plan {
		if f.Background == background {
			out = append(out, f)
		}
	}
	return out
}

func TestPlanCoversEveryKindAndFitsTheDuration(t *testing.T) {
	d := 3 * time.Minute
	plan := PlanFaults(7, AllKinds, d, 5, testPlan)
	seen := map[string]int{}
	for i, f := range plan {
		if f.Seq != i+1 || (i > 0 && f.At < plan[i-1].At) {
			t.Fatalf("fault %d (#%d) is out of start order or misnumbered", i, f.Seq)
		}
		if f.Background != IsBackground(f.Kind) {
			t.Fatalf("fault %d %s on the wrong track", f.Seq, f.Kind)
		}
	}
	for _, bg := range []bool{false, true} {
		gapMin := testPlan.GapMin
		if bg {
			gapMin = testPlan.BackgroundGapMin
		}
		var prevEnd time.Duration
		for _, f := range track(plan, bg) {
			seen[f.Kind]++
			if f.At < prevEnd+gapMin {
				t.Fatalf("fault %d starts at %s, before the previous one of its track ended (%s) plus the gap", f.Seq, f.At, prevEnd)
			}
			if f.At+f.Hold+Overhead(f.Kind) > d-testPlan.Tail {
				t.Fatalf("fault %d ends at %s, past the duration minus the tail", f.Seq, f.At+f.Hold+Overhead(f.Kind))
			}
			if isAgentKind(f.Kind) && f.Hold < testPlan.AgentHoldMin {
				t.Fatalf("agent fault %d holds %s, less than the lease TTL plus margin", f.Seq, f.Hold)
			}
			if f.Kind == KindCorrupt && f.Hold < testPlan.CorruptHoldMin {
				t.Fatalf("corrupt fault %d holds %s, less than two check intervals", f.Seq, f.Hold)
			}
			if f.Kind == KindClockSkew && (f.Skew.Abs() < 20*time.Second || f.Skew.Abs() > 2*time.Minute) {
				t.Fatalf("clock-skew fault %d skews %s", f.Seq, f.Skew)
			}
			if len(f.Perm) != 5 {
				t.Fatalf("fault %d has a permutation of %d servers", f.Seq, len(f.Perm))
			}
			prevEnd = f.At + f.Hold + Overhead(f.Kind)
		}
	}
	for _, k := range AllKinds {
		if seen[k] == 0 {
			t.Fatalf("no %s fault planned: %v", k, seen)
		}
	}
}

func TestPlanSkewsBothWaysAndKeepsMembershipAwayFromCorrupt(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		plan := PlanFaults(seed, AllKinds, 150*time.Second, 3, testPlan)
		var skews []PlannedFault
		for _, m := range plan {
			if m.Kind == KindClockSkew {
				skews = append(skews, m)
			}
			if m.Kind != KindMembership {
				continue
			}
			for _, c := range plan {
				if c.Kind == KindCorrupt && m.At < c.At+c.Hold+Overhead(c.Kind) && m.At+m.Hold+Overhead(m.Kind) > c.At {
					t.Fatalf("seed %d: membership #%d (%s+%s) overlaps corrupt #%d (%s+%s)", seed, m.Seq, m.At, m.Hold, c.Seq, c.At, c.Hold)
				}
			}
		}
		if len(skews) < 2 {
			t.Fatalf("seed %d: %d clock skews in 150s, want two or more", seed, len(skews))
		}
		for i, f := range skews {
			if f.Leader != (i%2 == 0) {
				t.Fatalf("seed %d: clock skew %d (#%d) leader=%v: want every other one on the leader, the first too", seed, i, f.Seq, f.Leader)
			}
			if i > 0 && (f.Skew < 0) == (skews[i-1].Skew < 0) {
				t.Fatalf("seed %d: clock skews %s then %s: want back and forward in turn", seed, skews[i-1].Skew, f.Skew)
			}
		}
	}
}

func TestBackgroundKindsLeaveTheForegroundPlanAlone(t *testing.T) {
	var fg []string
	for _, k := range AllKinds {
		if !IsBackground(k) {
			fg = append(fg, k)
		}
	}
	alone := PlanFaults(5, fg, 150*time.Second, 3, testPlan)
	with := track(PlanFaults(5, AllKinds, 150*time.Second, 3, testPlan), false)
	if len(alone) != len(with) {
		t.Fatalf("%d foreground faults alone, %d with the background kinds", len(alone), len(with))
	}
	for i := range alone {
		a, b := alone[i], with[i]
		a.Seq, b.Seq = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("foreground fault %d differs with the background kinds:\n%+v\n%+v", i, a, b)
		}
	}
}

func TestPastBusy(t *testing.T) {
	busy := [][2]time.Duration{{10 * time.Second, 20 * time.Second}, {25 * time.Second, 30 * time.Second}}
	for _, c := range []struct{ at, length, want time.Duration }{
		{0, 5 * time.Second, 0},                                // ends before the first window and its gap
		{5 * time.Second, 5 * time.Second, 32 * time.Second},   // after the first, but then too close to the second
		{15 * time.Second, time.Second, 22 * time.Second},      // inside the first; after it, it ends as the second's gap begins
		{40 * time.Second, 10 * time.Second, 40 * time.Second}, // after both
		{21 * time.Second, 2 * time.Second, 32 * time.Second},  // between them, too close to both
	} {
		got := pastBusy(c.at, c.length, 2*time.Second, busy)
		if got != c.want {
			t.Fatalf("pastBusy(%s, %s) = %s, want %s", c.at, c.length, got, c.want)
		}
	}
}

func TestExpandKinds(t *testing.T) {
	got, err := ExpandKinds([]string{"pause", "partition", "kill"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{KindKill, KindPause, KindPartMajority, KindPartLeader, KindPartBridge, KindPartAgent}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := ExpandKinds([]string{"meteor"}); err == nil || !strings.Contains(err.Error(), "unknown fault") {
		t.Fatalf("unknown kind accepted: %v", err)
	}
	if got, _ := ExpandKinds([]string{"all", "kill"}); !reflect.DeepEqual(got, AllKinds) {
		t.Fatalf("all gave %v", got)
	}
	if got, _ := ExpandKinds([]string{""}); len(got) != 0 {
		t.Fatalf("empty list gave %v", got)
	}
}

func TestPairAndGaps(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-0", 0, 100, 0, 1, TOK, 1)
	h.write(0, "reg-0", 200, 300, 1, 2, TOK, 2)
	h.write(0, "reg-0", 400, 5000, 2, 3, TInfo, 0)
	h.write(0, "reg-0", 5100, 5200, 2, 3, TOK, 3)
	h.entries = append(h.entries, Entry{Type: TInvoke, Process: 1, ID: 99, F: FRead, Key: "reg-0", Mono: 6000e6})
	faults := []FaultSpan{{ID: 1, Kind: KindKillLeader, Target: []string{"s1"}, Start: 350e6, End: 4000e6}}
	ops := h.sorted()
	if len(ops) != 5 || ops[4].Complete.Type != TInfo {
		t.Fatalf("pairing: %d ops, last %+v; an invoke without completion must be indeterminate", len(ops), ops[len(ops)-1])
	}
	gaps := WriteGaps(ops, faults, 2*time.Second)
	if len(gaps) != 1 || gaps[0].Start != 300e6 || gaps[0].End != 5200e6 || len(gaps[0].Faults) != 1 {
		t.Fatalf("gaps %+v", gaps)
	}
}

func TestSummaryNamesFaultsAndCheckers(t *testing.T) {
	cfg := DefaultConfig()
	h := &hist{}
	h.write(0, "reg-0", 0, 100, 0, 1, TOK, 1)
	h.entries = append(h.entries,
		Entry{Type: TFault, Process: NemesisProcess, F: KindPause, Target: []string{"s2"}, FaultID: 1, Mono: 1e9},
		Entry{Type: THeal, Process: NemesisProcess, F: KindPause, Target: []string{"s2"}, FaultID: 1, Mono: 3e9})
	rep := &Report{Config: cfg, Out: "/tmp/x", Started: time.Unix(0, 0), Finished: time.Unix(200, 0),
		Injected: map[string]int{KindPause: 1}, Skipped: map[string]int{}, Entries: h.entries, OpCounts: opCounts(h.sorted()),
		Verdicts: []*Verdict{(&Verdict{Checker: "linearizability"}).finish("fine"), {Checker: "lifecycle", Result: Fail, Summary: "overlap", Violations: []string{"two epochs"}, Count: 1}},
		Failed:   true}
	s := Summary(rep)
	for _, want := range []string{"# ICE fault test: FAIL", "| pause | foreground | 1 | 0 |", "| lifecycle | **FAIL** | overlap |", "VIOLATION: two epochs", "--seed 1"} {
		if !strings.Contains(s, want) {
			t.Fatalf("summary lacks %q:\n%s", want, s)
		}
	}
	html := Timeline(rep)
	if !strings.Contains(html, "<svg") || !strings.Contains(html, "pause") {
		t.Fatalf("timeline lacks the chart")
	}
}

func TestOverlappingPlan(t *testing.T) {
	p := testPlan
	p.Overlap = true
	plan := track(PlanFaults(9, AllKinds, 2*time.Minute, 3, p), false)
	overlaps := 0
	for i := 1; i < len(plan); i++ {
		if plan[i].At-plan[i-1].At < p.GapMin || plan[i].At-plan[i-1].At > p.GapMax {
			t.Fatalf("fault %d starts %s after the previous one, want a gap in [%s, %s]", plan[i].Seq, plan[i].At-plan[i-1].At, p.GapMin, p.GapMax)
		}
		if plan[i].At < plan[i-1].At+plan[i-1].Hold {
			overlaps++
		}
	}
	if overlaps == 0 {
		t.Fatalf("no two faults overlap in %d", len(plan))
	}
}
