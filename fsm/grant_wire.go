package fsm

import "fmt"

// The binary encoding of grant commands and grant records (wire.go's
// encoding, body version 7 and snapshot format 6 on).

func putGrantBody(e *encoder, body any) bool {
	switch b := body.(type) {
	case *GrantRequestRequest:
		e.uvarint(uint64(len(b.Requests)))
		for i := range b.Requests {
			a := &b.Requests[i]
			e.str(a.Run)
			e.uvarint(a.Epoch)
			e.str(a.Scope)
			e.str(a.Purpose)
		}
	case *GrantApproveRequest:
		e.str(b.ID)
		e.str(b.Reason)
		e.bool(b.SelfApproval)
	case *GrantEndRequest:
		e.str(b.ID)
		e.str(b.Reason)
	case *GrantExpireRequest:
		e.uvarint(uint64(len(b.IDs)))
		for _, id := range b.IDs {
			e.str(id)
		}
	case *GrantReleaseRequest:
		e.str(b.ID)
		e.uvarint(b.Epoch)
	case *GrantUseRequest:
		e.uvarint(uint64(len(b.Uses)))
		for i := range b.Uses {
			u := &b.Uses[i]
			e.str(u.ID)
			e.uvarint(u.Epoch)
			e.str(u.Detail)
		}
	case *SigningKeyRegisterRequest:
		putSigningKey(e, &b.Key)
	case *SigningKeyRetireRequest:
		e.str(b.ID)
		e.str(b.Reason)
	default:
		return false
	}
	return true
}

func getGrantBody(d *decoder, body any) {
	switch b := body.(type) {
	case *GrantRequestRequest:
		if n := d.count(4); n > 0 {
			b.Requests = make([]GrantAsk, n)
			for i := range b.Requests {
				a := &b.Requests[i]
				a.Run, a.Epoch, a.Scope, a.Purpose = d.str(), d.uvarint(), d.str(), d.str()
			}
		}
	case *GrantApproveRequest:
		b.ID, b.Reason, b.SelfApproval = d.str(), d.str(), d.bool()
	case *GrantEndRequest:
		b.ID, b.Reason = d.str(), d.str()
	case *GrantExpireRequest:
		if n := d.count(1); n > 0 {
			b.IDs = make([]string, n)
			for i := range b.IDs {
				b.IDs[i] = d.str()
			}
		}
	case *GrantReleaseRequest:
		b.ID, b.Epoch = d.str(), d.uvarint()
	case *GrantUseRequest:
		if n := d.count(3); n > 0 {
			b.Uses = make([]GrantUse, n)
			for i := range b.Uses {
				u := &b.Uses[i]
				u.ID, u.Epoch, u.Detail = d.str(), d.uvarint(), d.str()
			}
		}
	case *SigningKeyRegisterRequest:
		getSigningKey(d, &b.Key)
	case *SigningKeyRetireRequest:
		b.ID, b.Reason = d.str(), d.str()
	default:
		d.fail("no binary decoding for %T", body)
	}
}

// putGrant and getGrant are the binary encoding of a grant record.
func putGrantRecord(e *encoder, g *Grant) {
	for _, s := range []string{g.ID, g.Run, g.Component, g.Node} {
		e.str(s)
	}
	e.uvarint(g.Epoch)
	for _, s := range []string{g.Scope, g.Declared, string(g.Effect), g.Purpose, string(g.Status), g.Reason} {
		e.str(s)
	}
	e.int(g.Required)
	e.uvarint(uint64(len(g.Approvals)))
	for i := range g.Approvals {
		a := &g.Approvals[i]
		e.str(a.Operator)
		e.str(a.Reason)
		e.uvarint(a.Index)
		e.varint(a.Time)
	}
	e.varint(g.TTLNanos)
	e.uvarint(g.GrantIndex)
	e.varint(g.GrantTime)
	e.varint(g.ExpireTime)
	e.uvarint(g.Uses)
	e.uvarint(g.EndIndex)
	e.varint(g.EndTime)
	e.uvarint(g.CreateIndex)
	e.varint(g.CreateTime)
	e.uvarint(g.ModifyIndex)
}

func getGrantRecord(d *decoder, g *Grant) {
	g.ID, g.Run, g.Component, g.Node = d.str(), d.str(), d.str(), d.str()
	g.Epoch = d.uvarint()
	g.Scope, g.Declared, g.Effect, g.Purpose = d.str(), d.str(), Effect(d.str()), d.str()
	g.Status, g.Reason = GrantStatus(d.str()), d.str()
	g.Required = d.int()
	if n := d.count(4); n > 0 {
		g.Approvals = make([]Approval, n)
		for i := range g.Approvals {
			a := &g.Approvals[i]
			a.Operator, a.Reason, a.Index, a.Time = d.str(), d.str(), d.uvarint(), d.varint()
		}
	}
	g.TTLNanos = d.varint()
	g.GrantIndex = d.uvarint()
	g.GrantTime = d.varint()
	g.ExpireTime = d.varint()
	g.Uses = d.uvarint()
	g.EndIndex = d.uvarint()
	g.EndTime = d.varint()
	g.CreateIndex = d.uvarint()
	g.CreateTime = d.varint()
	g.ModifyIndex = d.uvarint()
}

// hasGrantData says whether the snapshot holds what only format 6 can:
// grants, declared capabilities, a recorded deployer.
func (snap *Snapshot) hasGrantData() bool {
	if len(snap.grants) > 0 || len(snap.signingKeys) > 0 {
		return true
	}
	for _, c := range snap.components {
		if len(c.Capabilities) > 0 || c.Deployer != "" {
			return true
		}
	}
	return false
}

// writeGrantRecords writes the grant records (format 6).
func (snap *Snapshot) writeGrantRecords(enc *recordWriter, e *encoder) {
	for _, g := range snap.grants {
		e.b = e.b[:0]
		putGrantRecord(e, g)
		enc.put(recordGrant, e.b)
	}
	for _, k := range snap.signingKeys {
		e.b = e.b[:0]
		putSigningKey(e, k)
		enc.put(recordSigningKey, e.b)
	}
}

// readSigningKeys reads the meta's count of signing key records.
func (sr *snapshotReader) readSigningKeys() error {
	for i := 0; i < sr.meta.SigningKeys; i++ {
		k := &SigningKey{}
		if err := sr.decode(recordSigningKey, k, func(d *decoder) { getSigningKey(d, k) }); err != nil {
			return fmt.Errorf("read snapshot signing key %d: %w", i, err)
		}
		if _, dup := sr.st.signingKeys[k.ID]; dup || k.ID != SigningKeyID(k.Public) {
			return fmt.Errorf("read snapshot: signing key %q twice or not its key's id: %w", k.ID, ErrMalformed)
		}
		if k.Status != SigningKeyActive && k.Status != SigningKeyRetired {
			return fmt.Errorf("read snapshot: signing key %s has status %q: %w", k.ID, k.Status, ErrMalformed)
		}
		sr.st.signingKeys[k.ID] = k
		sr.tick()
	}
	return nil
}

// readGrants reads the meta's count of grant records, refusing duplicates
// and grants of runs the snapshot does not hold, and rebuilds the per-run
// index.
func (sr *snapshotReader) readGrants() error {
	for i := 0; i < sr.meta.Grants; i++ {
		g := &Grant{}
		if err := sr.decode(recordGrant, g, func(d *decoder) { getGrantRecord(d, g) }); err != nil {
			return fmt.Errorf("read snapshot grant %d: %w", i, err)
		}
		if _, dup := sr.st.grants[g.ID]; dup || g.ID == "" {
			return fmt.Errorf("read snapshot: grant %q empty or twice: %w", g.ID, ErrMalformed)
		}
		if _, ok := sr.st.runs[g.Run]; !ok {
			return fmt.Errorf("read snapshot: grant %s of run %q the snapshot does not hold: %w", g.ID, g.Run, ErrMalformed)
		}
		switch g.Status {
		case GrantPending, GrantGranted, GrantDenied, GrantExpired, GrantRevoked, GrantReleased:
		default:
			return fmt.Errorf("read snapshot: grant %s has status %q: %w", g.ID, g.Status, ErrMalformed)
		}
		sr.st.putGrant(g)
		sr.tick()
	}
	return nil
}
