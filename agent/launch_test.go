package agent

import (
	"context"
	"testing"
	"time"
)

func TestLaunchSlots(t *testing.T) {
	a := &Agent{launches: make(chan struct{}, 2), cfg: Config{LaunchSlotHold: 250 * time.Millisecond}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	take := func(ctx context.Context) func() {
		t.Helper()
		release, ok := a.launchSlot(ctx)
		if !ok {
			t.Fatal("no launch slot")
		}
		return release
	}
	r1, r2 := take(ctx), take(ctx)
	third := make(chan func())
	go func() {
		release, ok := a.launchSlot(ctx)
		if !ok {
			release = nil
		}
		third <- release
	}()
	r1()
	r1() // giving a slot back twice gives back one
	r3 := <-third
	if r3 == nil {
		t.Fatal("the third launch got no slot after the first gave its back")
	}
	if n := len(a.launches); n != 2 {
		t.Fatalf("%d slots held, want 2", n)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	if _, ok := a.launchSlot(done); ok {
		t.Fatal("a launch whose context ended got a slot while all were held")
	}
	// A launch that holds its slot for too long gives it up by itself.
	r4 := take(ctx)
	r2()
	r3()
	r4()
}
