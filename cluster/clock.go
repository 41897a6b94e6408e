package cluster

import (
	"fmt"
	"os"
	"time"
)

// ClockOffsetEnv names the environment variable that shifts a server's
// wall clock by a duration ("-30s", "2m"). It exists for fault-injection
// tests only (jepsen's clock-skew): never set it in production.
const ClockOffsetEnv = "ICE_TEST_CLOCK_OFFSET"

// clockOffset reads ClockOffsetEnv (zero when unset).
func clockOffset() (time.Duration, error) {
	v := os.Getenv(ClockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration like \"-30s\": %w", ClockOffsetEnv, v, err)
	}
	return d, nil
}

// now is the leader's wall clock as it stamps commands and computes
// schedules: the system clock plus the test offset. Leases measure on the
// monotonic clock (time.Now's, which Add keeps), so a wall clock that jumps
// moves no lease.
func (s *Server) now() time.Time { return time.Now().Add(s.clockOffset) }

// Now is the server's wall clock (with the test offset): what the API uses
// for token expiries and drain deadlines, so that they are on the clock
// the leader stamps commands with.
func (s *Server) Now() time.Time { return s.now() }
