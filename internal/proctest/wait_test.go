package proctest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitForReturnsWhenTheConditionHolds(t *testing.T) {
	calls := 0
	err := WaitFor(context.Background(), "three calls", time.Second, time.Millisecond, func() (bool, error) {
		calls++
		return calls == 3, errors.New("not yet")
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestWaitForTimeoutNamesWhatAndTheLastError(t *testing.T) {
	last := errors.New("connection refused")
	start := time.Now()
	err := WaitFor(context.Background(), "a leader", 50*time.Millisecond, 10*time.Millisecond, func() (bool, error) {
		return false, last
	})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, last) {
		t.Fatalf("err %v, want ErrTimeout and the last error", err)
	}
	if want := "waiting for a leader: timed out after 50ms (last: connection refused)"; err.Error() != want {
		t.Fatalf("err %q, want %q", err, want)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("returned after %s", d)
	}
	err = WaitFor(context.Background(), "nothing", 10*time.Millisecond, time.Hour, func() (bool, error) { return false, nil })
	if err == nil || err.Error() != "waiting for nothing: timed out after 10ms" {
		t.Fatalf("err %v: the interval must not outlast the deadline", err)
	}
}

func TestWaitForEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := WaitFor(ctx, "ever", 0, time.Millisecond, func() (bool, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "waiting for ever: ") {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestHolds(t *testing.T) {
	if err := Holds("always", 30*time.Millisecond, 5*time.Millisecond, func() (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := Holds("until the third call", time.Second, time.Millisecond, func() (bool, error) {
		n++
		return n < 3, nil
	})
	if err == nil || n != 3 || !strings.Contains(err.Error(), "until the third call stopped holding") {
		t.Fatalf("Holds = %v after %d calls", err, n)
	}
}
