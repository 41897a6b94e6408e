package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
)

// MessageType is the first byte of every log entry ICE writes. The numbers
// are part of the log format: new types go at the end, and a number is never
// reused or renumbered.
type MessageType uint8

// Command types.
const (
	_                      MessageType = iota // 0 is never a valid type
	ComponentPutType                          // operator: create or update a component
	ComponentDeleteType                       // operator: stop a component
	RunsCreateType                            // runtime: create runs for empty slots
	RunTransitionType                         // runtime or agent: move runs along the lifecycle
	NodeRegisterType                          // agent: register or refresh its node
	NodeStatusType                            // runtime, agent or operator: change a node's status
	ComponentFailType                         // runtime: mark a crash-looping component failed
	RunsNoteType                              // runtime: say why CREATED runs wait (cannot be placed)
	BatchType                                 // group commit: several encoded commands in one entry
	ClusterInitType                           // runtime: record the cluster id, once
	ACLBootstrapType                          // operator: create the first management token, once
	ACLPolicyPutType                          // operator: create or replace an ACL policy
	ACLPolicyDeleteType                       // operator: delete an ACL policy
	ACLTokenCreateType                        // operator: create an ACL token (its secret's hash only)
	ACLTokenDeleteType                        // operator: delete an ACL token
	DigestMarkType                            // runtime: every server records its state digest at this index
	AlarmRaiseType                            // runtime: raise an alarm naming a server
	AlarmClearType                            // runtime or operator: clear a server's alarm
	StateGCType                               // runtime or operator: collect ended runs, stopped components, archive old events
	GrantRequestType                          // agent: a run requests capability grants
	GrantApproveType                          // operator: approve a pending grant
	GrantDenyType                             // operator: deny a pending grant
	GrantRevokeType                           // operator: revoke a grant
	GrantExpireType                           // runtime: end grants past their expiry
	GrantReleaseType                          // agent: a run gives a grant back
	GrantUseType                              // agent: uses of grants, recorded
	SigningKeyRegisterType                    // runtime: register a server's public grant-token key
	SigningKeyRetireType                      // runtime or operator: retire a grant-token key
	ComponentDispatchType                     // operator: create one run of a dispatched component with its input
	MemoryExpireType                          // runtime: end memory records past their expiry
	MemoryDeprecateType                       // operator: deprecate a memory record
	MemoryInvalidateType                      // operator: invalidate a memory record and what was derived from it

	// maxMessageType is one past the last known type.
	maxMessageType
)

var messageTypeNames = [...]string{
	ComponentPutType:       "component.put",
	ComponentDeleteType:    "component.delete",
	RunsCreateType:         "runs.create",
	RunTransitionType:      "run.transition",
	NodeRegisterType:       "node.register",
	NodeStatusType:         "node.status",
	ComponentFailType:      "component.fail",
	RunsNoteType:           "runs.note",
	BatchType:              "batch",
	ClusterInitType:        "cluster.init",
	ACLBootstrapType:       "acl.bootstrap",
	ACLPolicyPutType:       "acl.policy.put",
	ACLPolicyDeleteType:    "acl.policy.delete",
	ACLTokenCreateType:     "acl.token.create",
	ACLTokenDeleteType:     "acl.token.delete",
	DigestMarkType:         "digest.mark",
	AlarmRaiseType:         "alarm.raise",
	AlarmClearType:         "alarm.clear",
	StateGCType:            "state.gc",
	GrantRequestType:       "grant.request",
	GrantApproveType:       "grant.approve",
	GrantDenyType:          "grant.deny",
	GrantRevokeType:        "grant.revoke",
	GrantExpireType:        "grant.expire",
	GrantReleaseType:       "grant.release",
	GrantUseType:           "grant.use",
	SigningKeyRegisterType: "signing.key.register",
	SigningKeyRetireType:   "signing.key.retire",
	ComponentDispatchType:  "component.dispatch",
	MemoryExpireType:       "memory.expire",
	MemoryDeprecateType:    "memory.deprecate",
	MemoryInvalidateType:   "memory.invalidate",
}

// String returns the type's stable name, used in events and metrics.
func (t MessageType) String() string {
	if t > 0 && t < maxMessageType {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Command body versions. Version 1 is JSON ({"header":H,"body":B}); version
// 2 is the binary encoding of wire.go, several times cheaper to decode on
// every server and on replay; version 3 is the same encoding and adds the
// command types from ClusterInitType on (cluster id and ACLs); version 4
// appends a CRC-32C of every byte before it, so a damaged entry is found
// (ErrCorrupt) instead of applied; version 5 is version 4 and adds the
// digest mark and alarm types (alarm.go); version 6 is version 5 and adds
// state.gc (gc.go); version 7 adds capabilities to specs, the deployer to
// components and the grant types (grant.go). A server reads every version up
// to BodyVersion; the leader writes the newest one
// every server of the cluster reads (EncodeVersion), and refuses a command
// type some server could not read.
const (
	bodyVersionJSON   = 1
	bodyVersionBinary = 2
	bodyVersionACL    = 3
	bodyVersionCRC    = 4
	// BodyVersion is the version of the command body encoding this server
	// writes and the newest it reads.
	BodyVersion = 8

	bodyVersionAlarm  = 5
	bodyVersionGC     = 6
	bodyVersionGrants = 7
	bodyVersionMemory = 8
)

// crcTable is CRC-32C (Castagnoli), as etcd's WAL uses.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendCRC appends the CRC-32C of b to b.
func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// checkCRC verifies and strips the trailing CRC-32C of an entry.
func checkCRC(what string, b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%s: %d bytes, too short for its checksum: %w", what, len(b), ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, fmt.Errorf("%s: checksum %08x, the bytes hash to %08x: %w", what, sum, got, ErrCorrupt)
	}
	return body, nil
}

// bodyNeeds is the oldest body version that can carry what a body holds,
// beyond its type's (MinBodyVersion), and what that is.
func bodyNeeds(body any) (int, string) {
	switch b := body.(type) {
	case *ComponentPutRequest:
		if b.Spec.hasV8() {
			return bodyVersionMemory, "dispatch, memory, reads and budgets"
		}
		if len(b.Spec.Capabilities) > 0 {
			return bodyVersionGrants, "capabilities"
		}
	case *RunTransitionRequest:
		for i := range b.Transitions {
			if len(b.Transitions[i].Reads) > 0 || len(b.Transitions[i].Cost) > 0 {
				return bodyVersionMemory, "reported reads and costs"
			}
		}
	}
	return 0, ""
}

// MinBodyVersion is the oldest body version that can carry commands of type
// t: a cluster whose servers do not all read it cannot accept them.
func MinBodyVersion(t MessageType) int {
	switch {
	case t >= ComponentDispatchType:
		return bodyVersionMemory
	case t >= GrantRequestType:
		return bodyVersionGrants
	case t >= StateGCType:
		return bodyVersionGC
	case t >= DigestMarkType:
		return bodyVersionAlarm
	case t >= ClusterInitType:
		return bodyVersionACL
	}
	return bodyVersionJSON
}

// Header is carried by every command.
type Header struct {
	// Actor is the principal: "operator:<name>", "agent:<node>" or "runtime".
	Actor string `json:"actor"`
	// Purpose is the declared intent, recorded in the event.
	Purpose string `json:"purpose,omitempty"`
	// Time is the leader's clock (unix nanos) when it proposed the command.
	// It is the only time the state machine knows.
	Time int64 `json:"time"`
	// Node is the node id of an agent command (it must match the actor).
	Node string `json:"node,omitempty"`
}

// ComponentPutRequest creates or updates a component.
type ComponentPutRequest struct {
	Spec Spec `json:"spec"`
	// CAS, when set, is the generation the caller last saw; 0 means
	// "create only". A mismatch is rejected with ErrConflict.
	CAS *uint64 `json:"cas,omitempty"`
}

// ComponentDeleteRequest stops a component: its runs are ended by the
// runtime and it stays listed as stopped, with its history.
type ComponentDeleteRequest struct {
	Name string  `json:"name"`
	CAS  *uint64 `json:"cas,omitempty"`
}

// NewRun asks for one run of a component slot.
type NewRun struct {
	Component  string `json:"component"`
	Generation uint64 `json:"generation"`
	Slot       int    `json:"slot"`
	Attempt    int    `json:"attempt,omitempty"`
	NotBefore  int64  `json:"not_before,omitempty"`
}

// RunsCreateRequest creates runs in state CREATED. Items are applied
// independently.
type RunsCreateRequest struct {
	Runs []NewRun `json:"runs"`
}

// Transition moves one run to a new state.
type Transition struct {
	Run string   `json:"run"`
	To  RunState `json:"to"`
	// Epoch must equal the run's epoch for agent transitions (fencing).
	Epoch  uint64 `json:"epoch,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Node is the placement target of CREATED → PROVISIONED.
	Node string `json:"node,omitempty"`
	// Output is the result of a finite run (EXECUTING → VALIDATING).
	Output string `json:"output,omitempty"`
	// Reads and Cost (body version 8 on) are what an agent reports with the
	// end of an execution (into VALIDATING or ABORTED): the record versions
	// the run read and what it spent.
	Reads []MemoryRef       `json:"reads,omitempty"`
	Cost  map[string]uint64 `json:"cost,omitempty"`
}

// RunTransitionRequest moves runs along the lifecycle. Items are applied
// independently, so one agent report or one placement batch is one entry.
type RunTransitionRequest struct {
	Transitions []Transition `json:"transitions"`
}

// NodeRegisterRequest registers an agent's node, or refreshes its address,
// labels and plugin catalogue. A registered node becomes ready.
type NodeRegisterRequest struct {
	Node Node `json:"node"`
}

// NodeStatusRequest changes a node's status.
type NodeStatusRequest struct {
	ID     string     `json:"id"`
	Status NodeStatus `json:"status"`
	Reason string     `json:"reason,omitempty"`
	// DrainDeadline applies to draining (leader time, unix nanos; 0: none).
	DrainDeadline int64 `json:"drain_deadline,omitempty"`
}

// RunNote records why a CREATED run is waiting.
type RunNote struct {
	Run    string `json:"run"`
	Reason string `json:"reason"`
}

// RunsNoteRequest records, for CREATED runs, why they are not placed. It
// changes no run's state; items are applied independently.
type RunsNoteRequest struct {
	Notes []RunNote `json:"notes"`
}

// ComponentFailRequest marks a component failed: its latest runs exhausted
// the restart policy. It applies only at the named generation.
type ComponentFailRequest struct {
	Name       string `json:"name"`
	Generation uint64 `json:"generation"`
	Reason     string `json:"reason"`
}

// Command is a decoded log entry.
type Command struct {
	Type   MessageType
	Header Header
	// Body is a pointer to the request type of Type.
	Body any
	// Version is the body version the entry was written in.
	Version int
}

// newBody returns a fresh body value for a type, or nil if unknown.
func newBody(t MessageType) any {
	switch t {
	case ComponentPutType:
		return &ComponentPutRequest{}
	case ComponentDeleteType:
		return &ComponentDeleteRequest{}
	case RunsCreateType:
		return &RunsCreateRequest{}
	case RunTransitionType:
		return &RunTransitionRequest{}
	case NodeRegisterType:
		return &NodeRegisterRequest{}
	case NodeStatusType:
		return &NodeStatusRequest{}
	case ComponentFailType:
		return &ComponentFailRequest{}
	case RunsNoteType:
		return &RunsNoteRequest{}
	case BatchType:
		return &BatchRequest{}
	case ClusterInitType:
		return &ClusterInitRequest{}
	case ACLBootstrapType:
		return &ACLBootstrapRequest{}
	case ACLPolicyPutType:
		return &ACLPolicyPutRequest{}
	case ACLPolicyDeleteType:
		return &ACLPolicyDeleteRequest{}
	case ACLTokenCreateType:
		return &ACLTokenCreateRequest{}
	case ACLTokenDeleteType:
		return &ACLTokenDeleteRequest{}
	case DigestMarkType:
		return &DigestMarkRequest{}
	case AlarmRaiseType:
		return &AlarmRaiseRequest{}
	case AlarmClearType:
		return &AlarmClearRequest{}
	case StateGCType:
		return &StateGCRequest{}
	case GrantRequestType:
		return &GrantRequestRequest{}
	case GrantApproveType:
		return &GrantApproveRequest{}
	case GrantDenyType, GrantRevokeType:
		return &GrantEndRequest{}
	case GrantExpireType:
		return &GrantExpireRequest{}
	case GrantReleaseType:
		return &GrantReleaseRequest{}
	case GrantUseType:
		return &GrantUseRequest{}
	case SigningKeyRegisterType:
		return &SigningKeyRegisterRequest{}
	case SigningKeyRetireType:
		return &SigningKeyRetireRequest{}
	case ComponentDispatchType:
		return &ComponentDispatchRequest{}
	case MemoryExpireType:
		return &MemoryExpireRequest{}
	case MemoryDeprecateType, MemoryInvalidateType:
		return &MemoryEndRequest{}
	}
	return nil
}

type envelope struct {
	Header Header          `json:"header"`
	Body   json.RawMessage `json:"body"`
}

// Encode returns the log entry for a command: its type byte, the body
// version byte (BodyVersion), then the binary encoding (wire.go) of header
// and body.
func Encode(t MessageType, h Header, body any) ([]byte, error) {
	return encodeBinary(t, h, body, BodyVersion)
}

// EncodeVersion encodes a command in the newest body version that servers
// reading up to readVersion read: JSON for 1, binary otherwise. A command
// type newer than readVersion is refused with ErrUnsupportedVersion.
func EncodeVersion(readVersion int, t MessageType, h Header, body any) ([]byte, error) {
	if min := MinBodyVersion(t); readVersion < min {
		return nil, fmt.Errorf("encode %s: a server of the cluster reads command bodies up to version %d, and %s needs %d: upgrade every server first: %w", t, readVersion, t, min, ErrUnsupportedVersion)
	}
	if need, what := bodyNeeds(body); readVersion < need {
		return nil, fmt.Errorf("encode %s: a server of the cluster reads command bodies up to version %d, and %s need %d: upgrade every server first: %w", t, readVersion, what, need, ErrUnsupportedVersion)
	}
	switch {
	case readVersion <= bodyVersionJSON:
		return EncodeJSON(t, h, body)
	case readVersion < BodyVersion:
		return encodeBinary(t, h, body, byte(readVersion))
	}
	return Encode(t, h, body)
}

func encodeBinary(t MessageType, h Header, body any, version byte) ([]byte, error) {
	if t == BatchType {
		return nil, fmt.Errorf("encode batch: use EncodeBatch: %w", ErrInvalid)
	}
	want := newBody(t)
	if want == nil {
		return nil, fmt.Errorf("encode command type %d: %w", t, ErrUnknownType)
	}
	if reflect.TypeOf(body) != reflect.TypeOf(want) {
		return nil, fmt.Errorf("encode %s: body is %T, want %T: %w", t, body, want, ErrInvalid)
	}
	e := encoder{b: make([]byte, 0, 256), version: int(version)}
	e.b = append(e.b, byte(t), version)
	putHeader(&e, &h)
	putBody(&e, body)
	if version >= bodyVersionCRC {
		e.b = appendCRC(e.b)
	}
	return e.b, nil
}

// EncodeJSON returns the log entry for a command in body version 1: the
// JSON encoding of {"header":H,"body":B}. Servers write version 2; this
// stays so that tests can produce the entries older servers wrote.
func EncodeJSON(t MessageType, h Header, body any) ([]byte, error) {
	if t == BatchType || newBody(t) == nil {
		return nil, fmt.Errorf("encode command type %d as JSON: %w", t, ErrUnknownType)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %v: %w", t, err, ErrInvalid)
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode %s header: %v: %w", t, err, ErrInvalid)
	}
	// The envelope {"header":H,"body":B}, written by hand: marshalling it
	// would re-scan the body, which json.Marshal already made compact.
	out := make([]byte, 0, 2+len(`{"header":,"body":}`)+len(hb)+len(raw))
	out = append(out, byte(t), bodyVersionJSON)
	out = append(out, `{"header":`...)
	out = append(out, hb...)
	out = append(out, `,"body":`...)
	out = append(out, raw...)
	return append(out, '}'), nil
}

// Decode parses a log entry written by Encode or EncodeJSON. Unknown types,
// newer body versions, unknown fields and trailing data are errors.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return Command{}, fmt.Errorf("decode command: %d bytes, want at least 2: %w", len(b), ErrMalformed)
	}
	t := MessageType(b[0])
	if b[1] >= bodyVersionCRC && b[1] <= BodyVersion && t != BatchType {
		// The checksum covers the type byte too: check it before anything
		// is read, so a flipped byte is a damaged entry, not a rejection.
		if _, err := checkCRC("decode entry", b); err != nil {
			return Command{}, err
		}
	}
	body := newBody(t)
	if body == nil {
		return Command{}, fmt.Errorf("decode command: type %d: %w", b[0], ErrUnknownType)
	}
	if t == BatchType {
		cmds, err := decodeBatch(b)
		if err != nil {
			return Command{}, err
		}
		return Command{Type: t, Body: &BatchRequest{Commands: cmds}}, nil
	}
	if v := int(b[1]); v >= bodyVersionJSON && v <= BodyVersion && v < MinBodyVersion(t) {
		return Command{}, fmt.Errorf("decode %s: body version %d cannot carry it (needs %d): %w", t, v, MinBodyVersion(t), ErrMalformed)
	}
	switch v := b[1]; v {
	case bodyVersionBinary, bodyVersionACL, bodyVersionCRC, bodyVersionAlarm, bodyVersionGC, bodyVersionGrants, BodyVersion:
		payload := b
		if v >= bodyVersionCRC {
			payload = b[:len(b)-4] // checked above
		}
		d := decoder{b: payload[2:], version: int(v)}
		var h Header
		getHeader(&d, &h)
		getBody(&d, body)
		if err := d.done(); err != nil {
			return Command{}, fmt.Errorf("decode %s: %w", t, err)
		}
		return Command{Type: t, Header: h, Body: body, Version: int(v)}, nil
	case bodyVersionJSON:
	default:
		return Command{}, fmt.Errorf("decode %s: body version %d, this server reads 1 to %d: %w", t, v, BodyVersion, ErrUnsupportedVersion)
	}
	var env envelope
	if err := strictUnmarshal(b[2:], &env); err != nil {
		return Command{}, fmt.Errorf("decode %s envelope: %w", t, err)
	}
	if len(env.Body) == 0 {
		return Command{}, fmt.Errorf("decode %s: missing body: %w", t, ErrMalformed)
	}
	if err := strictUnmarshal(env.Body, body); err != nil {
		return Command{}, fmt.Errorf("decode %s body: %w", t, err)
	}
	return Command{Type: t, Header: env.Header, Body: body, Version: bodyVersionJSON}, nil
}

// strictUnmarshal decodes exactly one JSON value with no unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after JSON value", ErrMalformed)
	}
	return nil
}

// CheckEntry verifies the checksum a log entry carries (body version 4 on,
// batch framing 2) without decoding it, for a store that wants to refuse
// damaged bytes as it reads or receives them. Entries of older encodings
// carry none and pass; what else is wrong with an entry is for Decode.
func CheckEntry(b []byte) error {
	switch {
	case len(b) < 2:
		return nil
	case MessageType(b[0]) == BatchType && b[1] == batchVersionChecked:
		_, err := checkCRC("check batch entry", b)
		return err
	case MessageType(b[0]) != BatchType && b[1] >= bodyVersionCRC && b[1] <= BodyVersion:
		_, err := checkCRC("check entry", b)
		return err
	}
	return nil
}

// EntryBodyVersion is the newest command body version a log entry carries
// (the newest of a batch's commands), or 0 for bytes that are no entry
// this server reads. It decodes no body and checks no checksum.
func EntryBodyVersion(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	if MessageType(b[0]) != BatchType {
		if v := int(b[1]); v >= bodyVersionJSON && v <= BodyVersion {
			return v
		}
		return 0
	}
	cmds, err := decodeBatch(b)
	if err != nil {
		return 0
	}
	v := 0
	for _, c := range cmds {
		if len(c) >= 2 && MessageType(c[0]) != BatchType {
			v = max(v, EntryBodyVersion(c))
		}
	}
	return v
}
