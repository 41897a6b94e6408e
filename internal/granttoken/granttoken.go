// Package granttoken signs and verifies the short-lived tokens a plugin
// presents to the services it calls, to prove it holds a capability grant:
// JWTs in compact form, signed with Ed25519 (alg EdDSA, RFC 8037), whose
// header names the signing key (kid). The keys are published as a JWKS
// (RFC 7517) by every ICE server: a verifier needs no secret.
//
// It depends on the standard library only, so that a service may vendor it.
package granttoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors Verify returns (wrapped).
var (
	ErrMalformed  = errors.New("malformed grant token")
	ErrUnknownKey = errors.New("grant token signed by an unknown key")
	ErrSignature  = errors.New("grant token signature invalid")
	ErrExpired    = errors.New("grant token expired")
	ErrScope      = errors.New("grant token scope mismatch")
)

// Leeway is the clock skew allowed on a token's issue time (a token issued
// up to this far in the verifier's future still verifies). Expiry gets none.
const Leeway = 30 * time.Second

// maxTokenLen bounds what Verify parses.
const maxTokenLen = 8 << 10

// Alg is the JWS algorithm of every grant token.
const Alg = "EdDSA"

// Claims are what a grant token asserts: a run of a cluster, on a node at
// an epoch, holds grant Grant of scope Scope until Expiry.
type Claims struct {
	Cluster string `json:"cluster"`
	Run     string `json:"run"`
	Node    string `json:"node"`
	Scope   string `json:"scope"`
	Grant   string `json:"grant"`
	Epoch   uint64 `json:"epoch"`
	// IssuedAt and Expiry are unix seconds.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// Issuer is the id of the server that signed.
	Issuer string `json:"iss"`
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid"`
}

// b64 is strict: a token has one encoding (no malleable trailing bits).
var b64 = base64.RawURLEncoding.Strict()

// Sign returns the compact JWS of c, signed with priv, naming kid.
func Sign(priv ed25519.PrivateKey, kid string, c Claims) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign grant token: private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if kid == "" {
		return "", errors.New("sign grant token: empty key id")
	}
	h, err := json.Marshal(header{Alg: Alg, Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("sign grant token: encode header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign grant token: encode claims: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sig := ed25519.Sign(priv, []byte(signing))
	return signing + "." + b64.EncodeToString(sig), nil
}

// Verify checks a token against keys: its structure and algorithm, that
// its key is in the set, its signature, that it has not expired at now
// (and was not issued more than Leeway after now), and that its scope is
// scope ("" accepts any scope). It returns the token's claims.
func Verify(token string, keys KeySet, scope string, now time.Time) (Claims, error) {
	var c Claims
	if len(token) > maxTokenLen {
		return c, fmt.Errorf("verify grant token: %d bytes, at most %d: %w", len(token), maxTokenLen, ErrMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("verify grant token: %d parts, want 3: %w", len(parts), ErrMalformed)
	}
	var h header
	if err := decodePart(parts[0], &h); err != nil {
		return c, fmt.Errorf("verify grant token: header: %w", err)
	}
	if h.Alg != Alg {
		return c, fmt.Errorf("verify grant token: alg %q, want %s: %w", h.Alg, Alg, ErrMalformed)
	}
	pub, ok := keys.lookup(h.Kid)
	if !ok {
		return c, fmt.Errorf("verify grant token: key %q: %w", h.Kid, ErrUnknownKey)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, fmt.Errorf("verify grant token: signature encoding: %w", ErrMalformed)
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return c, fmt.Errorf("verify grant token: key %s: %w", h.Kid, ErrSignature)
	}
	if err := decodePart(parts[1], &c); err != nil {
		return Claims{}, fmt.Errorf("verify grant token: claims: %w", err)
	}
	return c, check(c, scope, now)
}

// check applies the time and scope rules to verified claims.
func check(c Claims, scope string, now time.Time) error {
	switch {
	case c.Expiry <= 0 || c.Scope == "" || c.Grant == "":
		return fmt.Errorf("verify grant token: missing exp, scope or grant: %w", ErrMalformed)
	case now.Unix() >= c.Expiry:
		return fmt.Errorf("verify grant token %s: expired at %s: %w", c.Grant, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339), ErrExpired)
	case c.IssuedAt > now.Add(Leeway).Unix():
		return fmt.Errorf("verify grant token %s: issued at %s, in the future: %w", c.Grant, time.Unix(c.IssuedAt, 0).UTC().Format(time.RFC3339), ErrMalformed)
	case scope != "" && c.Scope != scope:
		return fmt.Errorf("verify grant token %s: scope %q, want %q: %w", c.Grant, c.Scope, scope, ErrScope)
	}
	return nil
}

// decodePart decodes one base64url JSON object (unknown members are
// ignored, as JWT verifiers do, so that claims may be added later).
func decodePart(part string, v any) error {
	raw, err := b64.DecodeString(part)
	if err != nil {
		return fmt.Errorf("base64url: %v: %w", err, ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("JSON: %v: %w", err, ErrMalformed)
	}
	if dec.More() {
		return fmt.Errorf("JSON: trailing data: %w", ErrMalformed)
	}
	return nil
}
