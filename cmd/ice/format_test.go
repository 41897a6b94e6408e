package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventSummary(t *testing.T) {
	cases := []struct {
		name string
		typ  string
		pay  any
		want string
	}{
		{"placement", "run.transition", fsm.TransitionPayload{From: fsm.StateCreated, To: fsm.StateProvisioned, Node: "n1", Epoch: 12},
			"CREATED→PROVISIONED node=n1 epoch=12"},
		{"abort with reason", "run.transition", fsm.TransitionPayload{From: fsm.StateExecuting, To: fsm.StateAborted, Node: "n1", Epoch: 12, Reason: "exit status 1"},
			`EXECUTING→ABORTED node=n1 epoch=12 reason="exit status 1"`},
		{"output", "run.transition", fsm.TransitionPayload{From: fsm.StateExecuting, To: fsm.StateValidating, Node: "n1", Epoch: 3, Output: "HELLO"},
			"EXECUTING→VALIDATING node=n1 epoch=3 output=HELLO"},
		{"created", "run.created", fsm.NewRun{Component: "c", Generation: 2, Slot: 1, Attempt: 3},
			"slot=1 generation=2 attempt=3"},
		{"put", "component.put", map[string]any{"generation": 4, "spec": fsm.Spec{Name: "c", Plugin: fsm.PluginRef{Name: "ticker", Version: "1.0"}, Count: 2}},
			"generation=4 plugin=ticker@1.0 count=2"},
		{"stop", "component.stop", map[string]any{"generation": 5}, "generation=5"},
		{"failed", "component.failed", map[string]any{"name": "c", "generation": 2, "reason": "slot 0 failed (restart attempts = 0: not restarted); last: exit status 1"},
			`generation=2 reason="slot 0 failed (restart attempts = 0: not restarted); last: exit status 1"`},
		{"node registered", "node.registered", map[string]any{"address": "10.0.0.1", "labels": map[string]string{"zone": "a", "disk": "ssd"},
			"plugins": []fsm.PluginInfo{{Name: "ticker"}, {Name: "batch"}}, "status": "ready"},
			`status=ready address=10.0.0.1 labels="disk=ssd,zone=a" plugins=ticker,batch`},
		{"node down", "node.status", map[string]any{"from": "ready", "to": "down", "reason": "lease expired"},
			`ready→down reason="lease expired"`},
		{"unknown type", "grant.issued", map[string]any{"scope": "net:http"}, `{"scope":"net:http"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := fsm.Event{Type: c.typ, Payload: mustJSON(t, c.pay)}
			if got := eventSummary(&e); got != c.want {
				t.Errorf("eventSummary = %q, want %q", got, c.want)
			}
		})
	}
	if got := eventSummary(&fsm.Event{Type: "run.transition"}); got != "" {
		t.Errorf("no payload: %q", got)
	}
	// A payload that does not fit its type falls back to compact JSON.
	e := fsm.Event{Type: "run.transition", Payload: json.RawMessage(`{ "from": 7 }`)}
	if got := eventSummary(&e); got != `{"from":7}` {
		t.Errorf("bad payload: %q", got)
	}
}

func TestFormatTime(t *testing.T) {
	if got := formatTime(0); got != "-" {
		t.Errorf("zero: %q", got)
	}
	ts := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	got := formatTime(ts.UnixNano())
	if got != "2025-03-04T05:06:07.890Z" {
		t.Errorf("formatTime = %q", got)
	}
	if _, err := time.Parse(time.RFC3339, got); err != nil {
		t.Errorf("not RFC 3339: %v", err)
	}
}

func TestTruncateAndShortID(t *testing.T) {
	if got := truncate("héllo world", 5); got != "héll…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate = %q", got)
	}
	id := "0123abcd-4567-89ab-cdef-0123456789ab"
	if shortID(id, false) != "0123abcd" || shortID(id, true) != id {
		t.Error("shortID")
	}
}

// lines splits output into lines of fields.
func lines(s string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}

func TestRunsTable(t *testing.T) {
	long := "execute failed: payments:charge denied: supplier not verified; payment of \"120.00 EUR: invoice 43 to ACME\" not made: the grant was denied by operator:alice"
	runs := []fsm.Run{
		{ID: "0123abcd-4567-89ab-cdef-0123456789ab", Component: "ticker", Generation: 3, Slot: 0, Node: "n1", Epoch: 7, State: fsm.StateExecuting},
		{ID: "ffffeeee-4567-89ab-cdef-0123456789ab", Component: "ticker", Generation: 2, Slot: 1, State: fsm.StateTerminated, Outcome: fsm.StateAborted, Reason: "crash"},
		{ID: "aaaabbbb-4567-89ab-cdef-0123456789ab", Component: "payout", Generation: 1, Slot: -1, Dispatch: true, Node: "n2", Epoch: 9,
			State: fsm.StateTerminated, Outcome: fsm.StateAborted, Reason: long},
	}
	var buf bytes.Buffer
	if err := writeRunsTable(&buf, runs, false, reasonWidth); err != nil {
		t.Fatal(err)
	}
	got := lines(buf.String())
	want := [][]string{
		{"ID", "COMPONENT", "GENERATION", "SLOT", "NODE", "EPOCH", "STATE", "REASON"},
		{"0123abcd", "ticker", "3", "0", "n1", "7", "EXECUTING", "-"},
		{"ffffeeee", "ticker", "2", "1", "-", "-", "TERMINATED", "(ABORTED)", "crash"},
		append([]string{"aaaabbbb", "payout", "1", "dispatch", "n2", "9", "TERMINATED", "(ABORTED)"}, strings.Fields(wrapText(long, reasonWidth)[0])...),
	}
	if len(got) < len(want) {
		t.Fatalf("table:\n%s", buf.String())
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d = %q, want %q\n%s", i, got[i], want[i], buf.String())
		}
	}
	// The long reason is whole: wrapped over lines under REASON, no line
	// wider than the column, nothing cut.
	rows := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	col := strings.Index(rows[0], "REASON")
	var reason []string
	for i, r := range rows[3:] {
		if i > 0 && strings.TrimSpace(r[:col]) != "" {
			t.Errorf("continuation line %q has other cells", r)
		}
		cell := strings.TrimRight(r[col:], " ")
		if n := len([]rune(cell)); n > reasonWidth {
			t.Errorf("reason line of %d runes: %q", n, cell)
		}
		reason = append(reason, cell)
	}
	if len(reason) < 2 || strings.Join(reason, " ") != long || strings.Contains(buf.String(), "…") {
		t.Errorf("reason not whole over %d lines:\n%s", len(reason), buf.String())
	}
	// Columns align: every row's STATE starts at the same offset.
	col = strings.Index(rows[0], "STATE")
	if !strings.HasPrefix(rows[1][col:], "EXECUTING") || !strings.HasPrefix(rows[2][col:], "TERMINATED") {
		t.Errorf("columns not aligned:\n%s", buf.String())
	}

	// --wide: one line per run, the reason whole.
	buf.Reset()
	if err := writeRunsTable(&buf, runs, true, wrapWidth(true, reasonWidth)); err != nil {
		t.Fatal(err)
	}
	rows = strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(rows) != 4 || !strings.HasSuffix(rows[3], long) || !strings.HasPrefix(rows[3], runs[2].ID) {
		t.Errorf("--wide table:\n%s", buf.String())
	}
}

func TestWrapText(t *testing.T) {
	cases := []struct {
		in    string
		width int
		want  []string
	}{
		{"", 10, []string{""}},
		{"short", 10, []string{"short"}},
		{"one two three four", 9, []string{"one two", "three", "four"}},
		{"abcdefghijkl mn", 5, []string{"abcde", "fghij", "kl mn"}},
		{"héllo wörld", 5, []string{"héllo", "wörld"}},
	}
	for _, c := range cases {
		if got := wrapText(c.in, c.width); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("wrapText(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
	}
}

func TestStatusAndServersTable(t *testing.T) {
	st := &api.Status{
		NodeID: "s1", State: "Leader", Leader: "s1", LeaderHTTP: "127.0.0.1:7700", Term: 3,
		CommitIndex: 42, AppliedIndex: 41, Digest: "abcdef",
		Servers: []api.ServerInfo{
			{ID: "s1", RaftAddr: "127.0.0.1:7701", HTTPAddr: "127.0.0.1:7700", Voter: true, Leader: true, Gossip: "alive"},
			{ID: "s2", RaftAddr: "127.0.0.1:7711", Voter: true, Gossip: "suspect"},
		},
	}
	var buf bytes.Buffer
	if err := writeStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"Leader:", "s1 (http 127.0.0.1:7700)", "Term:", "Commit index:", "42", "Applied index:", "41", "abcdef"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	ls := lines(out)
	last := ls[len(ls)-1]
	if strings.Join(last, " ") != "s2 127.0.0.1:7711 - yes no suspect" {
		t.Errorf("servers row = %q\n%s", last, out)
	}
}

func TestHistoryTable(t *testing.T) {
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	events := []fsm.Event{{
		Index: 9, Time: ts, Type: "run.transition", Subject: "r1", Component: "ticker",
		Actor: "runtime", Purpose: "place ticker",
		Payload: mustJSON(t, fsm.TransitionPayload{From: fsm.StateCreated, To: fsm.StateProvisioned, Node: "n1", Epoch: 9}),
	}}
	var buf bytes.Buffer
	if err := writeHistoryTable(&buf, events, false); err != nil {
		t.Fatal(err)
	}
	ls := lines(buf.String())
	want := "9 2025-01-02T03:04:05.000Z run.transition r1 runtime place ticker CREATED→PROVISIONED node=n1 epoch=9"
	if len(ls) != 2 || strings.Join(ls[1], " ") != want {
		t.Errorf("history:\n%s", buf.String())
	}
	line := eventLine(&events[0])
	for _, s := range []string{"run.transition", "CREATED→PROVISIONED node=n1", `purpose="place ticker"`} {
		if !strings.Contains(line, s) {
			t.Errorf("eventLine %q lacks %q", line, s)
		}
	}
}

func TestHistoryTableWrapsLongCells(t *testing.T) {
	purpose := "pay 120.00 EUR: invoice 42 to ACME, approved by the finance team on call"
	reason := "execute failed: payments:charge denied: supplier not verified; payment not made"
	events := []fsm.Event{{
		Index: 9, Type: "run.transition", Subject: "r1", Actor: "agent:n1", Purpose: purpose,
		Payload: mustJSON(t, fsm.TransitionPayload{From: fsm.StateExecuting, To: fsm.StateAborted, Node: "n1", Epoch: 9, Reason: reason}),
	}, {Index: 10, Type: "run.transition", Subject: "r1", Actor: "agent:n1", Purpose: "report",
		Payload: mustJSON(t, fsm.TransitionPayload{From: fsm.StateAborted, To: fsm.StateTerminated, Node: "n1", Epoch: 9})}}
	var buf bytes.Buffer
	if err := writeHistoryTable(&buf, events, false); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	pcol, dcol := strings.Index(rows[0], "PURPOSE"), strings.Index(rows[0], "DETAILS")
	var ps, ds []string
	for _, r := range rows[1 : len(rows)-1] {
		ps = append(ps, strings.TrimSpace(r[pcol:dcol]))
		ds = append(ds, strings.TrimSpace(r[dcol:]))
	}
	if len(rows) < 4 || !strings.HasPrefix(rows[len(rows)-1], "10 ") {
		t.Fatalf("history does not wrap:\n%s", buf.String())
	}
	if got := strings.Join(strings.Fields(strings.Join(ps, " ")), " "); got != purpose {
		t.Errorf("purpose over lines = %q\n%s", got, buf.String())
	}
	if got := strings.Join(ds, " "); got != `EXECUTING→ABORTED node=n1 epoch=9 reason="`+reason+`"` {
		t.Errorf("details over lines = %q\n%s", got, buf.String())
	}
	for _, p := range ps {
		if len([]rune(p)) > purposeWidth {
			t.Errorf("purpose line %q over %d", p, purposeWidth)
		}
	}

	buf.Reset()
	if err := writeHistoryTable(&buf, events, true); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 || !strings.Contains(buf.String(), purpose) || !strings.Contains(buf.String(), reason) {
		t.Errorf("history --wide (%d lines):\n%s", n, buf.String())
	}
}

func TestEventHeaderAligns(t *testing.T) {
	e := fsm.Event{Index: 12, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), Type: "run.created",
		Subject: "0123abcd-4567-89ab-cdef-0123456789ab", Actor: "runtime", Purpose: "reconcile",
		Payload: mustJSON(t, fsm.NewRun{Component: "c", Generation: 1})}
	h, l := eventHeader(), eventLine(&e)
	for _, c := range []struct{ col, val string }{{"INDEX", "12"}, {"TIME", "2025-01-02T03:04:05.000Z"}, {"TYPE", "run.created"},
		{"SUBJECT", e.Subject}, {"ACTOR", "runtime"}, {"DETAILS", "slot=0"}} {
		if i := strings.Index(h, c.col); i < 0 || !strings.HasPrefix(l[i:], c.val) {
			t.Errorf("column %s at %d of %q, line %q", c.col, i, h, l)
		}
	}
	// A zero time keeps the columns after it in place.
	e.Time = 0
	if l := eventLine(&e); strings.Index(l, "run.created") != strings.Index(h, "TYPE") {
		t.Errorf("zero time shifts the line: %q", l)
	}
}

func TestGrantsAndMemoryTablesKeepReasons(t *testing.T) {
	long := "denied by operator:alice: the supplier is not verified, ask finance before paying invoice 43 to ACME"
	var buf bytes.Buffer
	if err := writeGrantsTable(&buf, []fsm.Grant{{ID: "g1", Run: "r1", Component: "payout", Scope: "payments:charge", Status: fsm.GrantDenied, Reason: long}}, false, reasonWidth); err != nil {
		t.Fatal(err)
	}
	if !wholeIn(buf.String(), long) || strings.Contains(buf.String(), "…") || strings.Count(buf.String(), "\n") < 3 {
		t.Errorf("grants table:\n%s", buf.String())
	}
	buf.Reset()
	if err := writeMemoryTable(&buf, []fsm.MemoryRecord{{Type: "fact", Key: "f-1", Version: 2, Status: fsm.MemoryInvalidated, Reason: long}}, false, 0); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 || !strings.Contains(buf.String(), long) {
		t.Errorf("memory table --wide:\n%s", buf.String())
	}
}

// TestNodesTableLease: the LEASE column says how long ago the leader saw
// each node's lease renewed, marks an expired one, and says "-" for a node
// it knows nothing of and when the leases could not be read.
func TestNodesTableLease(t *testing.T) {
	nodes := []fsm.Node{{ID: "n1", Status: fsm.NodeReady}, {ID: "n2", Status: fsm.NodeReady}, {ID: "n3", Status: fsm.NodeDown}}
	leases := &api.NodeLeases{TTLMillis: 10000, Leases: []api.NodeLease{
		{Node: "n1", Known: true, AgeMillis: 1250},
		{Node: "n3", Known: true, AgeMillis: 12000, Expired: true},
	}}
	var b strings.Builder
	if err := writeNodesTable(&b, nodes, leases); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LEASE", "1.2s ago", "12.0s ago (expired)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("nodes table has no %q:\n%s", want, b.String())
		}
	}
	if got := leaseText(leases, "n2"); got != "-" {
		t.Errorf("lease of a node the leader has not seen: %q, want -", got)
	}
	if got := leaseText(nil, "n1"); got != "-" {
		t.Errorf("lease without the leader's table: %q, want -", got)
	}
}
