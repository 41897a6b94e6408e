package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Hash is a sha256 digest.
type Hash [32]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalJSON encodes the hash as a hex string.
func (h Hash) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }

// UnmarshalJSON decodes a hex string of 64 characters.
func (h *Hash) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode hash: %w", err)
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != len(h) {
		return fmt.Errorf("decode hash %q: want 64 hex characters: %w", s, ErrMalformed)
	}
	copy(h[:], raw)
	return nil
}

// Event is the audit record of one effect of an applied command. Events form
// a hash chain: Hash = sha256(PrevHash || canonical encoding of the event).
type Event struct {
	// Seq numbers events from 1 in the order they were applied.
	Seq   uint64 `json:"seq"`
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	Time  int64  `json:"time"`
	Type  string `json:"type"`
	// Subject is the component name, run id or node id the event is about.
	Subject string `json:"subject"`
	// Component is the component the subject belongs to, if any, so that a
	// component's history can be read without joining runs.
	Component string          `json:"component,omitempty"`
	Actor     string          `json:"actor"`
	Purpose   string          `json:"purpose,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	PrevHash  Hash            `json:"prev_hash"`
	Hash      Hash            `json:"hash"`
}

// canonical appends the event's canonical encoding (every field but the
// hashes, length-prefixed so no two events share an encoding).
func (e *Event) canonical(b []byte) []byte {
	return e.canonicalPayload(b, compactJSON(e.Payload))
}

func (e *Event) canonicalPayload(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, e.Seq)
	return e.canonicalFields(b, payload)
}

// canonicalFields appends the canonical encoding after Seq: what the event
// log stores of each event besides its hash.
func (e *Event) canonicalFields(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, e.Index)
	b = binary.AppendUvarint(b, e.Term)
	b = binary.AppendVarint(b, e.Time)
	for _, s := range []string{e.Type, e.Subject, e.Component, e.Actor, e.Purpose} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// compactJSON returns the payload without insignificant white space, so an
// event re-indented by an API response or a pretty-printer hashes the same.
// The payload as applied is already compact, and is returned as it is.
func compactJSON(p []byte) []byte {
	if !bytes.ContainsAny(p, " \t\r\n") {
		return p
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return p
	}
	return buf.Bytes()
}

// ComputeHash returns sha256(PrevHash || canonical encoding).
func (e *Event) ComputeHash() Hash {
	buf := make([]byte, 0, 256+len(e.Payload))
	buf = append(buf, e.PrevHash[:]...)
	buf = e.canonical(buf)
	return sha256.Sum256(buf)
}

// VerifyChain checks that events link to prev and to each other and that
// every hash matches its content. It returns the head hash.
func VerifyChain(prev Hash, events []Event) (Hash, error) {
	for i := range events {
		e := &events[i]
		if e.PrevHash != prev {
			return prev, fmt.Errorf("verify event %d (index %d): prev_hash %s does not link to %s: %w", e.Seq, e.Index, e.PrevHash, prev, ErrChecksum)
		}
		if h := e.ComputeHash(); h != e.Hash {
			return prev, fmt.Errorf("verify event %d (index %d): hash %s, content hashes to %s: %w", e.Seq, e.Index, e.Hash, h, ErrChecksum)
		}
		prev = e.Hash
	}
	return prev, nil
}
