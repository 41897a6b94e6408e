package gossip

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestCollectorReturnsWhenEveryMemberAnswered(t *testing.T) {
	c := newCollector([]string{"s2", "n1@agent", "s2"}) // a name given twice is one member
	if !c.deliver(MemberResult{Name: "s2", Answered: true}) {
		t.Fatal("expected answer refused")
	}
	if c.deliver(MemberResult{Name: "s2", Answered: true, Err: "second"}) || c.deliver(MemberResult{Name: "stranger", Answered: true}) {
		t.Fatal("a second answer or a stranger's was taken")
	}
	go c.deliver(MemberResult{Name: "n1@agent", Answered: true, Err: "refused"})
	start := time.Now()
	got := c.wait(context.Background(), time.Minute)
	if time.Since(start) > 10*time.Second {
		t.Fatal("wait did not return when every member had answered")
	}
	if len(got) != 2 || got[0].Name != "n1@agent" || got[0].Err != "refused" || got[0].OK() || !got[1].OK() {
		t.Fatalf("results %+v", got)
	}
}

func TestCollectorReportsMissingMembersAtTheDeadline(t *testing.T) {
	c := newCollector([]string{"a", "b", "c"})
	c.deliver(MemberResult{Name: "b", Answered: true})
	c.deliver(MemberResult{Name: "c", Err: "send request: connection refused"})
	start := time.Now()
	got := c.wait(context.Background(), 100*time.Millisecond)
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("returned after %v, before the deadline", waited)
	}
	if len(got) != 3 || got[0].Name != "a" || got[0].Answered || got[0].Err != "no answer within 100ms" {
		t.Fatalf("missing member reported as %+v", got[0])
	}
	if !got[1].OK() || got[2].Answered || !strings.Contains(got[2].Err, "connection refused") {
		t.Fatalf("results %+v", got)
	}
	// A late answer changes nothing already returned.
	c.deliver(MemberResult{Name: "a", Answered: true})
	if got[0].Answered {
		t.Fatal("late answer changed the returned results")
	}
}

func TestCollectorEndsWithTheContext(t *testing.T) {
	c := newCollector([]string{"a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := c.wait(ctx, time.Minute)
	if len(got) != 1 || got[0].Answered || !strings.Contains(got[0].Err, "before the request ended") {
		t.Fatalf("results %+v", got)
	}
	if got := newCollector(nil).wait(context.Background(), time.Minute); len(got) != 0 {
		t.Fatalf("no members: %+v", got)
	}
}
