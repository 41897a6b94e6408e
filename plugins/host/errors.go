package host

import "errors"

// Errors returned by Launch and Reattach.
var (
	// ErrChecksumMismatch: the plugin binary's sha256 is not the one the
	// committed spec or catalogue names. The binary was not started.
	ErrChecksumMismatch = errors.New("checksum mismatch")

	// ErrGone: the process an Attachment names is not running, or a
	// different process now holds its pid.
	ErrGone = errors.New("plugin process gone")
)
