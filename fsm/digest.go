package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Digest returns the sha256 of the canonical encoding of the whole state:
// components, nodes and runs sorted by key, each as its (binary) snapshot record,
// followed by the event count and the chain head. Two states that applied the
// same log to the same index have the same digest.
func (s *State) Digest() Hash {
	return s.Snapshot().Digest()
}

// Digest returns the digest of the state the snapshot captured. Computing it
// does not touch the live state, so a caller may do it outside its lock.
func (snap *Snapshot) Digest() Hash {
	snap.sort()
	d, err := snap.digest()
	if err != nil {
		// The records are this package's own plain structs; encoding them
		// cannot fail. A zero digest will never match a peer's.
		return Hash{}
	}
	return d
}

func (snap *Snapshot) digest() (Hash, error) {
	e := encoder{digest: true}
	return snap.digestWith("ice-state-v2", func(kind byte, v any) ([]byte, error) {
		e.b = e.b[:0]
		switch r := v.(type) {
		case *Component:
			putComponent(&e, r)
		case *Node:
			putNode(&e, r)
		case *Run:
			putRun(&e, r)
		case *ACLPolicy:
			putACLPolicy(&e, r)
		case *ACLToken:
			putACLToken(&e, r)
		case *Alarm:
			putAlarm(&e, r)
		case *clusterRecord:
			e.str(r.ID)
			e.uvarint(r.ACLBootstrap)
		case *SnapshotMeta:
			putGCMeta(&e, r)
		case *Grant:
			putGrantRecord(&e, r)
		case *SigningKey:
			putSigningKey(&e, r)
		case *MemoryRecord:
			putMemoryRecord(&e, r)
		}
		return e.b, nil
	})
}

// digestV1 is the digest snapshot version 1 recorded: the same walk with
// each record as JSON. Restore checks a version 1 snapshot against it.
func (snap *Snapshot) digestV1() (Hash, error) {
	return snap.digestWith("ice-state-v1", func(kind byte, v any) ([]byte, error) {
		body, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("digest record kind %d: %w", kind, err)
		}
		return body, nil
	})
}

// digestWith hashes the records, each as encode returns it, framed as in a
// snapshot, after a prefix that names the encoding.
func (snap *Snapshot) digestWith(prefix string, encode func(kind byte, v any) ([]byte, error)) (Hash, error) {
	h := sha256.New()
	var buf []byte
	write := func(kind byte, v any) error {
		body, err := encode(kind, v)
		if err != nil {
			return err
		}
		buf = append(buf[:0], kind)
		buf = binary.AppendUvarint(buf, uint64(len(body)))
		h.Write(buf)
		h.Write(body)
		return nil
	}
	h.Write([]byte(prefix))
	for _, c := range snap.components {
		if err := write(recordComponent, c); err != nil {
			return Hash{}, err
		}
	}
	for _, n := range snap.nodes {
		if err := write(recordNode, n); err != nil {
			return Hash{}, err
		}
	}
	for _, r := range snap.runs {
		if err := write(recordRun, r); err != nil {
			return Hash{}, err
		}
	}
	// ACL data enters the digest only when there is some, so that the
	// digest of a state without it is the one older builds compute.
	if snap.hasACLData() {
		if err := write(recordCluster, &clusterRecord{snap.meta.ClusterID, snap.meta.ACLBootstrap}); err != nil {
			return Hash{}, err
		}
		for _, p := range snap.policies {
			if err := write(recordPolicy, p); err != nil {
				return Hash{}, err
			}
		}
		for _, t := range snap.tokens {
			if err := write(recordToken, t); err != nil {
				return Hash{}, err
			}
		}
	}
	// Alarms likewise enter only when there are some.
	for _, a := range snap.alarms {
		if err := write(recordAlarm, a); err != nil {
			return Hash{}, err
		}
	}
	// Grants likewise.
	for _, g := range snap.grants {
		if err := write(recordGrant, g); err != nil {
			return Hash{}, err
		}
	}
	for _, k := range snap.signingKeys {
		if err := write(recordSigningKey, k); err != nil {
			return Hash{}, err
		}
	}
	// Memory records likewise.
	for _, m := range snap.memory {
		if err := write(recordMemory, m); err != nil {
			return Hash{}, err
		}
	}
	// The checkpoint and the last collection likewise, once there are any.
	if snap.hasGCData() {
		if err := write(recordGC, &snap.meta); err != nil {
			return Hash{}, err
		}
	}
	buf = binary.AppendUvarint(buf[:0], snap.events.total())
	h.Write(buf)
	h.Write(snap.meta.Head[:])
	var out Hash
	h.Sum(out[:0])
	return out, nil
}
