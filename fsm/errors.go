package fsm

import "errors"

// Every sentinel error of ICE is declared in this one block, so that one
// table (ErrorKinds) names each for metrics and maps it to the HTTP status the
// API answers with. Every error that leaves a package wraps one of these;
// callers match them with errors.Is.
var (
	// ErrUnknownType is returned for a command whose type byte this version
	// does not know, for example one written by a newer server.
	ErrUnknownType = errors.New("unknown command type")

	// ErrUnsupportedVersion is returned for a command body or snapshot whose
	// format version this server cannot read.
	ErrUnsupportedVersion = errors.New("unsupported format version")

	// ErrMalformed is returned for a command or snapshot record that cannot be
	// decoded.
	ErrMalformed = errors.New("malformed encoding")

	// ErrInvalid is returned for a well-formed command whose content is not
	// acceptable (an empty name, a negative count, a missing plugin).
	ErrInvalid = errors.New("invalid command")

	// ErrNotAuthorized is returned when the command's actor may not issue it.
	ErrNotAuthorized = errors.New("actor not authorized")

	// ErrFenced is returned for an agent command whose node or epoch does not
	// match the run it names.
	ErrFenced = errors.New("fenced")

	// ErrIllegalTransition is returned for a transition the lifecycle table
	// does not contain.
	ErrIllegalTransition = errors.New("illegal transition")

	// ErrNotFound is returned when a command names a component, run or node
	// that does not exist.
	ErrNotFound = errors.New("not found")

	// ErrConflict is returned when a compare-and-set index does not match, or
	// a run is created for a slot that is still occupied.
	ErrConflict = errors.New("conflict")

	// ErrIneligible is returned for a placement onto a node that may not take
	// the run: draining, ineligible, down or left, without the component's
	// (pinned) plugin, or breaking one of its constraints.
	ErrIneligible = errors.New("node not eligible for placement")
	// ErrBudgetExhausted is returned for a dispatch or a new run of a
	// component whose budget is exhausted in the current window.
	// (Its text differs from the reason, which starts "budget exhausted".)
	ErrBudgetExhausted = errors.New("over budget")

	// ErrCorrupt is returned for a log entry whose checksum does not match
	// its bytes: damaged on this server's disk or on the way to it. It is
	// not a rejection: the server must stop applying, not skip the entry.
	ErrCorrupt = errors.New("corrupt log entry")

	// ErrChecksum is returned by Restore for a snapshot whose checksum does not
	// match its content, and by VerifyChain for a broken event hash chain.
	ErrChecksum = errors.New("checksum mismatch")

	// The servers around the state machine (cluster/, rpc/) return these.

	// ErrNotLeader is returned by Apply on a server that is not the leader;
	// the caller forwards to the leader.
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

	// ErrBadRequest is returned for input the API refuses before proposing:
	// malformed JSON or HCL, unknown fields, bad parameters.
	ErrBadRequest = errors.New("bad request")

	// ErrTooLarge is returned for a request body over the API's limit.
	ErrTooLarge = errors.New("request body too large")
)

// ErrorKind describes one sentinel error: the name metrics label it with,
// whether it is a deterministic rejection by the state machine, and the HTTP
// status the API answers it with.
type ErrorKind struct {
	Err  error
	Name string
	// Rejection is true for errors Apply returns for a command it refuses:
	// the same on every server and in every replay.
	Rejection bool
	// HTTPStatus is the status code of an API answer that wraps Err.
	HTTPStatus int
}

// HTTP status codes of ErrorKinds (net/http's values; this package does no
// I/O and does not import it).
const (
	statusBadRequest         = 400
	statusForbidden          = 403
	statusNotFound           = 404
	statusConflict           = 409
	statusTooLarge           = 413
	statusTooManyRequests    = 429
	statusServiceUnavailable = 503
	statusGatewayTimeout     = 504
	// StatusInternal is the status of an error that wraps no sentinel.
	StatusInternal = 500
)

// ErrorKinds is the one table of sentinel errors, in match order.
var ErrorKinds = []ErrorKind{
	{ErrUnknownType, "unknown_type", true, statusBadRequest},
	{ErrUnsupportedVersion, "unsupported_version", true, statusBadRequest},
	{ErrMalformed, "malformed", true, statusBadRequest},
	{ErrInvalid, "invalid", true, statusBadRequest},
	{ErrNotAuthorized, "not_authorized", true, statusForbidden},
	{ErrFenced, "fenced", true, statusConflict},
	{ErrIllegalTransition, "illegal_transition", true, statusConflict},
	{ErrNotFound, "not_found", true, statusNotFound},
	{ErrConflict, "conflict", true, statusConflict},
	{ErrIneligible, "ineligible", true, statusConflict},
	{ErrBudgetExhausted, "budget_exhausted", true, statusTooManyRequests},
	{ErrCorrupt, "corrupt", false, statusServiceUnavailable},
	{ErrChecksum, "checksum", false, statusBadRequest},
	{ErrNotLeader, "not_leader", false, statusServiceUnavailable},
	{ErrNoLeader, "no_leader", false, statusServiceUnavailable},
	{ErrShutdown, "shutdown", false, statusServiceUnavailable},
	{ErrTimeout, "timeout", false, statusGatewayTimeout},
	{ErrArchive, "archive", false, statusBadRequest},
	{ErrBadRequest, "bad_request", false, statusBadRequest},
	{ErrTooLarge, "too_large", false, statusTooLarge},
}

// KindOf returns the kind of the first sentinel err wraps, and false when it
// wraps none.
func KindOf(err error) (ErrorKind, bool) {
	if err == nil {
		return ErrorKind{}, false
	}
	for _, k := range ErrorKinds {
		if errors.Is(err, k.Err) {
			return k, true
		}
	}
	return ErrorKind{}, false
}

// ErrorName names the sentinel err wraps for metric labels ("other" for none).
func ErrorName(err error) string {
	if k, ok := KindOf(err); ok {
		return k.Name
	}
	return "other"
}

// HTTPStatus is the status code the API answers err with (500 when err wraps
// no sentinel).
func HTTPStatus(err error) int {
	if k, ok := KindOf(err); ok {
		return k.HTTPStatus
	}
	return StatusInternal
}

// IsRejection reports whether err is a deterministic rejection by the state
// machine (as opposed to a failure to reach it).
func IsRejection(err error) bool {
	k, ok := KindOf(err)
	return ok && k.Rejection
}
