package cluster

import "errors"

// Errors returned by Server. Errors from the state machine's rejections wrap
// the fsm package's sentinels instead.
var (
	// ErrNotLeader is returned by Apply on a server that is not the leader;
	// the caller forwards to LeaderHTTP.
	ErrNotLeader = errors.New("not the leader")

	// ErrNoLeader is returned when no leader is known, for example during an
	// election.
	ErrNoLeader = errors.New("no cluster leader")

	// ErrShutdown is returned by operations on a server that is shutting down.
	ErrShutdown = errors.New("server shutting down")

	// ErrTimeout is returned when a proposal or a wait did not complete in time.
	ErrTimeout = errors.New("timed out")

	// ErrArchive is returned for a snapshot archive that is not valid.
	ErrArchive = errors.New("invalid snapshot archive")
)
