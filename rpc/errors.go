package rpc

import "github.com/ice-run/ice/fsm"

// MaxBodyBytes is the largest request body the API accepts (1 MiB).
const MaxBodyBytes = 1 << 20

// statusFor maps an error to an HTTP status code, by fsm's one error table.
func statusFor(err error) int { return fsm.HTTPStatus(err) }
