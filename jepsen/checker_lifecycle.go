package jepsen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ice-run/ice/fsm"
)

// Tick is one line a ticker plugin wrote: "epoch run_id unix_nanos".
type Tick struct {
	Epoch uint64
	Run   string
	Time  int64
}

// ParseTicks reads a ticker file; it returns the ticks and the lines it
// could not parse.
func ParseTicks(r io.Reader) (ticks []Tick, malformed []string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			malformed = append(malformed, sc.Text())
			continue
		}
		epoch, err1 := strconv.ParseUint(f[0], 10, 64)
		ts, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			malformed = append(malformed, sc.Text())
			continue
		}
		ticks = append(ticks, Tick{Epoch: epoch, Run: f[1], Time: ts})
	}
	return ticks, malformed
}

// LifecycleInput is what the lifecycle checker judges.
type LifecycleInput struct {
	// Events is the whole event log, in order.
	Events []fsm.Event
	// Runs and Components are the final state (GET /v1/runs, /v1/components);
	// RunsIndex is the applied index the run list reflects (0: the end of
	// Events).
	Runs       []fsm.Run
	RunsIndex  uint64
	Components map[string]fsm.Component
	// Ticks holds each ticker component's ticks, Malformed its bad lines.
	Ticks     map[string][]Tick
	Malformed map[string][]string
	// Tickers are the ticker components (count 1), Registers the count-0
	// components.
	Tickers, Registers []string
	// Settled is empty when the final state was read after every ticker
	// had one EXECUTING run again; otherwise it says what did not settle.
	Settled string
	// ClockSlack is how far the leaders' clocks were set off (clock-skew):
	// ticks, on the agents' clocks, are compared with the leader times of
	// placement and termination that much more loosely.
	ClockSlack time.Duration
}

// runTrack is a run as its events describe it.
type runTrack struct {
	id, component string
	slot          int
	state         fsm.RunState
	stateAtList   fsm.RunState // the state at RunsIndex
	node          string
	epoch         uint64
	placedTime    int64 // leader time of the PROVISIONED entry
	terminated    int64 // leader time of the TERMINATED entry, 0 if none
	events        int
}

// span is the first and last tick of one run.
type span struct {
	run         string
	epoch       uint64
	first, last int64
	n           int
}

// CheckLifecycle checks the runs of the event log against the lifecycle
// and authority table, the final run states, and the ticker files:
//   - every run starts with run.created and each run.transition follows a
//     row of fsm.Lifecycle from the state the run was in, proposed by the
//     actor the row names (the agent holding the run at its epoch, or the
//     runtime, which may tear down only runs whose node is gone), with a
//     reason where the row needs one, and placement setting the epoch;
//   - at no index do two runs of one (component, slot) exist that are not
//     TERMINATED;
//   - the final run list agrees with the events, every run ends TERMINATED
//     or as the one EXECUTING run of its slot, and count-0 components have
//     no runs;
//   - every tick belongs to a run of that component with that epoch, falls
//     after the run was placed and before it was TERMINATED (give or take
//     ClockSlack), and no two runs of one slot ticked at overlapping times.
func CheckLifecycle(in LifecycleInput) *Verdict {
	v := &Verdict{Checker: "lifecycle"}
	runs := map[string]*runTrack{}
	nodeStatus := map[string]fsm.NodeStatus{}
	live := map[slotKey]string{}
	var transitions int
	for _, e := range in.Events {
		lifecycleEvent(v, e, runs, nodeStatus, live, &transitions)
		if r, ok := runs[e.Subject]; ok && (in.RunsIndex == 0 || e.Index <= in.RunsIndex) {
			r.stateAtList = r.state
		}
	}
	v.stat("runs", len(runs))
	v.stat("run_transitions", transitions)
	checkFinalRuns(v, in, runs)
	totalTicks, gaps := checkTicks(v, in, runs)
	v.stat("ticks", totalTicks)
	v.stat("handovers", len(gaps))
	if len(gaps) > 0 {
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		v.stat("handover_gap_min_ms", gaps[0].Milliseconds())
		v.stat("handover_gap_max_ms", gaps[len(gaps)-1].Milliseconds())
	}
	if in.ClockSlack > 0 {
		v.stat("clock_slack_seconds", in.ClockSlack.Seconds())
		v.note("ticks were compared with the leader's times of placement and termination with a slack of %s: leaders ran with their clocks off by up to that much (clock-skew)", in.ClockSlack)
	}
	return v.finish(fmt.Sprintf("%d runs, %d transitions all by the table; %d ticks, %d handovers between epochs, none overlapping",
		len(runs), transitions, totalTicks, len(gaps)))
}

// checkFinalRuns checks the final run list against the events and the
// components.
func checkFinalRuns(v *Verdict, in LifecycleInput, runs map[string]*runTrack) {
	registers := map[string]bool{}
	for _, r := range in.Registers {
		registers[r] = true
	}
	finalStates := map[string]int{}
	seen := map[string]bool{}
	liveBySlot := map[slotKey][]fsm.Run{}
	for _, fr := range in.Runs {
		seen[fr.ID] = true
		finalStates[string(fr.State)]++
		r, ok := runs[fr.ID]
		if !ok {
			v.violate("final run %s of %s (%s) has no run.created event", fr.ID, fr.Component, fr.State)
			continue
		}
		if r.stateAtList != fr.State {
			v.violate("final run %s of %s is %s, its events say %s at the run list's index %d", fr.ID, fr.Component, fr.State, r.stateAtList, in.RunsIndex)
		}
		if registers[fr.Component] {
			v.violate("run %s belongs to count-0 component %s", fr.ID, fr.Component)
		}
		if !fr.State.Valid() {
			v.violate("run %s ends in %q, not a state of the lifecycle", fr.ID, fr.State)
		}
		if fr.State != fsm.StateTerminated {
			liveBySlot[slotKey{fr.Component, fr.Slot}] = append(liveBySlot[slotKey{fr.Component, fr.Slot}], fr)
		}
	}
	for id, r := range runs {
		if !seen[id] && len(in.Runs) > 0 && r.state != fsm.StateTerminated {
			v.violate("run %s of %s (%s in its events) is missing from the final run list", id, r.component, r.state)
		}
	}
	v.stat("final_states", finalStates)
	for k, rs := range liveBySlot {
		if len(rs) > 1 {
			v.violate("%s slot %d ends with %d runs that are not TERMINATED: %s and %s", k.component, k.slot, len(rs), rs[0].ID, rs[1].ID)
		}
		if in.Settled != "" {
			continue
		}
		for _, r := range rs {
			c, ok := in.Components[r.Component]
			running := ok && c.Status == fsm.ComponentRunning && r.Slot < c.Count
			if !running || r.State != fsm.StateExecuting {
				v.violate("run %s of %s slot %d ends %s (component %s), want TERMINATED or the slot's one EXECUTING run", r.ID, r.Component, r.Slot, r.State, c.Status)
			}
		}
	}
	if in.Settled != "" {
		v.violate("after every fault was healed, the tickers did not return to one EXECUTING run each: %s", in.Settled)
	}
}

// checkTicks checks every ticker's ticks against the runs; it returns how
// many there were and the gaps between the epochs of a slot.
func checkTicks(v *Verdict, in LifecycleInput, runs map[string]*runTrack) (int, []time.Duration) {
	slack := int64(in.ClockSlack)
	var totalTicks int
	var gaps []time.Duration
	for _, comp := range in.Tickers {
		for _, line := range in.Malformed[comp] {
			v.violate("%s: malformed tick line %q", comp, line)
		}
		spans := map[string]*span{}
		for _, t := range in.Ticks[comp] {
			totalTicks++
			r, ok := runs[t.Run]
			if !ok || r.component != comp {
				v.violate("%s: tick at %s by run %s (epoch %d), which is no run of %s: execution without authority", comp, fmtNanos(t.Time), t.Run, t.Epoch, comp)
				continue
			}
			if t.Epoch != r.epoch {
				v.violate("%s: run %s ticked with epoch %d, it was placed at epoch %d", comp, t.Run, t.Epoch, r.epoch)
			}
			if r.placedTime == 0 || t.Time < r.placedTime-slack {
				v.violate("%s: run %s ticked at %s, before it was placed (%s)", comp, t.Run, fmtNanos(t.Time), fmtNanos(r.placedTime))
			}
			if r.terminated != 0 && t.Time > r.terminated+slack {
				v.violate("%s: run %s ticked at %s, %s after its TERMINATED entry (%s)", comp, t.Run, fmtNanos(t.Time),
					time.Duration(t.Time-r.terminated), fmtNanos(r.terminated))
			}
			s, ok := spans[t.Run]
			if !ok {
				s = &span{run: t.Run, epoch: t.Epoch, first: t.Time, last: t.Time}
				spans[t.Run] = s
			}
			s.first, s.last, s.n = min(s.first, t.Time), max(s.last, t.Time), s.n+1
		}
		gaps = append(gaps, checkEpochOverlap(v, comp, spans, runs)...)
	}
	return totalTicks, gaps
}

// checkEpochOverlap checks that no two runs of one slot ticked at
// overlapping times (the agents' clocks only); it returns the gaps.
func checkEpochOverlap(v *Verdict, comp string, spans map[string]*span, runs map[string]*runTrack) []time.Duration {
	var gaps []time.Duration
	bySlot := map[int][]*span{}
	for id, s := range spans {
		bySlot[runs[id].slot] = append(bySlot[runs[id].slot], s)
	}
	for slot, ss := range bySlot {
		sort.Slice(ss, func(i, j int) bool { return ss[i].first < ss[j].first })
		for i := 1; i < len(ss); i++ {
			a, b := ss[i-1], ss[i]
			if b.first <= a.last {
				v.violate("%s slot %d: run %s (epoch %d) ticked until %s and run %s (epoch %d) from %s: two epochs executed at once for %s",
					comp, slot, a.run, a.epoch, fmtNanos(a.last), b.run, b.epoch, fmtNanos(b.first), time.Duration(a.last-b.first))
			} else {
				gaps = append(gaps, time.Duration(b.first-a.last))
			}
		}
	}
	return gaps
}

func fmtNanos(ns int64) string {
	if ns == 0 {
		return "never"
	}
	return time.Unix(0, ns).UTC().Format("15:04:05.000000")
}

// slotKey names a slot of a component.
type slotKey struct {
	component string
	slot      int
}

// lifecycleEvent applies one event to the runs it tracks, judging it
// against the lifecycle table.
func lifecycleEvent(v *Verdict, e fsm.Event, runs map[string]*runTrack, nodeStatus map[string]fsm.NodeStatus, live map[slotKey]string, transitions *int) {
	switch e.Type {
	case "node.registered":
		var p struct {
			Status fsm.NodeStatus `json:"status"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		if p.Status == "" {
			p.Status = fsm.NodeReady
		}
		nodeStatus[e.Subject] = p.Status
	case "node.status":
		var p struct {
			To fsm.NodeStatus `json:"to"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		nodeStatus[e.Subject] = p.To
	case "run.created":
		var p fsm.NewRun
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			v.violate("event %d: run.created of %s has a bad payload: %v", e.Seq, e.Subject, err)
			return
		}
		if _, dup := runs[e.Subject]; dup {
			v.violate("event %d: run %s created twice", e.Seq, e.Subject)
			return
		}
		if e.Actor != fsm.RuntimeActor {
			v.violate("event %d: run %s created by %q, only the runtime may create runs", e.Seq, e.Subject, e.Actor)
		}
		k := slotKey{p.Component, p.Slot}
		if other, ok := live[k]; ok {
			v.violate("event %d (index %d): run %s created for %s slot %d while run %s of that slot is not TERMINATED",
				e.Seq, e.Index, e.Subject, p.Component, p.Slot, other)
		}
		live[k] = e.Subject
		runs[e.Subject] = &runTrack{id: e.Subject, component: p.Component, slot: p.Slot, state: fsm.StateCreated, events: 1}
	case "run.transition":
		*transitions++
		var p fsm.TransitionPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			v.violate("event %d: run.transition of %s has a bad payload: %v", e.Seq, e.Subject, err)
			return
		}
		r, ok := runs[e.Subject]
		if !ok {
			v.violate("event %d: transition %s → %s of run %s, which was never created", e.Seq, p.From, p.To, e.Subject)
			return
		}
		r.events++
		where := fmt.Sprintf("event %d (index %d): run %s of %s", e.Seq, e.Index, r.id, r.component)
		if p.From != r.state {
			v.violate("%s: transition claims to leave %s but the run is %s", where, p.From, r.state)
		}
		rule, ok := fsm.LookupRule(r.state, p.To)
		if !ok {
			v.violate("%s: %s → %s is not in the lifecycle table", where, r.state, p.To)
			r.state = p.To
			return
		}
		actor, err := fsm.ParseActor(e.Actor)
		switch {
		case err != nil:
			v.violate("%s: unparsable actor %q", where, e.Actor)
		case actor.Kind == fsm.KindAgent:
			if rule.By&fsm.ByAgent == 0 {
				v.violate("%s: %s → %s proposed by %s, the table gives it to the runtime only", where, r.state, p.To, e.Actor)
			} else if actor.Name != r.node || p.Epoch != r.epoch {
				v.violate("%s: %s → %s proposed by %s at epoch %d, the run is held by %q at epoch %d (fencing)", where, r.state, p.To, e.Actor, p.Epoch, r.node, r.epoch)
			}
		case actor.Kind == fsm.KindRuntime:
			gone := r.node == "" || nodeStatus[r.node] == fsm.NodeDown || nodeStatus[r.node] == fsm.NodeLeft || nodeStatus[r.node] == ""
			if rule.By&fsm.ByRuntime == 0 && !(rule.By&fsm.ByRuntimeNodeGone != 0 && gone) {
				v.violate("%s: %s → %s proposed by the runtime while node %q is %s: only its agent may", where, r.state, p.To, r.node, nodeStatus[r.node])
			}
		default:
			v.violate("%s: %s → %s proposed by %s, who may propose no transition", where, r.state, p.To, e.Actor)
		}
		if rule.NeedsReason && p.Reason == "" {
			v.violate("%s: %s → %s without the reason the table requires", where, r.state, p.To)
		}
		if rule.Places {
			if p.Node == "" || p.Epoch != e.Index {
				v.violate("%s: placement on %q with epoch %d, want a node and epoch = the entry's index %d", where, p.Node, p.Epoch, e.Index)
			}
			r.node, r.epoch, r.placedTime = p.Node, p.Epoch, e.Time
		}
		r.state = p.To
		if p.To == fsm.StateTerminated {
			r.terminated = e.Time
			k := slotKey{r.component, r.slot}
			if live[k] == r.id {
				delete(live, k)
			}
		}
	}
}
