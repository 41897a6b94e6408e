package jepsen

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	first, err := AcquireLock(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan string, 2)
	got := make(chan *Lock)
	go func() {
		second, err := AcquireLock(path, func(f string, args ...any) { waiting <- f })
		if err != nil {
			t.Error(err)
		}
		got <- second
	}()
	select {
	case msg := <-waiting:
		if !strings.Contains(msg, "waiting") {
			t.Fatalf("first message %q, want one about waiting", msg)
		}
	case l := <-got:
		t.Fatalf("second lock %v taken while the first was held", l)
	case <-time.After(10 * time.Second):
		t.Fatal("second AcquireLock neither waited nor returned")
	}
	first.Release()
	select {
	case l := <-got:
		l.Release()
	case <-time.After(10 * time.Second):
		t.Fatal("second AcquireLock did not return after the first was released")
	}
}
