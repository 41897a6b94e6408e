package cluster

import (
	"fmt"
	"testing"
	"time"
)

func TestLeaderHistoryBoundedNewestFirst(t *testing.T) {
	h := newLeaderHistory(5)
	at := time.Unix(1000, 0)
	for term := uint64(1); term <= 12; term++ {
		if !h.observe(term, fmt.Sprintf("s%d", term%3), at.Add(time.Duration(term)*time.Second)) {
			t.Fatalf("term %d: not recorded", term)
		}
	}
	got := h.newestFirst()
	if len(got) != 5 {
		t.Fatalf("history holds %d changes, want the last 5: %+v", len(got), got)
	}
	for i, c := range got {
		wantTerm := uint64(12 - i)
		if c.Term != wantTerm || c.Leader != fmt.Sprintf("s%d", wantTerm%3) {
			t.Errorf("change %d is term %d leader %s, want term %d leader s%d", i, c.Term, c.Leader, wantTerm, wantTerm%3)
		}
		if want := fmt.Sprintf("s%d", (wantTerm-1)%3); c.From != want {
			t.Errorf("change %d (term %d) is from %q, want %q", i, c.Term, c.From, want)
		}
		if want := at.Add(time.Duration(wantTerm) * time.Second).UnixNano(); c.At != want {
			t.Errorf("change %d at %d, want %d", i, c.At, want)
		}
	}
}

func TestLeaderHistoryNoDuplicates(t *testing.T) {
	h := newLeaderHistory(50)
	now := time.Unix(2000, 0)
	steps := []struct {
		term   uint64
		leader string
		want   bool
	}{
		{3, "a", true},
		{3, "a", false}, // the observer and the seed both saw it
		{3, "", false},  // an election under way
		{3, "a", false}, // contact regained, same term
		{4, "b", true},
		{4, "b", false},
		{5, "a", true},
		{3, "a", false}, // still a duplicate when not the newest
	}
	for i, s := range steps {
		if got := h.observe(s.term, s.leader, now); got != s.want {
			t.Errorf("step %d: observe(%d, %q) = %v, want %v", i, s.term, s.leader, got, s.want)
		}
	}
	got := h.newestFirst()
	want := []LeaderChange{{Term: 5, Leader: "a", From: "b"}, {Term: 4, Leader: "b", From: "a"}, {Term: 3, Leader: "a"}}
	if len(got) != len(want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	for i := range want {
		want[i].At = now.UnixNano()
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLeaderHistoryOrderedByTerm(t *testing.T) {
	h := newLeaderHistory(50)
	now := time.Unix(3000, 0)
	h.observe(7, "c", now)
	// A term read late: it goes before term 7, and term 7 stays newest.
	h.observe(6, "b", now)
	h.observe(8, "a", now)
	got := h.newestFirst()
	var terms []uint64
	for _, c := range got {
		terms = append(terms, c.Term)
	}
	if fmt.Sprint(terms) != "[8 7 6]" {
		t.Fatalf("terms newest first %v, want [8 7 6]", terms)
	}
	if got[0].From != "c" || got[1].From != "b" || got[2].From != "" {
		t.Errorf("froms %q %q %q, want c b and none (each the leader of the term before)", got[0].From, got[1].From, got[2].From)
	}
	// Returned slices are copies.
	got[0].Leader = "x"
	if h.newestFirst()[0].Leader != "a" {
		t.Error("newestFirst shares its slice with the history")
	}
}

func TestLeaderHistoryNil(t *testing.T) {
	var h *leaderHistory
	if got := h.newestFirst(); got != nil {
		t.Errorf("nil history answers %+v", got)
	}
}
