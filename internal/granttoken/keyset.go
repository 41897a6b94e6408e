package granttoken

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
)

// JWK is one public key of a KeySet: an Ed25519 key (kty OKP, crv
// Ed25519, RFC 8037) whose x is the base64url public key.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	X   string `json:"x"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// KeySet is a JWKS: the keys tokens may be signed with.
type KeySet struct {
	Keys []JWK `json:"keys"`
}

// maxKeySet bounds the JSON ParseKeySet reads.
const maxKeySet = 1 << 20

// NewJWK returns the JWK of an Ed25519 public key named kid.
func NewJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", Kid: kid, X: b64.EncodeToString(pub), Use: "sig", Alg: Alg}
}

// Add appends the key pub named kid.
func (ks *KeySet) Add(kid string, pub ed25519.PublicKey) {
	ks.Keys = append(ks.Keys, NewJWK(kid, pub))
}

// ParseKeySet decodes a JWKS and checks that every key is a usable
// Ed25519 signing key with a distinct kid.
func ParseKeySet(data []byte) (KeySet, error) {
	var ks KeySet
	if len(data) > maxKeySet {
		return ks, fmt.Errorf("parse key set: %d bytes, at most %d: %w", len(data), maxKeySet, ErrMalformed)
	}
	if err := json.Unmarshal(data, &ks); err != nil {
		return KeySet{}, fmt.Errorf("parse key set: %v: %w", err, ErrMalformed)
	}
	seen := map[string]bool{}
	for i, k := range ks.Keys {
		if _, err := k.public(); err != nil {
			return KeySet{}, fmt.Errorf("parse key set: key %d: %w", i, err)
		}
		if seen[k.Kid] {
			return KeySet{}, fmt.Errorf("parse key set: kid %q twice: %w", k.Kid, ErrMalformed)
		}
		seen[k.Kid] = true
	}
	return ks, nil
}

// public returns the key's public key, or why it is not a usable one.
func (k JWK) public() (ed25519.PublicKey, error) {
	switch {
	case k.Kty != "OKP" || k.Crv != "Ed25519":
		return nil, fmt.Errorf("kty %q crv %q, want OKP Ed25519: %w", k.Kty, k.Crv, ErrMalformed)
	case k.Kid == "":
		return nil, fmt.Errorf("empty kid: %w", ErrMalformed)
	case k.Use != "" && k.Use != "sig", k.Alg != "" && k.Alg != Alg:
		return nil, fmt.Errorf("key %s: use %q alg %q, want sig %s: %w", k.Kid, k.Use, k.Alg, Alg, ErrMalformed)
	}
	x, err := b64.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %s: x is not a base64url %d-byte key: %w", k.Kid, ed25519.PublicKeySize, ErrMalformed)
	}
	return ed25519.PublicKey(x), nil
}

// lookup returns the public key named kid.
func (ks KeySet) lookup(kid string) (ed25519.PublicKey, bool) {
	if kid == "" {
		return nil, false
	}
	for _, k := range ks.Keys {
		if k.Kid == kid {
			pub, err := k.public()
			return pub, err == nil
		}
	}
	return nil, false
}
