package jepsen

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Tests of the checkers of the corrupt, clock-skew, membership and
// disk-full faults. Times are in milliseconds of the test's clock.

func nem(typ, f string, target string, mono int64, id int, detail string) Entry {
	return Entry{Type: typ, Process: NemesisProcess, F: f, Target: []string{target}, Mono: mono * 1e6, FaultID: id, Detail: detail}
}

// at records a client operation sent to server.
func (h *hist) at(server string, process int, f, key string, call, ret int64, typ string, status int) {
	h.op(process, f, key, call, ret, Entry{}, Entry{Type: typ, Status: status})
	h.entries[len(h.entries)-2].Server = server
	h.entries[len(h.entries)-1].Server = server
}

// corruptHistory: s2 is restarted with a damaged entry at 1000 ms, halts
// (its status) at 1300, is named in the alarms at 2500, taken out of
// service at 9000, healed (removed, wiped, rejoined) at 11000. Clients
// asked it before the halt (served), while halted (503) and after the
// heal (served by the fresh replacement).
func corruptHistory() *hist {
	h := &hist{}
	h.at("s2", 0, FRead, "reg-0", 900, 950, TOK, http.StatusOK)
	h.entries = append(h.entries,
		nem(TFault, KindCorrupt, "s2", 1000, 3, "flipped byte 9 of entry 40"),
		nem(TObserve, ObsHalted, "s2", 1300, 3, "its status: corrupt at index 40"),
	)
	h.at("s2", 1, FRead, "reg-0", 1400, 1410, TFail, http.StatusServiceUnavailable)
	h.entries = append(h.entries, nem(TObserve, ObsAlarmed, "s2", 2500, 3, "named in the alarms on s1"))
	h.at("s2", 2, FWrite, "reg-1", 3000, 3010, TInfo, http.StatusServiceUnavailable)
	h.at("s1", 3, FRead, "reg-0", 3000, 3010, TOK, http.StatusOK) // another server serves
	h.entries = append(h.entries,
		nem(TObserve, ObsOutOfService, "s2", 9000, 3, "SIGKILL"),
		nem(THeal, KindCorrupt, "s2", 11000, 3, "healed"),
	)
	h.at("s2", 0, FRead, "reg-0", 11500, 11510, TOK, http.StatusOK) // the replacement
	return h
}

func alarmEvents(c *chain, cleared bool) {
	c.add(41, "alarm.raise", "s2", "", "runtime", map[string]any{"type": "corrupt", "server": "s2", "index": 40})
	if cleared {
		c.add(60, "alarm.clear", "s2", "", "runtime", map[string]any{"type": "corrupt", "server": "s2"})
	}
}

func TestCorruptionGoodHistoryPasses(t *testing.T) {
	c := &chain{}
	alarmEvents(c, true)
	v := CheckCorruption(CorruptionInput{Entries: corruptHistory().entries, CheckInterval: 5 * time.Second, Events: c.events})
	wantResult(t, v, Pass, "")
	if v.Stats["refused_with_503_after_alarm"] != 2 || v.Stats["alarmed_by_cluster"] != 1 {
		t.Fatalf("stats %v", v.Stats)
	}
	// The local halt alone is enough (a build without cluster alarms).
	var local []Entry
	for _, e := range corruptHistory().entries {
		if e.F != ObsAlarmed {
			local = append(local, e)
		}
	}
	wantResult(t, CheckCorruption(CorruptionInput{Entries: local, CheckInterval: 5 * time.Second}), Pass, "")
}

func TestCorruptionNoFaultPasses(t *testing.T) {
	h := &hist{}
	h.read(0, "reg-0", 0, 5, 0, 0)
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Pass, "")
}

func TestCorruptionReadServedAfterAlarmFails(t *testing.T) {
	h := corruptHistory()
	h.at("s2", 1, FRead, "reg-0", 4000, 4005, TOK, http.StatusOK)
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Fail, "read of reg-0 served by s2")
}

func TestCorruptionWriteServedAfterAlarmFails(t *testing.T) {
	h := corruptHistory()
	h.at("s2", 1, FWrite, "reg-1", 8000, 8020, TOK, http.StatusOK)
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Fail, "write of reg-1 served by s2")
}

func TestCorruptionLateAlarmFails(t *testing.T) {
	h := &hist{}
	h.entries = append(h.entries,
		nem(TFault, KindCorrupt, "s3", 1000, 1, ""),
		nem(TObserve, ObsAlarmed, "s3", 12000, 1, "named in the alarms on s1"),
		nem(THeal, KindCorrupt, "s3", 13000, 1, "healed"))
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Fail, "later than two check intervals")
}

func TestCorruptionNeverAlarmedFails(t *testing.T) {
	h := &hist{}
	h.entries = append(h.entries, nem(TFault, KindCorrupt, "s3", 1000, 1, ""), nem(THeal, KindCorrupt, "s3", 13000, 1, "healed"))
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Fail, "never seen halted or alarmed")
}

func TestCorruptionFalseAlarmFails(t *testing.T) {
	c := &chain{}
	c.add(41, "alarm.raise", "s1", "", "runtime", map[string]any{"type": "corrupt", "server": "s1"})
	c.add(42, "alarm.clear", "s1", "", "operator:jepsen", map[string]any{"type": "corrupt", "server": "s1"})
	v := CheckCorruption(CorruptionInput{Entries: corruptHistory().entries, CheckInterval: 5 * time.Second, Events: c.events})
	wantResult(t, v, Fail, "against s1, which no fault damaged")
}

func TestCorruptionAlarmLeftRaisedFails(t *testing.T) {
	c := &chain{}
	alarmEvents(c, false)
	v := CheckCorruption(CorruptionInput{Entries: corruptHistory().entries, CheckInterval: 5 * time.Second, Events: c.events})
	wantResult(t, v, Fail, "alarms still raised at the end")
}

func timedChain(times ...int64) []fsm.Event {
	var evs []fsm.Event
	for i, t := range times {
		evs = append(evs, fsm.Event{Seq: uint64(i + 1), Index: uint64(10 + i), Time: t})
	}
	return evs
}

func TestCommittedTimeMonotonicPasses(t *testing.T) {
	base := time.Now().UnixNano()
	// A leader 90s ahead, then one on time that never stamps earlier.
	evs := timedChain(base, base+1, base+int64(90*time.Second), base+int64(90*time.Second)+1, base+int64(90*time.Second)+2)
	v := CheckCommittedTime(TimeInput{Events: evs, ServerEvents: map[string][]fsm.Event{"s1": evs, "s2": evs[:3]}, ReadAt: base + int64(time.Second)})
	wantResult(t, v, Pass, "")
	if v.Stats["events_stamped_ahead_of_the_harness_clock"] != 3 || len(v.Notes) != 1 {
		t.Fatalf("stats %v notes %v: want the three stamps ahead noted", v.Stats, v.Notes)
	}
}

func TestCommittedTimeGoingBackFails(t *testing.T) {
	base := int64(1_700_000_000_000_000_000)
	good := timedChain(base, base+10, base+20)
	bad := timedChain(base, base+int64(93*time.Second), base+30)
	v := CheckCommittedTime(TimeInput{Events: good, ServerEvents: map[string][]fsm.Event{"s3": bad}})
	wantResult(t, v, Fail, "s3's log: committed time goes back 1m32.99999997s at index 12")
	wantResult(t, CheckCommittedTime(TimeInput{Events: bad}), Fail, "leader's log")
}

func TestCommittedTimeOutOfOrderLogFails(t *testing.T) {
	evs := timedChain(1, 2, 3)
	evs[2].Index = 5
	wantResult(t, CheckCommittedTime(TimeInput{Events: evs}), Fail, "not in log order")
}

func voters(ids ...string) []api.ServerInfo {
	var out []api.ServerInfo
	for _, id := range ids {
		out = append(out, api.ServerInfo{ID: id, Voter: true})
	}
	return out
}

func membershipHistory(healDetail string) []Entry {
	return []Entry{
		nem(TFault, KindMembership, "s2", 1000, 4, "remove-peer s2"),
		nem(THeal, KindMembership, "s2", 9000, 4, healDetail),
		nem(TFault, KindKill, "s1", 10000, 5, "SIGKILL"),
		nem(THeal, KindKill, "s1", 12000, 5, "heal failed: start s1: exec format error"),
	}
}

func TestRecoveryGoodPasses(t *testing.T) {
	v := CheckRecovery(RecoveryInput{Entries: membershipHistory("healed"), Servers: []string{"s1", "s2", "s3"}, Peers: voters("s3", "s1", "s2")})
	wantResult(t, v, Pass, "")
	if v.Stats["replacements"] != 1 || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "kill of s1") {
		t.Fatalf("stats %v notes %v: want one replacement and the kill's failed heal noted", v.Stats, v.Notes)
	}
}

func TestRecoveryReplacementThatNeverJoinedFails(t *testing.T) {
	v := CheckRecovery(RecoveryInput{Entries: membershipHistory("heal failed: the replacement of s2: waiting for s2 a voter: timed out"),
		Servers: []string{"s1", "s2", "s3"}, Peers: voters("s1", "s3")})
	wantResult(t, v, Fail, "membership of s2 (fault #4) did not recover")
	wantResult(t, v, Fail, "the final configuration is [s1 s3]")
}

func TestRecoveryWrongConfigurationFails(t *testing.T) {
	in := RecoveryInput{Servers: []string{"s1", "s2", "s3"}, Peers: append(voters("s1", "s2"), api.ServerInfo{ID: "s3"})}
	wantResult(t, CheckRecovery(in), Fail, "s3(nonvoter)")
	in.Peers = voters("s1", "s2", "s3", "s4")
	wantResult(t, CheckRecovery(in), Fail, "want the voters [s1 s2 s3]")
	in.Peers, in.PeersError = nil, "no leader"
	wantResult(t, CheckRecovery(in), Fail, "no leader")
}

func TestRecoveryNotesWhatADiskFullServerAnswered(t *testing.T) {
	h := &hist{}
	h.entries = append(h.entries, nem(TFault, KindDiskFull, "s1", 1000, 2, "filled"))
	h.at("s1", 0, FWrite, "reg-0", 1500, 1510, TInfo, http.StatusInsufficientStorage)
	h.entries[len(h.entries)-1].Error = "data dir is out of space (HTTP 507)"
	h.at("s1", 0, FRead, "reg-0", 1600, 1610, TOK, http.StatusOK)
	h.entries = append(h.entries, nem(THeal, KindDiskFull, "s1", 5000, 2, "healed"))
	v := CheckRecovery(RecoveryInput{Entries: h.entries, Servers: []string{"s1"}, Peers: voters("s1")})
	wantResult(t, v, Pass, "")
	if len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "write info (HTTP 507): 1") || !strings.Contains(v.Notes[0], "out of space") {
		t.Fatalf("notes %v", v.Notes)
	}
	h.entries[len(h.entries)-1].Detail = "heal failed: after space returned: s1 applied 10 of 90"
	wantResult(t, CheckRecovery(RecoveryInput{Entries: h.entries, Servers: []string{"s1"}, Peers: voters("s1")}), Fail, "disk-full of s1 (fault #2) did not recover")
}

func TestLifecycleClockSlack(t *testing.T) {
	_, in := lifecycleFixture()
	// A leader 90s ahead placed r2: its ticks come "before" the placement.
	for i := range in.Events {
		if in.Events[i].Index == 12 {
			in.Events[i].Time += int64(90 * time.Second)
		}
	}
	wantResult(t, CheckLifecycle(in), Fail, "before it was placed")
	in.ClockSlack = 91 * time.Second
	v := CheckLifecycle(in)
	wantResult(t, v, Pass, "")
	if len(v.Notes) != 1 {
		t.Fatalf("notes %v: want the slack noted", v.Notes)
	}
	// The slack does not excuse two epochs at once (agents' clocks only).
	ticks := in.Ticks["tick-0"]
	in.Ticks["tick-0"] = append(ticks, Tick{Epoch: 5, Run: "r1", Time: ticks[len(ticks)-1].Time + 1e6})
	wantResult(t, CheckLifecycle(in), Fail, "two epochs executed at once")
}

func TestClockSlackCountsInjectedSkewsOnly(t *testing.T) {
	plan := []PlannedFault{{Seq: 1, Kind: KindClockSkew, Skew: -80 * time.Second}, {Seq: 2, Kind: KindClockSkew, Skew: 30 * time.Second},
		{Seq: 3, Kind: KindClockSkew, Skew: 110 * time.Second}}
	entries := []Entry{nem(TFault, KindClockSkew, "s1", 1, 1, ""), nem(TFault, KindClockSkew, "s2", 2, 2, "")}
	if got := ClockSlack(plan, entries); got != 81*time.Second {
		t.Fatalf("slack %s, want 81s (fault 3 was never injected)", got)
	}
	if got := ClockSlack(plan, nil); got != 0 {
		t.Fatalf("slack %s without clock-skew faults", got)
	}
}

func TestCorruptionDeadlineLeavesOutPartitions(t *testing.T) {
	h := &hist{}
	h.entries = append(h.entries,
		nem(TFault, KindCorrupt, "s3", 1000, 1, ""),
		Entry{Type: TFault, Process: NemesisProcess, F: KindPartLeader, Target: []string{"s1", "s2", "s3"}, Mono: 1500e6, FaultID: 2},
		Entry{Type: THeal, Process: NemesisProcess, F: KindPartLeader, Target: []string{"s1", "s2", "s3"}, Mono: 5500e6, FaultID: 2},
		Entry{Type: TFault, Process: NemesisProcess, F: KindPartAgent, Target: []string{"a1", "s1", "s2", "s3"}, Mono: 6000e6, FaultID: 3},
		Entry{Type: THeal, Process: NemesisProcess, F: KindPartAgent, Target: []string{"a1", "s1", "s2", "s3"}, Mono: 9000e6, FaultID: 3},
		nem(TObserve, ObsHalted, "s3", 13000, 1, ""),
		nem(THeal, KindCorrupt, "s3", 16000, 1, "healed"))
	// 12s after the restart: two intervals (10s) plus 4s cut off is enough;
	// an agent's partition does not cut the server off.
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Pass, "")
	h.entries[5].Mono = 15500e6
	wantResult(t, CheckCorruption(CorruptionInput{Entries: h.entries, CheckInterval: 5 * time.Second}), Fail, "plus the 4.0s it was partitioned")
}
