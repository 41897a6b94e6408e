package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// An event record is how the event chain stores one event, in memory, in a
// snapshot and in the archive's segment files: its hash (32 bytes) followed
// by its canonical encoding without Seq (Event.canonicalFields). Seq and
// PrevHash are implied by the record's position in the chain.

// CheckEventRecord checks that body is a well formed event record and that
// its hash covers its content as event seq linked to prev. It returns the
// record's hash, the link for the event after it.
func CheckEventRecord(prev Hash, seq uint64, body []byte) (Hash, error) {
	if len(body) < eventRecordMin {
		return prev, fmt.Errorf("event %d: record of %d bytes: %w", seq, len(body), ErrMalformed)
	}
	if _, err := parseEvent(body, seq, prev, false); err != nil {
		return prev, err
	}
	buf := make([]byte, 0, len(Hash{})+binary.MaxVarintLen64+len(body))
	buf = append(buf, prev[:]...)
	buf = binary.AppendUvarint(buf, seq)
	buf = append(buf, body[sha256.Size:]...)
	var h Hash
	copy(h[:], body)
	if Hash(sha256.Sum256(buf)) != h {
		return prev, fmt.Errorf("verify event %d: hash %s does not match its content or does not link to %s: %w", seq, h, prev, ErrChecksum)
	}
	return h, nil
}

// DecodeEventRecord decodes an event record as event seq linked to prev,
// without checking its hash (CheckEventRecord does). The event's payload
// shares body's memory.
func DecodeEventRecord(prev Hash, seq uint64, body []byte) (Event, error) {
	if len(body) < eventRecordMin {
		return Event{}, fmt.Errorf("event %d: record of %d bytes: %w", seq, len(body), ErrMalformed)
	}
	return parseEvent(body, seq, prev, true)
}

// EventRecordIndex returns the Raft index of an event record without
// decoding the rest (0 if the record is malformed).
func EventRecordIndex(body []byte) uint64 {
	if len(body) < eventRecordMin {
		return 0
	}
	idx, n := binary.Uvarint(body[sha256.Size:])
	if n <= 0 {
		return 0
	}
	return idx
}
