package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// eventLog holds the event chain packed into byte chunks instead of as
// Event structs: a state of 100,000 runs has about 400,000 events, and as
// structs with their own payload allocations they were most of its heap and
// of the garbage collector's work. Each event is stored as one record:
//
//	uvarint length | hash (32 bytes) | canonical encoding without Seq
//
// The canonical encoding is the one the hash covers (see Event.canonical),
// so Seq, implied by the position, and PrevHash, the hash of the record
// before, are not stored; verifying a record re-hashes its bytes without
// decoding them, and a snapshot writes the records as they are.
//
// The log is append-only and chunks are never reallocated or resized (a
// full chunk is followed by a new one; the slice headers in chunks are
// never written again), so a view taken by Snapshot reads its prefix while
// Apply appends, without locks or copies.
type eventLog struct {
	// base is the number of events before the first one held (released
	// to the archive, see gc.go), baseHash the hash of event base (the
	// zero hash when base is 0): the link of the first event held.
	base     uint64
	baseHash Hash

	chunks [][]byte
	// used is how many bytes of the last chunk hold records.
	used int
	// offs locates event i: chunk number << 32 | offset in the chunk.
	offs []uint64
	// scratch is reused to hash a record being appended.
	scratch []byte
}

const (
	eventChunkMin = 4 << 10
	eventChunkMax = 1 << 20
	// eventRecordMin is the size of the smallest record body: the hash,
	// and at least one byte for each of the ten fields after it.
	eventRecordMin = sha256.Size + 10
)

// len returns the number of events held; positions 0..len-1 are events
// base+1..base+len.
func (l *eventLog) len() int { return len(l.offs) }

// total returns the number of events in the chain, held or not: the Seq
// of the newest.
func (l *eventLog) total() uint64 { return l.base + uint64(len(l.offs)) }

// view returns a read-only copy of the log as it is now, safe to read
// while l keeps appending.
func (l *eventLog) view() eventLog {
	return eventLog{base: l.base, baseHash: l.baseHash, chunks: l.chunks[:len(l.chunks):len(l.chunks)], offs: l.offs[:len(l.offs):len(l.offs)]}
}

// viewFrom returns a read-only view of the events after seq (base <= seq
// <= total), sharing l's memory.
func (l *eventLog) viewFrom(seq uint64) eventLog {
	v := l.view()
	if k := int(seq - l.base); k > 0 {
		v.baseHash = l.hash(k - 1)
		v.offs = v.offs[k:]
		v.base = seq
	}
	return v
}

// release drops the events through seq (base < seq <= total) from memory,
// and the chunks that held only them. Views taken before keep their own
// slices, so they go on reading what they saw.
func (l *eventLog) release(seq uint64) {
	k := int(seq - l.base)
	if k <= 0 || k > len(l.offs) {
		return
	}
	l.baseHash = l.hash(k - 1)
	l.base = seq
	drop := len(l.chunks) - 1 // when nothing is left, keep the last chunk
	if k < len(l.offs) {
		drop = int(l.offs[k] >> 32)
	}
	offs := make([]uint64, len(l.offs)-k, max(len(l.offs)-k, 1024))
	for i := range offs {
		offs[i] = l.offs[k+i] - uint64(drop)<<32
	}
	l.offs = offs
	l.chunks = append([][]byte(nil), l.chunks[drop:]...)
}

// reserve returns room for a record body of n bytes, preceded by its
// length, and records its position.
func (l *eventLog) reserve(n int) []byte {
	need := uvarintLen(uint64(n)) + n
	last := len(l.chunks) - 1
	if last < 0 || len(l.chunks[last])-l.used < need {
		size := eventChunkMin
		if last >= 0 {
			size = min(2*len(l.chunks[last]), eventChunkMax)
		}
		l.chunks = append(l.chunks, make([]byte, max(size, need)))
		l.used = 0
		last++
	}
	l.offs = append(l.offs, uint64(last)<<32|uint64(l.used))
	c := l.chunks[last][l.used : l.used+need]
	k := binary.PutUvarint(c, uint64(n))
	l.used += need
	return c[k:]
}

// uvarintLen is the length of x's uvarint encoding.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// record returns the body of event i (0-based): hash and canonical
// encoding without Seq.
func (l *eventLog) record(i int) []byte {
	o := l.offs[i]
	c := l.chunks[o>>32][uint32(o):]
	n, k := binary.Uvarint(c)
	return c[k : k+int(n)]
}

// hash returns the hash of the event at position i, or for i < 0 the hash
// the first event held links to.
func (l *eventLog) hash(i int) Hash {
	if i < 0 {
		return l.baseHash
	}
	var h Hash
	copy(h[:], l.record(i))
	return h
}

// timeOf returns the leader time of the event at position i without
// decoding the rest.
func (l *eventLog) timeOf(i int) int64 {
	d := decoder{b: l.record(i)[sha256.Size:]}
	d.uvarint() // index
	d.uvarint() // term
	return d.varint()
}

// appendEvent appends e, whose Hash is set, as it is. Seq and PrevHash are
// not stored: they are implied by the position.
func (l *eventLog) appendEvent(e *Event) {
	body := l.scratch[:0]
	body = append(body, e.Hash[:]...)
	body = e.canonicalFields(body, compactJSON(e.Payload))
	copy(l.reserve(len(body)), body)
	l.scratch = body
}

// verify re-hashes every record and checks the links; it returns the head.
// It only reads the log, so readers holding a shared lock may run it at
// once.
func (l *eventLog) verify() (Hash, error) {
	prev := l.baseHash
	var buf []byte
	for i := 0; i < l.len(); i++ {
		body := l.record(i)
		buf = append(buf[:0], prev[:]...)
		buf = binary.AppendUvarint(buf, l.base+uint64(i)+1)
		buf = append(buf, body[sha256.Size:]...)
		var h Hash
		copy(h[:], body)
		if Hash(sha256.Sum256(buf)) != h {
			return prev, fmt.Errorf("verify event %d: hash %s does not match its content or does not link to %s: %w", l.base+uint64(i)+1, h, prev, ErrChecksum)
		}
		prev = h
	}
	return prev, nil
}

// emit appends a new event after the current head and returns its hash.
// The payload must be compact JSON.
func (l *eventLog) emit(prev Hash, index, term uint64, time int64, typ, subject, component, actor, purpose string, payload []byte) Hash {
	seq := l.total() + 1
	buf := append(l.scratch[:0], prev[:]...)
	buf = binary.AppendUvarint(buf, seq)
	fields := len(buf)
	e := Event{Index: index, Term: term, Time: time, Type: typ, Subject: subject, Component: component, Actor: actor, Purpose: purpose}
	buf = e.canonicalFields(buf, payload)
	h := Hash(sha256.Sum256(buf))
	body := l.reserve(sha256.Size + len(buf) - fields)
	copy(body, h[:])
	copy(body[sha256.Size:], buf[fields:])
	l.scratch = buf
	return h
}

// appendRecord checks a record body read from a snapshot, that it is well
// formed and that its hash covers its content and links to prev, and
// appends it. It returns the record's hash.
func (l *eventLog) appendRecord(prev Hash, body []byte) (Hash, error) {
	seq := l.total() + 1
	if len(body) < eventRecordMin {
		return prev, fmt.Errorf("event %d: record of %d bytes: %w", seq, len(body), ErrMalformed)
	}
	if _, err := parseEvent(body, seq, prev, false); err != nil {
		return prev, err
	}
	buf := append(l.scratch[:0], prev[:]...)
	buf = binary.AppendUvarint(buf, seq)
	buf = append(buf, body[sha256.Size:]...)
	l.scratch = buf
	var h Hash
	copy(h[:], body)
	if Hash(sha256.Sum256(buf)) != h {
		return prev, fmt.Errorf("verify event %d: hash %s does not match its content: %w", seq, h, ErrChecksum)
	}
	copy(l.reserve(len(body)), body)
	return h, nil
}

// appendJSON appends an event from a version 1 snapshot (JSON), after
// checking its sequence number, link and hash.
func (l *eventLog) appendJSON(prev Hash, body []byte) (Hash, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return prev, fmt.Errorf("decode event: %w: %v", ErrMalformed, err)
	}
	if seq := l.total() + 1; e.Seq != seq {
		return prev, fmt.Errorf("verify event %d: it has seq %d: the chain has a gap or a repeat: %w", seq, e.Seq, ErrChecksum)
	}
	if e.PrevHash != prev {
		return prev, fmt.Errorf("verify event %d (index %d): prev_hash %s does not link to %s: %w", e.Seq, e.Index, e.PrevHash, prev, ErrChecksum)
	}
	if h := e.ComputeHash(); h != e.Hash {
		return prev, fmt.Errorf("verify event %d (index %d): hash %s, content hashes to %s: %w", e.Seq, e.Index, e.Hash, h, ErrChecksum)
	}
	l.appendEvent(&e)
	return e.Hash, nil
}

// event decodes event i. Its Payload shares the log's memory, which is
// never modified.
func (l *eventLog) event(i int) Event {
	seq := l.base + uint64(i) + 1
	e, err := parseEvent(l.record(i), seq, l.hash(i-1), true)
	if err != nil {
		// Records are checked when appended; this cannot happen.
		return Event{Seq: seq, Type: "corrupt", Purpose: err.Error()}
	}
	return e
}

// indexOf returns the Raft index of event i without decoding the rest.
func (l *eventLog) indexOf(i int) uint64 {
	d := decoder{b: l.record(i)[sha256.Size:]}
	return d.uvarint()
}

// componentOf returns the component field of event i without copying it.
func (l *eventLog) componentOf(i int) []byte {
	d := decoder{b: l.record(i)[sha256.Size:]}
	d.uvarint() // index
	d.uvarint() // term
	d.varint()  // time
	d.raw()     // type
	d.raw()     // subject
	return d.raw()
}

// parseEvent decodes a record body. With full false it only checks that
// the body is well formed.
func parseEvent(body []byte, seq uint64, prev Hash, full bool) (Event, error) {
	d := decoder{b: body}
	e := Event{Seq: seq, PrevHash: prev}
	copy(e.Hash[:], d.fixed(sha256.Size))
	e.Index = d.uvarint()
	e.Term = d.uvarint()
	e.Time = d.varint()
	if full {
		e.Type = eventType(d.raw())
		e.Subject = d.str()
		e.Component = d.str()
		e.Actor = d.str()
		e.Purpose = d.str()
		if p := d.raw(); len(p) > 0 {
			e.Payload = p
		}
	} else {
		for i := 0; i < 6; i++ {
			d.raw()
		}
	}
	if err := d.done(); err != nil {
		return Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	return e, nil
}

// eventTypes are the event types Apply emits; decoded events share these
// strings.
var eventTypes = [...]string{
	"component.put", "component.stop", "component.failed", "run.created",
	"run.transition", "run.waiting", "node.registered", "node.status",
}

func eventType(p []byte) string {
	for _, t := range eventTypes {
		if string(p) == t {
			return t
		}
	}
	return string(p)
}
