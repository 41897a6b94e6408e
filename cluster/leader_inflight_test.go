package cluster

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestInFlight: every batch is proposed once, never more than the limit at
// a time, and inFlight returns only after the last one was answered.
func TestInFlight(t *testing.T) {
	for _, tc := range []struct{ n, limit int }{{0, 2}, {1, 2}, {2, 2}, {7, 2}, {50, 4}} {
		var mu sync.Mutex
		seen := make([]int, tc.n)
		running, most, done := 0, 0, 0
		release := make(chan struct{})
		go func() { // let the calls finish once the limit could be reached, or after a deadline
			defer close(release)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				mu.Lock()
				r, d := running, done
				mu.Unlock()
				if r == min(tc.limit, tc.n-d) {
					return
				}
				runtime.Gosched()
			}
		}()
		inFlight(tc.n, tc.limit, func(i int) {
			mu.Lock()
			seen[i]++
			running++
			most = max(most, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			done++
			mu.Unlock()
		})
		if done != tc.n {
			t.Errorf("n=%d: returned after %d of the calls", tc.n, done)
		}
		for i, c := range seen {
			if c != 1 {
				t.Errorf("n=%d: batch %d proposed %d times", tc.n, i, c)
			}
		}
		if most > tc.limit {
			t.Errorf("n=%d: %d in flight at once, limit %d", tc.n, most, tc.limit)
		}
		if tc.n >= tc.limit && tc.n > 1 && most != tc.limit {
			t.Errorf("n=%d: at most %d in flight, want the limit %d", tc.n, most, tc.limit)
		}
	}
}
