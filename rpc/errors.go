package rpc

import (
	"errors"
	"net/http"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

// Errors of the API layer.
var (
	// ErrBadRequest is returned for input the API refuses before proposing:
	// malformed JSON or HCL, unknown fields, bad parameters.
	ErrBadRequest = errors.New("bad request")

	// ErrTooLarge is returned for a request body over MaxBodyBytes.
	ErrTooLarge = errors.New("request body too large")
)

// MaxBodyBytes is the largest request body the API accepts (1 MiB).
const MaxBodyBytes = 1 << 20

// statusFor maps an error to an HTTP status code.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest), errors.Is(err, fsm.ErrInvalid), errors.Is(err, fsm.ErrMalformed),
		errors.Is(err, cluster.ErrArchive), errors.Is(err, fsm.ErrChecksum),
		errors.Is(err, fsm.ErrUnknownType), errors.Is(err, fsm.ErrUnsupportedVersion):
		return http.StatusBadRequest
	case errors.Is(err, fsm.ErrNotAuthorized):
		return http.StatusForbidden
	case errors.Is(err, fsm.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fsm.ErrConflict), errors.Is(err, fsm.ErrFenced), errors.Is(err, fsm.ErrIllegalTransition):
		return http.StatusConflict
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrShutdown):
		return http.StatusServiceUnavailable
	case errors.Is(err, cluster.ErrTimeout):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
