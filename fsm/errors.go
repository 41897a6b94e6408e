package fsm

import "errors"

// Errors returned by Apply, Decode, Restore and the encoders. Every error that
// leaves this package wraps one of these, so callers can map them to a status
// code with errors.Is and count them by kind.
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

	// ErrChecksum is returned by Restore for a snapshot whose checksum does not
	// match its content, and by VerifyChain for a broken event hash chain.
	ErrChecksum = errors.New("checksum mismatch")
)
