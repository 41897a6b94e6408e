package jepsen

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var testPlan = PlanParams{GapMin: time.Second, GapMax: 3 * time.Second, HoldMin: 2 * time.Second, HoldMax: 6 * time.Second,
	AgentHoldMin: 7 * time.Second, Tail: 3 * time.Second}

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

func TestPlanCoversEveryKindAndFitsTheDuration(t *testing.T) {
	d := 3 * time.Minute
	plan := PlanFaults(7, AllKinds, d, 5, testPlan)
	seen := map[string]int{}
	var prevEnd time.Duration
	for _, f := range plan {
		seen[f.Kind]++
		if f.At < prevEnd+testPlan.GapMin {
			t.Fatalf("fault %d starts at %s, before the previous one ended (%s) plus the gap", f.Seq, f.At, prevEnd)
		}
		if f.At+f.Hold > d-testPlan.Tail {
			t.Fatalf("fault %d ends at %s, past the duration minus the tail", f.Seq, f.At+f.Hold)
		}
		if (f.Kind == KindKillAgent || f.Kind == KindPartAgent || f.Kind == KindPauseAgent) && f.Hold < testPlan.AgentHoldMin {
			t.Fatalf("agent fault %d holds %s, less than the lease TTL plus margin", f.Seq, f.Hold)
		}
		if len(f.Perm) != 5 {
			t.Fatalf("fault %d has a permutation of %d servers", f.Seq, len(f.Perm))
		}
		prevEnd = f.At + f.Hold
	}
	// Kinds come in rounds: the first len(AllKinds) faults are one of each.
	if len(plan) < len(AllKinds) {
		t.Fatalf("only %d faults in %s", len(plan), d)
	}
	for _, k := range AllKinds {
		if seen[k] == 0 {
			t.Fatalf("no %s fault planned: %v", k, seen)
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
	for _, want := range []string{"# ICE fault test: FAIL", "| pause | 1 | 0 |", "| lifecycle | **FAIL** | overlap |", "VIOLATION: two epochs", "--seed 1"} {
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
	plan := PlanFaults(9, AllKinds, 2*time.Minute, 3, p)
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
