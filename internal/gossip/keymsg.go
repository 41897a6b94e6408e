package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
)

// KeyOp is a keyring operation.
type KeyOp string

// The keyring operations, as `ice operator gossip keyring` names them.
const (
	// OpList answers with the member's keys, primary first.
	OpList KeyOp = "list"
	// OpInstall adds a key to the keyring (it decrypts from then on).
	OpInstall KeyOp = "install"
	// OpUse makes an installed key the primary one (it encrypts from then
	// on).
	OpUse KeyOp = "use"
	// OpRemove drops a key that is not the primary one.
	OpRemove KeyOp = "remove"
)

// ErrInvalidOp is wrapped by the error for an operation that does not exist.
var ErrInvalidOp = errors.New("invalid keyring operation")

// ParseOp returns the operation named s.
func ParseOp(s string) (KeyOp, error) {
	switch op := KeyOp(s); op {
	case OpList, OpInstall, OpUse, OpRemove:
		return op, nil
	}
	return "", fmt.Errorf("keyring operation %q: want list, install, use or remove: %w", s, ErrInvalidOp)
}

// needsKey reports whether the operation takes a key.
func (op KeyOp) needsKey() bool { return op != OpList }

// The first byte of an ICE gossip user message says what it is; a JSON body
// follows. (memberlist delivers user messages whole, over an encrypted TCP
// stream when sent with SendReliable.)
const (
	msgKeyringRequest  byte = 1
	msgKeyringResponse byte = 2
)

// Limits of decoded messages.
const (
	maxRequestIDLen = 64
	maxNameLen      = 256
	maxKeysPerRing  = 64
)

// keyringRequest asks one member to apply a keyring operation and answer to
// From with the request's ID.
type keyringRequest struct {
	ID   string `json:"id"`
	From string `json:"from"`
	Op   KeyOp  `json:"op"`
	// Key is the operation's key (none for list); JSON writes it in base64.
	Key []byte `json:"key,omitempty"`
}

// keyringResponse is one member's answer to a request.
type keyringResponse struct {
	ID     string `json:"id"`
	Member string `json:"member"`
	// Keys are the member's keys, primary first: for list only.
	Keys [][]byte `json:"keys,omitempty"`
	// Error is why the member did not apply the operation ("" when it did).
	Error string `json:"error,omitempty"`
}

func encodeMsg(kind byte, body any) []byte {
	b, _ := json.Marshal(body) // strings and byte slices: cannot fail
	return append([]byte{kind}, b...)
}

// encode returns the user message of the request.
func (r *keyringRequest) encode() []byte { return encodeMsg(msgKeyringRequest, r) }

// encode returns the user message of the response.
func (r *keyringResponse) encode() []byte { return encodeMsg(msgKeyringResponse, r) }

// errMalformedMsg is wrapped by every decoding error.
var errMalformedMsg = errors.New("malformed gossip message")

// decodeMsg splits a user message into its kind and decodes its body into
// the request or the response (the other is nil).
func decodeMsg(b []byte) (*keyringRequest, *keyringResponse, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("empty message: %w", errMalformedMsg)
	}
	switch b[0] {
	case msgKeyringRequest:
		var req keyringRequest
		if err := json.Unmarshal(b[1:], &req); err != nil {
			return nil, nil, fmt.Errorf("keyring request: %v: %w", err, errMalformedMsg)
		}
		if err := req.check(); err != nil {
			return nil, nil, err
		}
		return &req, nil, nil
	case msgKeyringResponse:
		var resp keyringResponse
		if err := json.Unmarshal(b[1:], &resp); err != nil {
			return nil, nil, fmt.Errorf("keyring response: %v: %w", err, errMalformedMsg)
		}
		if err := resp.check(); err != nil {
			return nil, nil, err
		}
		return nil, &resp, nil
	}
	return nil, nil, fmt.Errorf("unknown message kind %d: %w", b[0], errMalformedMsg)
}

func checkIDAndName(what, id, name string) error {
	if id == "" || len(id) > maxRequestIDLen {
		return fmt.Errorf("keyring %s with a request id of %d bytes: %w", what, len(id), errMalformedMsg)
	}
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("keyring %s with a member name of %d bytes: %w", what, len(name), errMalformedMsg)
	}
	return nil
}

func (r *keyringRequest) check() error {
	if err := checkIDAndName("request", r.ID, r.From); err != nil {
		return err
	}
	if _, err := ParseOp(string(r.Op)); err != nil {
		return fmt.Errorf("%w: %w", err, errMalformedMsg)
	}
	if !r.Op.needsKey() {
		if len(r.Key) != 0 {
			return fmt.Errorf("keyring %s request carries a key: %w", r.Op, errMalformedMsg)
		}
		return nil
	}
	if err := checkKey(r.Key); err != nil {
		return fmt.Errorf("keyring %s request: %w: %w", r.Op, err, errMalformedMsg)
	}
	return nil
}

func (r *keyringResponse) check() error {
	if err := checkIDAndName("response", r.ID, r.Member); err != nil {
		return err
	}
	if len(r.Keys) > maxKeysPerRing {
		return fmt.Errorf("keyring response with %d keys: %w", len(r.Keys), errMalformedMsg)
	}
	for _, k := range r.Keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("keyring response: %w: %w", err, errMalformedMsg)
		}
	}
	return nil
}
