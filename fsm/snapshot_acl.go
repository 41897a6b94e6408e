package fsm

import "fmt"

// clusterRecord is the cluster id and ACL bootstrap index as the digest
// hashes them (the snapshot stream carries them in its meta).
type clusterRecord struct {
	ID           string `json:"id"`
	ACLBootstrap uint64 `json:"acl_bootstrap"`
}

// hasACLData reports whether the snapshot holds anything of version 3:
// the cluster id, the ACL bootstrap, policies or tokens.
func (snap *Snapshot) hasACLData() bool {
	m := &snap.meta
	return m.ClusterID != "" || m.ACLBootstrap != 0 || len(snap.policies) > 0 || len(snap.tokens) > 0
}

// SnapshotVersionFor is the newest snapshot format a server that reads
// command bodies up to bodyVersion reads: formats came with body versions,
// 1 with 1, 2 with 2, 3 with 3 (and 4, which added only checksums), 4 with
// 5 (alarms), 5 with 6 (the event checkpoint).
func SnapshotVersionFor(bodyVersion int) uint16 {
	switch {
	case bodyVersion >= bodyVersionMemory:
		return 7
	case bodyVersion >= bodyVersionGrants:
		return 6
	case bodyVersion >= bodyVersionGC:
		return 5
	case bodyVersion >= bodyVersionAlarm:
		return 4
	case bodyVersion >= bodyVersionACL:
		return 3
	case bodyVersion >= snapshotBinary:
		return snapshotBinary
	}
	return snapshotJSON
}

// BodyVersionOfSnapshot is the newest command body version every server
// read when a snapshot of the given format was written: a server writes a
// format only once every server reads it (SnapshotVersionFor).
func BodyVersionOfSnapshot(format uint16) int {
	switch {
	case format >= 7:
		return bodyVersionMemory
	case format == 6:
		return bodyVersionGrants
	case format == 5:
		return bodyVersionGC
	case format == 4:
		return bodyVersionAlarm
	case format == 3:
		return bodyVersionACL
	case format == snapshotBinary:
		return bodyVersionBinary
	}
	return bodyVersionJSON
}

// MinVersion is the oldest snapshot format that can hold this snapshot: 4
// once it has alarms, 3 once it has a cluster id or ACL data (every server
// that applied those entries reads that format), 1 before.
func (snap *Snapshot) MinVersion() uint16 {
	if snap.hasMemoryData() {
		return 7
	}
	if snap.hasGrantData() {
		return 6
	}
	if snap.hasGCData() {
		return 5
	}
	if len(snap.alarms) > 0 {
		return 4
	}
	if snap.hasACLData() {
		return 3
	}
	return snapshotJSON
}

// writeACLRecords writes the policy and token records (format 3).
func (snap *Snapshot) writeACLRecords(enc *recordWriter, e *encoder) {
	for _, p := range snap.policies {
		e.b = e.b[:0]
		putACLPolicy(e, p)
		enc.put(recordPolicy, e.b)
	}
	for _, t := range snap.tokens {
		e.b = e.b[:0]
		putACLToken(e, t)
		enc.put(recordToken, e.b)
	}
}

// readACL reads the meta's count of policy and token records, refusing
// duplicates, and rebuilds the index of tokens by secret hash.
func (sr *snapshotReader) readACL() error {
	st := sr.st
	for i := 0; i < sr.meta.Policies; i++ {
		p := &ACLPolicy{}
		if err := sr.decode(recordPolicy, p, func(d *decoder) { getACLPolicy(d, p) }); err != nil {
			return fmt.Errorf("read snapshot policy %d: %w", i, err)
		}
		if _, dup := st.policies[p.Name]; dup {
			return fmt.Errorf("read snapshot: policy %q twice: %w", p.Name, ErrMalformed)
		}
		st.policies[p.Name] = p
		sr.tick()
	}
	for i := 0; i < sr.meta.Tokens; i++ {
		t := &ACLToken{}
		if err := sr.decode(recordToken, t, func(d *decoder) { getACLToken(d, t) }); err != nil {
			return fmt.Errorf("read snapshot token %d: %w", i, err)
		}
		if _, dup := st.tokens[t.AccessorID]; dup {
			return fmt.Errorf("read snapshot: token %q twice: %w", t.AccessorID, ErrMalformed)
		}
		if _, dup := st.tokensByHash[t.SecretHash]; dup {
			return fmt.Errorf("read snapshot: token %q shares its secret hash with another: %w", t.AccessorID, ErrMalformed)
		}
		st.tokens[t.AccessorID] = t
		st.tokensByHash[t.SecretHash] = t.AccessorID
		sr.tick()
	}
	return nil
}
