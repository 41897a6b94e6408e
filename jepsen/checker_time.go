package jepsen

import (
	"fmt"
	"sort"
	"time"

	"github.com/ice-run/ice/fsm"
)

// TimeInput is what the committed-time checker judges.
type TimeInput struct {
	// Events is the event log read through the leader, ServerEvents each
	// server's own copy.
	Events       []fsm.Event
	ServerEvents map[string][]fsm.Event
	// ReadAt is the harness's wall clock (unix nanoseconds) when the logs
	// were read: an event stamped after it was stamped by a clock ahead.
	ReadAt int64
}

// CheckCommittedTime checks that the time the leader stamps on commands,
// which every event carries, never goes backwards in log order (index,
// then sequence), in the leader's log and in every server's copy, whatever
// the leaders' clocks said (clock-skew restarts servers, the leader among
// them, with their wall clocks off). How far stamps ran ahead of the
// harness's clock is reported, not judged.
func CheckCommittedTime(in TimeInput) *Verdict {
	v := &Verdict{Checker: "committed-time"}
	logs := map[string][]fsm.Event{"leader": in.Events}
	for id, evs := range in.ServerEvents {
		logs[id] = evs
	}
	names := make([]string, 0, len(logs))
	for n := range logs {
		names = append(names, n)
	}
	sort.Strings(names)
	var ahead int
	var lead time.Duration
	for _, name := range names {
		evs := logs[name]
		for i := 1; i < len(evs); i++ {
			prev, e := evs[i-1], evs[i]
			if e.Index < prev.Index || (e.Index == prev.Index && e.Seq < prev.Seq) {
				v.violate("%s's log: event seq %d (index %d) follows seq %d (index %d): not in log order", name, e.Seq, e.Index, prev.Seq, prev.Index)
				continue
			}
			if e.Time < prev.Time {
				v.violate("%s's log: committed time goes back %s at index %d (%s, seq %d) after index %d (%s, seq %d)", name,
					time.Duration(prev.Time-e.Time), e.Index, stamp(e.Time), e.Seq, prev.Index, stamp(prev.Time), prev.Seq)
			}
		}
		if name != "leader" || in.ReadAt == 0 {
			continue
		}
		for _, e := range evs {
			if e.Time > in.ReadAt {
				ahead++
				lead = max(lead, time.Duration(e.Time-in.ReadAt))
			}
		}
	}
	v.stat("events", len(in.Events))
	v.stat("logs_checked", len(names))
	v.stat("events_stamped_ahead_of_the_harness_clock", ahead)
	v.stat("furthest_ahead_seconds", lead.Seconds())
	if ahead > 0 {
		v.note("%d events carry a time after the harness read the log (up to %s ahead): stamped by a leader whose clock ran ahead, and by those after it, which never stamp earlier", ahead, lead.Round(time.Millisecond))
	}
	span := ""
	if n := len(in.Events); n > 1 {
		span = fmt.Sprintf(", from %s to %s", stamp(in.Events[0].Time), stamp(in.Events[n-1].Time))
	}
	return v.finish(fmt.Sprintf("committed time never goes back in %d logs (%d events%s)", len(names), len(in.Events), span))
}

func stamp(unixNanos int64) string {
	return time.Unix(0, unixNanos).UTC().Format("15:04:05.000000")
}
