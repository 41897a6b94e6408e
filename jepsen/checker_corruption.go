package jepsen

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ice-run/ice/fsm"
)

// CorruptionInput is what the corruption checker judges.
type CorruptionInput struct {
	// Entries is the history: the corrupt faults, their heals and the
	// nemesis's observations (ObsHalted, ObsAlarmed, ObsOutOfService),
	// and the client operations with the server each was sent to.
	Entries []Entry
	// CheckInterval is the servers' corruption check interval.
	CheckInterval time.Duration
	// Events is the final event log (alarm.raise and alarm.clear).
	Events []fsm.Event
}

// corruptSpan is one corrupt fault as the checker sees it.
type corruptSpan struct {
	FaultSpan
	server                     string
	halted, alarmed, outOfServ int64 // monotonic; 0: not seen
}

func corruptSpans(entries []Entry) []corruptSpan {
	byID := map[int]*corruptSpan{}
	var out []*corruptSpan
	for _, f := range Faults(entries) {
		if f.Kind != KindCorrupt || len(f.Target) == 0 {
			continue
		}
		cs := &corruptSpan{FaultSpan: f, server: f.Target[0]}
		byID[f.ID] = cs
		out = append(out, cs)
	}
	for _, e := range entries {
		cs := byID[e.FaultID]
		if e.Type != TObserve || cs == nil {
			continue
		}
		switch e.F {
		case ObsHalted:
			cs.halted = firstMono(cs.halted, e.Mono)
		case ObsAlarmed:
			cs.alarmed = firstMono(cs.alarmed, e.Mono)
		case ObsOutOfService:
			cs.outOfServ = firstMono(cs.outOfServ, e.Mono)
		}
	}
	res := make([]corruptSpan, 0, len(out))
	for _, cs := range out {
		res = append(res, *cs)
	}
	return res
}

func firstMono(old, t int64) int64 {
	if old == 0 || t < old {
		return t
	}
	return old
}

func secs(mono int64) float64 { return float64(mono) / 1e9 }

// CheckCorruption checks every corrupt fault: the damaged server is
// alarmed (its own status says it halted, or a healthy server's status
// names it in the cluster's alarms) within two check intervals of its
// restart (not counting time a partition cut it off, with --overlap), and from then until the heal took it out of service it served
// no client operation (what it answered, it answered with 503). Over the
// whole event log: no alarm names a server no fault damaged, and no alarm
// is still raised at the end (remove-peer clears it).
func CheckCorruption(in CorruptionInput) *Verdict {
	v := &Verdict{Checker: "corruption"}
	deadline := 2 * in.CheckInterval
	ops := Pair(in.Entries)
	spans := corruptSpans(in.Entries)
	var end int64
	for _, e := range in.Entries {
		end = max(end, e.Mono)
	}
	refused, answeredOther, cluster := 0, 0, 0
	var delays []time.Duration
	for _, cs := range spans {
		at := cs.halted
		if cs.alarmed != 0 {
			cluster++
			at = firstMono(at, cs.alarmed)
		}
		healEnd := cs.End
		if healEnd == 0 {
			healEnd = end
		}
		if at == 0 {
			v.violate("%s (fault #%d), restarted with a damaged entry at t=%.3fs, was never seen halted or alarmed before the heal at t=%.3fs",
				cs.server, cs.ID, secs(cs.Start), secs(healEnd))
			continue
		}
		delay := time.Duration(at - cs.Start)
		delays = append(delays, delay)
		cut := cutOff(in.Entries, cs.server, cs.Start, at)
		if delay > deadline+cut {
			extra := ""
			if cut > 0 {
				extra = fmt.Sprintf(" plus the %.1fs it was partitioned", cut.Seconds())
			}
			v.violate("%s (fault #%d) was first seen alarmed %.3fs after its restart at t=%.3fs, later than two check intervals (%s)%s",
				cs.server, cs.ID, delay.Seconds(), secs(cs.Start), deadline, extra)
		}
		if cs.alarmed == 0 {
			v.note("%s (fault #%d): halted after %.3fs; no healthy server's status named it in the cluster's alarms before the heal", cs.server, cs.ID, delay.Seconds())
		}
		until := cs.outOfServ
		if until == 0 {
			until = healEnd
		}
		for _, op := range ops {
			inv, c := op.Invoke, op.Complete
			if inv.Server != cs.server || inv.Process == NemesisProcess || inv.Mono < at || inv.Mono >= until {
				continue
			}
			switch {
			case c.Type == TOK:
				v.violate("%s of %s served by %s at t=%.3fs (HTTP %d), after it was alarmed at t=%.3fs (fault #%d)",
					inv.F, inv.Key, cs.server, secs(c.Mono), c.Status, secs(at), cs.ID)
			case c.Status == http.StatusServiceUnavailable:
				refused++
			case c.Status != 0:
				answeredOther++
				v.note("%s of %s to alarmed %s at t=%.3fs answered HTTP %d, not 503: %s", inv.F, inv.Key, cs.server, secs(inv.Mono), c.Status, truncate(c.Error, 160))
			}
		}
	}
	checkAlarmEvents(v, in.Events, spans)
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	v.stat("corrupt_faults", len(spans))
	v.stat("alarmed_by_cluster", cluster)
	v.stat("refused_with_503_after_alarm", refused)
	v.stat("answered_otherwise_after_alarm", answeredOther)
	var slowest time.Duration
	if len(delays) > 0 {
		slowest = delays[len(delays)-1]
		v.stat("slowest_alarm_seconds", slowest.Seconds())
	}
	if len(spans) == 0 {
		return v.finish("no corrupt fault injected; no alarm raised against a server in the event log")
	}
	return v.finish(fmt.Sprintf("%d damaged server(s) all alarmed within two check intervals (%s; slowest %.1fs, %d also in the cluster's alarms) and served nothing afterwards (%d requests refused with 503)",
		len(spans), deadline, slowest.Seconds(), cluster, refused))
}

// cutOff is how long, between from and to (monotonic), partitions of the
// servers that name server were in force: time in which it could not
// learn what to apply, nor be compared, which the alarm deadline does not
// count.
func cutOff(entries []Entry, server string, from, to int64) time.Duration {
	var cut int64
	for _, f := range Faults(entries) {
		if !isPartition(f.Kind) || f.Kind == KindPartAgent || !slices.Contains(f.Target, server) {
			continue
		}
		end := f.End
		if end == 0 {
			end = to
		}
		if lo, hi := max(f.Start, from), min(end, to); hi > lo {
			cut += hi - lo
		}
	}
	return time.Duration(cut)
}

// checkAlarmEvents checks the alarm.raise and alarm.clear events: each
// raise names a server some corrupt fault damaged, and every alarm is
// cleared by the end.
func checkAlarmEvents(v *Verdict, events []fsm.Event, spans []corruptSpan) {
	damaged := map[string]bool{}
	for _, cs := range spans {
		damaged[cs.server] = true
	}
	open := map[string]fsm.Event{}
	raises := 0
	for _, e := range events {
		switch e.Type {
		case "alarm.raise":
			raises++
			if !damaged[e.Subject] {
				v.violate("alarm raised at index %d against %s, which no fault damaged: %s", e.Index, e.Subject, truncate(string(e.Payload), 200))
			}
			open[e.Subject] = e
		case "alarm.clear":
			delete(open, e.Subject)
		}
	}
	var still []string
	for s, e := range open {
		still = append(still, fmt.Sprintf("%s (raised at index %d)", s, e.Index))
	}
	sort.Strings(still)
	if len(still) > 0 {
		v.violate("alarms still raised at the end, after the heals removed and replaced the servers: %s", strings.Join(still, ", "))
	}
	v.stat("alarm_raise_events", raises)
}
