package rpc

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

func TestStatusForDiskFull(t *testing.T) {
	full := &cluster.DiskFullError{Dir: "/data", Op: "propose component.put", Outcome: "the write was not committed", Err: syscall.ENOSPC}
	for _, c := range []struct {
		err  error
		want int
	}{
		{full, http.StatusInsufficientStorage},
		{fmt.Errorf("apply component.put: %w", full), http.StatusInsufficientStorage},
		{fsm.ErrNotLeader, http.StatusServiceUnavailable},
		{fmt.Errorf("plain: %w", syscall.ENOSPC), http.StatusInternalServerError},
	} {
		if got := statusFor(c.err); got != c.want {
			t.Errorf("statusFor(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
