package jepsen

import (
	"context"
	"fmt"
	"slices"

	"github.com/ice-run/ice/api"
)

// Status reads the server's GET /v1/status: with Corrupt set when it
// halted, and the cluster's alarms (from the replicated state).
func (s *Server) Status(ctx context.Context) (*api.Status, error) {
	st, err := s.Client().Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.ID, err)
	}
	return st, nil
}

// alarmFor returns the alarm of a status naming server, or nil.
func alarmFor(st *api.Status, server string) *api.Alarm {
	i := slices.IndexFunc(st.Alarms, func(a api.Alarm) bool { return a.Server == server })
	if i < 0 {
		return nil
	}
	return &st.Alarms[i]
}
