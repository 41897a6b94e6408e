package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The host channel: a running plugin calls its agent through it, for
// capability grants (request, watch, token, use, release) and memory
// reads (read, list). The agent opens
// it (Component's Host stream) after Start and again after a restart and
// reattach; see HostLink for the plugin side and ServeHost for the agent's.
//
// Why not go-plugin's GRPCBroker: the broker's stream is opened by the host
// and the plugin side closes its broker for good when that stream ends
// (gRPCBrokerServer.StartStream defers Close), so a plugin whose agent
// restarted could never reach the new agent through it. A stream on the
// plugin's own service has the same shape (the plugin calls, the host
// answers), reuses the connection's mutual TLS, and is simply opened again
// by the next agent.

// Grant statuses as plugins see them (fsm.GrantStatus values).
const (
	GrantPending  = "PENDING"
	GrantGranted  = "GRANTED"
	GrantDenied   = "DENIED"
	GrantExpired  = "EXPIRED"
	GrantRevoked  = "REVOKED"
	GrantReleased = "RELEASED"
)

// Grant is a capability grant as the agent reports it to the plugin.
type Grant struct {
	ID      string
	RunID   string
	Scope   string
	Effect  string
	Status  string
	Reason  string
	Purpose string
	// Expires is when the grant ends by itself (zero while PENDING).
	Expires         time.Time
	Approvals       int
	ApprovalsNeeded int
	IssuedIndex     uint64
	// Token is a signed grant token while the grant is GRANTED, for the
	// services the plugin calls; TokenExpires is when it stops verifying.
	Token        string
	TokenExpires time.Time
}

// Live reports whether the grant is PENDING or GRANTED.
func (g Grant) Live() bool { return g.Status == GrantPending || g.Status == GrantGranted }

// HostErrorCode says why a host call failed.
type HostErrorCode int

// Host error codes (the proto's HostErrorCode).
const (
	HostErrUnknown     HostErrorCode = 0
	HostErrDenied      HostErrorCode = 1
	HostErrNotDeclared HostErrorCode = 2
	HostErrRefused     HostErrorCode = 3
	HostErrEnded       HostErrorCode = 4
	HostErrUnavailable HostErrorCode = 5
	HostErrNotFound    HostErrorCode = 6
	HostErrNotAllowed  HostErrorCode = 7
)

// String names the code.
func (c HostErrorCode) String() string {
	switch c {
	case HostErrDenied:
		return "denied"
	case HostErrNotDeclared:
		return "not declared"
	case HostErrRefused:
		return "refused"
	case HostErrEnded:
		return "grant ended"
	case HostErrUnavailable:
		return "agent unavailable"
	case HostErrNotFound:
		return "not found"
	case HostErrNotAllowed:
		return "not allowed"
	}
	return "error"
}

// HostError is a failed host call: its code and the agent's message.
type HostError struct {
	Code    HostErrorCode
	Message string
}

func (e *HostError) Error() string { return e.Code.String() + ": " + e.Message }

// Is makes errors.Is(err, &HostError{Code: c}) match any HostError of code c.
func (e *HostError) Is(target error) bool {
	var t *HostError
	return errors.As(target, &t) && t.Message == "" && t.Code == e.Code
}

// HostErrorf makes a HostError.
func HostErrorf(code HostErrorCode, format string, args ...any) error {
	return &HostError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Host is what an agent serves a run's plugin through the host channel.
// Every method may block; the context ends with the call (the plugin gave
// up, or the channel closed).
type Host interface {
	// RequestGrant proposes a grant of scope; it returns once the grant is
	// decided, or after wait with the grant still PENDING. A refusal is a
	// HostError: HostErrDenied (with the operator's reason),
	// HostErrNotDeclared or HostErrRefused.
	RequestGrant(ctx context.Context, scope, purpose string, wait time.Duration) (Grant, error)
	// WatchGrant returns the grant once its status differs from status, or
	// after wait as it is then.
	WatchGrant(ctx context.Context, id, status string, wait time.Duration) (Grant, error)
	// GrantToken returns the grant with a fresh token; HostErrEnded once it
	// is no longer GRANTED.
	GrantToken(ctx context.Context, id string) (Grant, error)
	// RecordUse records one use once it is committed; HostErrEnded when the
	// grant had ended.
	RecordUse(ctx context.Context, id, detail string) error
	// ReleaseGrant gives the grant back.
	ReleaseGrant(ctx context.Context, id string) (Grant, error)
	// ReadMemory reads one version of a record of a type the run's
	// component lists in its spec's reads: version 0 is the newest ACTIVE
	// one, another version that version whatever its status.
	// HostErrNotAllowed for a type the spec does not list, HostErrNotFound
	// for no such record.
	ReadMemory(ctx context.Context, typ, key string, version uint64) (MemoryRecord, error)
	// ListMemory lists the ACTIVE records of a type the run may read, by
	// key.
	ListMemory(ctx context.Context, typ string) ([]MemoryRecord, error)
}

// Memory record statuses as plugins see them (fsm.MemoryStatus values).
const (
	MemoryActive      = "ACTIVE"
	MemoryExpired     = "EXPIRED"
	MemoryDeprecated  = "DEPRECATED"
	MemorySuperseded  = "SUPERSEDED"
	MemoryInvalidated = "INVALIDATED"
)

// MemoryRecord is one version of a memory record as the agent serves it.
type MemoryRecord struct {
	Type    string
	Key     string
	Version uint64
	Value   string
	Status  string
	// Run is the committed run the record came from; Index and Time the
	// entry that committed it.
	Run   string
	Index uint64
	Time  time.Time
}

// HostServer is implemented by the host side of a dispensed Component:
// ServeHost opens the host channel to the plugin and answers its calls with
// h until ctx ends or the channel breaks. It returns ErrHostUnsupported when
// the plugin does not serve the channel.
type HostServer interface {
	ServeHost(ctx context.Context, h Host) error
}

// ErrHostUnsupported: the plugin's SDK predates the host channel.
var ErrHostUnsupported = errors.New("plugin does not serve the host channel")
