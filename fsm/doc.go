// Package fsm is ICE's replicated state machine: the command types and their
// versioned encoding, the closed run lifecycle and the authority table, the
// state they act on, snapshot and restore, the state digest and the event hash
// chain.
//
// Everything that executes in an ICE cluster was authorised by a command that
// this package accepted, and every lifecycle transition of every run is such a
// command. The package therefore owns the single answer to "may this happen?"
// and must give the same answer on every server, for every replay, forever.
//
// # The contract
//
// Apply must be deterministic: the same sequence of (index, term, bytes) given
// to two fresh states yields the same results, the same events and the same
// Digest at every index. To keep that true this package:
//
//   - never reads a clock: time inside the state machine is Header.Time, the
//     time the leader stamped into the command before proposing it;
//   - never uses randomness: run ids are derived from the log index;
//   - never starts goroutines and does no I/O: Snapshot writes to, and Restore
//     reads from, the stream it is handed, nothing else;
//   - never lets map iteration order leak into results, events, digests or
//     snapshots: everything that is emitted is sorted first.
//
// Apply must also be total. A command that cannot be decoded, names an
// unknown type, comes from an actor that may not issue it, or asks for a
// transition the lifecycle does not allow is rejected with an error wrapping
// one of the sentinel errors in errors.go, and the state is left exactly as
// it was: no event, no partial change. Nothing on the network, in the log or
// in a snapshot can make this package panic.
//
// State is not safe for concurrent use; the caller (cluster/) serialises
// Apply, Snapshot and Restore and guards reads. Snapshot must be quick: it
// captures a point-in-time view that shares immutable records with the live
// state (records are replaced, never mutated in place), and the expensive
// encoding happens in Snapshot.WriteTo, which may run concurrently with Apply.
// Restore must discard all previous state, and it replaces the state only
// after the whole stream decoded and its checksum matched.
//
// # Usage
//
//	st := fsm.New()
//	cmd, err := fsm.Encode(fsm.ComponentPutType, fsm.Header{
//		Actor:   "operator:alice",
//		Purpose: "deploy ticker",
//		Time:    stampedUnixNanos,
//	}, &fsm.ComponentPutRequest{Spec: spec})
//	res := st.Apply(index, term, cmd)
//	if res.Err != nil {
//		// rejected; state unchanged
//	}
//	digest := st.Digest()
//
// The lifecycle table (lifecycle.go) and the command authority table
// (authority.go) are data, so that a reader can check them line by line
// against the design.
//
// # Encodings
//
// A log entry is a type byte, a body version byte and the body. Body
// version 2, which servers write, is the binary encoding of wire.go built
// from codec.go's primitives (decoding it is about 15 times cheaper than
// the JSON of version 1, which is still read); group-commit batches frame
// several entries in one (batch.go). The event chain is held packed
// (eventlog.go): each event as its hash and the canonical encoding the hash
// covers, in append-only chunks a snapshot can share. Snapshot format 2
// (snapshot.go) writes records in the binary encoding and events as those
// packed records; format 1 (JSON) is still read. A new field in a record or
// command means a new version, never a silent change: TestWireRoundTrip
// fills every field of every type by reflection to catch one forgotten.
package fsm
