package proctest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is wrapped by WaitFor's error when its condition did not hold
// in time.
var ErrTimeout = errors.New("timed out")

// WaitFor calls cond at once and then every interval until it reports
// true, ctx ends or timeout has passed (timeout <= 0: only ctx limits the
// wait). An error from cond does not end the wait: it says why the
// condition does not hold yet, and the last one is wrapped in the error
// WaitFor returns. That error names what was awaited ("waiting for what:
// ...") and wraps ErrTimeout or ctx's error.
func WaitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		ok, last := cond()
		if ok {
			return nil
		}
		wait := interval
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return waitError(what, fmt.Errorf("%w after %s", ErrTimeout, timeout), last)
			}
			wait = min(wait, left)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return waitError(what, ctx.Err(), last)
		case <-timer.C:
		}
	}
}

func waitError(what string, why, last error) error {
	if last != nil {
		return fmt.Errorf("waiting for %s: %w (last: %w)", what, why, last)
	}
	return fmt.Errorf("waiting for %s: %w", what, why)
}

// Holds checks that cond stays true for the whole of d, calling it at once
// and then every interval: how a test proves something does not happen (an
// intruder never joins, a term never moves) without a bare sleep. It
// returns an error naming what broke and when, at the first false.
func Holds(what string, d, interval time.Duration, cond func() (bool, error)) error {
	start := time.Now()
	for {
		ok, err := cond()
		if !ok {
			if err != nil {
				return fmt.Errorf("%s stopped holding after %s: %w", what, time.Since(start).Round(time.Millisecond), err)
			}
			return fmt.Errorf("%s stopped holding after %s", what, time.Since(start).Round(time.Millisecond))
		}
		if time.Since(start) >= d {
			return nil
		}
		time.Sleep(min(interval, d-time.Since(start)))
	}
}
