package fsm

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Signing keys are the public halves of the servers' grant-token keys.
// Each server keeps its private key in its own data dir; only the public
// key enters the replicated state, so that any server can tell whether a
// token was signed by a server of the cluster, and no private key is ever
// in the log, a snapshot or an archive.
//
// Lifecycle of a signing key, with its authority:
//
//	from     command               actor              to
//	none     signing.key.register  runtime            active (the server's
//	                                                  older active keys retire)
//	active   signing.key.register  runtime            (refused: ErrConflict)
//	active   signing.key.retire    runtime, operator  retired
//	retired  signing.key.retire    runtime, operator  (refused: ErrConflict)
//
// Retired keys stay listed: tokens they signed verify until they expire.

// SigningKeyStatus is where a signing key is in its lifecycle.
type SigningKeyStatus string

// Signing key statuses.
const (
	SigningKeyActive  SigningKeyStatus = "active"
	SigningKeyRetired SigningKeyStatus = "retired"
)

// SigningKey is a server's public grant-token key.
type SigningKey struct {
	// ID is the key id tokens name (SigningKeyID of Public).
	ID     string           `json:"id"`
	Server string           `json:"server"`
	Public []byte           `json:"public"`
	Status SigningKeyStatus `json:"status"`
	Reason string           `json:"reason,omitempty"`

	CreateIndex uint64 `json:"create_index"`
	CreateTime  int64  `json:"create_time"`
	RetireIndex uint64 `json:"retire_index,omitempty"`
	RetireTime  int64  `json:"retire_time,omitempty"`
}

// SigningKeyRegisterRequest registers a server's public key (ID, Server
// and Public; Apply sets the rest).
type SigningKeyRegisterRequest struct {
	Key SigningKey `json:"key"`
}

// SigningKeyRetireRequest retires a key.
type SigningKeyRetireRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// maxSigningKeys bounds the keys the state holds; the oldest retired ones
// go first when a registration would pass it.
const maxSigningKeys = 64

// SigningKeyID is the id of a public key: the first 16 hex digits of its
// sha256.
func SigningKeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SigningKeys returns every key, active and retired, sorted by id.
func (s *State) SigningKeys() []*SigningKey { return sortedValues(s.signingKeys) }

// SigningKey returns a key by id.
func (s *State) SigningKey(id string) (*SigningKey, bool) {
	k, ok := s.signingKeys[id]
	return k, ok
}

func (s *State) applySigningKeyRegister(ctx *applyCtx, req *SigningKeyRegisterRequest) error {
	k := req.Key
	if len(k.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("register signing key: public key of %d bytes, want %d: %w", len(k.Public), ed25519.PublicKeySize, ErrInvalid)
	}
	if err := validName("signing key server", k.Server); err != nil {
		return err
	}
	if want := SigningKeyID(k.Public); k.ID != want {
		return fmt.Errorf("register signing key: id %q, the key's is %q: %w", k.ID, want, ErrInvalid)
	}
	if old, ok := s.signingKeys[k.ID]; ok {
		return fmt.Errorf("register signing key %s: registered at index %d already: %w", k.ID, old.CreateIndex, ErrConflict)
	}
	for _, old := range s.SigningKeys() {
		if old.Server == k.Server && old.Status == SigningKeyActive {
			s.retireKey(ctx, old, "replaced by "+k.ID)
		}
	}
	s.dropOldKeys()
	k.Public = append([]byte(nil), k.Public...)
	k.Status, k.Reason = SigningKeyActive, ""
	k.CreateIndex, k.CreateTime, k.RetireIndex, k.RetireTime = ctx.index, ctx.header.Time, 0, 0
	s.signingKeys[k.ID] = &k
	s.emit(ctx, "signing.key.register", k.ID, "", &struct {
		Server string `json:"server"`
	}{k.Server})
	return nil
}

func (s *State) applySigningKeyRetire(ctx *applyCtx, req *SigningKeyRetireRequest) error {
	if len(req.Reason) > maxReasonLen {
		return fmt.Errorf("retire signing key: reason longer than %d bytes: %w", maxReasonLen, ErrInvalid)
	}
	old, ok := s.signingKeys[req.ID]
	if !ok {
		return fmt.Errorf("retire signing key %q: %w", req.ID, ErrNotFound)
	}
	if old.Status != SigningKeyActive {
		return fmt.Errorf("retire signing key %s: it is %s: %w", req.ID, old.Status, ErrConflict)
	}
	s.retireKey(ctx, old, req.Reason)
	return nil
}

// retireKey stores a retired copy of k and emits its event.
func (s *State) retireKey(ctx *applyCtx, k *SigningKey, reason string) {
	r := *k
	r.Status, r.Reason = SigningKeyRetired, reason
	r.RetireIndex, r.RetireTime = ctx.index, ctx.header.Time
	s.signingKeys[r.ID] = &r
	s.emit(ctx, "signing.key.retire", r.ID, "", &struct {
		Server string `json:"server"`
		Reason string `json:"reason,omitempty"`
	}{r.Server, reason})
}

// dropOldKeys removes the oldest retired keys while the state holds
// maxSigningKeys or more, making room for one more.
func (s *State) dropOldKeys() {
	for len(s.signingKeys) >= maxSigningKeys {
		var oldest *SigningKey
		for _, k := range s.SigningKeys() {
			if k.Status == SigningKeyRetired && (oldest == nil || k.RetireIndex < oldest.RetireIndex) {
				oldest = k
			}
		}
		if oldest == nil {
			return
		}
		delete(s.signingKeys, oldest.ID)
	}
}

// putSigningKey and getSigningKey are the binary encoding of a key, in
// commands and snapshot records.
func putSigningKey(e *encoder, k *SigningKey) {
	e.str(k.ID)
	e.str(k.Server)
	e.str(string(k.Public))
	e.str(string(k.Status))
	e.str(k.Reason)
	e.uvarint(k.CreateIndex)
	e.varint(k.CreateTime)
	e.uvarint(k.RetireIndex)
	e.varint(k.RetireTime)
}

func getSigningKey(d *decoder, k *SigningKey) {
	k.ID, k.Server = d.str(), d.str()
	if p := d.str(); p != "" {
		k.Public = []byte(p)
	}
	k.Status, k.Reason = SigningKeyStatus(d.str()), d.str()
	k.CreateIndex, k.CreateTime = d.uvarint(), d.varint()
	k.RetireIndex, k.RetireTime = d.uvarint(), d.varint()
}
