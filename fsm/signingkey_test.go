package fsm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
)

// testSigningKey is a deterministic public key for server, numbered n.
func testSigningKey(server string, n byte) SigningKey {
	seed := sha256.Sum256([]byte{n})
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	return SigningKey{ID: SigningKeyID(pub), Server: server, Public: pub}
}

// TestSigningKeyLifecycle: registration, the server's older key retiring
// when it registers a new one, retirement, and what is refused.
func TestSigningKeyLifecycle(t *testing.T) {
	h := newHarness(t)
	k1, k2 := testSigningKey("s1", 1), testSigningKey("s1", 2)
	reg := func(k SigningKey) *Result {
		return h.apply(SigningKeyRegisterType, h.rtHdr(), &SigningKeyRegisterRequest{Key: k})
	}
	h.mustOK(reg(k1))
	if err := reg(k1).Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("registered twice: %v", err)
	}
	bad := k2
	bad.ID = "0000"
	if err := reg(bad).Err; !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong id: %v", err)
	}
	short := k2
	short.Public = short.Public[:10]
	if err := reg(short).Err; !errors.Is(err, ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
	if err := h.apply(SigningKeyRegisterType, h.opHdr(), &SigningKeyRegisterRequest{Key: k2}).Err; !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("an operator registered a key: %v", err)
	}
	res := h.mustOK(reg(k2))
	if res.Events != 2 {
		t.Fatalf("new key of s1: %d events, want the retirement and the registration", res.Events)
	}
	if got, _ := h.st.SigningKey(k1.ID); got.Status != SigningKeyRetired || got.RetireIndex != res.Index {
		t.Fatalf("older key after a new one: %+v", got)
	}
	if err := h.apply(SigningKeyRetireType, h.opHdr(), &SigningKeyRetireRequest{ID: k1.ID}).Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("retired twice: %v", err)
	}
	h.mustOK(h.apply(SigningKeyRetireType, h.opHdr(), &SigningKeyRetireRequest{ID: k2.ID, Reason: "leaked"}))
	if keys := h.st.SigningKeys(); len(keys) != 2 || keys[0].Status != SigningKeyRetired || keys[1].Status != SigningKeyRetired {
		t.Fatalf("keys: %+v", keys)
	}

	var buf bytes.Buffer
	if _, err := h.st.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	st, meta, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), nil)
	if err != nil || meta.SigningKeys != 2 || st.Digest() != h.st.Digest() {
		t.Fatalf("round trip: %v, %d keys", err, meta.SigningKeys)
	}
	if got, _ := st.SigningKey(k2.ID); !bytes.Equal(got.Public, k2.Public) || got.Reason != "leaked" {
		t.Fatalf("restored key: %+v", got)
	}
}

// TestSigningKeysStayBounded: past maxSigningKeys the oldest retired keys
// are dropped.
func TestSigningKeysStayBounded(t *testing.T) {
	h := newHarness(t)
	for i := range 100 {
		h.mustOK(h.apply(SigningKeyRegisterType, h.rtHdr(), &SigningKeyRegisterRequest{Key: testSigningKey("s1", byte(i))}))
	}
	keys := h.st.SigningKeys()
	if len(keys) != maxSigningKeys {
		t.Fatalf("%d keys, want %d", len(keys), maxSigningKeys)
	}
	newest := testSigningKey("s1", 99)
	if k, ok := h.st.SigningKey(newest.ID); !ok || k.Status != SigningKeyActive {
		t.Fatalf("newest key: %+v", k)
	}
	if _, ok := h.st.SigningKey(testSigningKey("s1", 0).ID); ok {
		t.Fatal("the oldest retired key stayed")
	}
}
