package rpc

import (
	"errors"
	"net/http"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

// MaxBodyBytes is the largest request body the API accepts (1 MiB).
const MaxBodyBytes = 1 << 20

// statusFor maps an error to an HTTP status code, by fsm's one error table;
// a write refused because the data dir is out of space is 507 Insufficient
// Storage.
func statusFor(err error) int {
	var full *cluster.DiskFullError
	if errors.As(err, &full) {
		return http.StatusInsufficientStorage
	}
	return fsm.HTTPStatus(err)
}
