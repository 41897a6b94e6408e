package granttoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

type key struct {
	kid  string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newKey(t *testing.T, kid string) key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key{kid, pub, priv}
}

func keySet(keys ...key) KeySet {
	var ks KeySet
	for _, k := range keys {
		ks.Add(k.kid, k.pub)
	}
	return ks
}

var t0 = time.Unix(1_700_000_000, 0)

func claims() Claims {
	return Claims{Cluster: "c1", Run: "r1", Node: "n1", Scope: "net:http:api", Grant: "g1", Epoch: 7,
		IssuedAt: t0.Unix(), Expiry: t0.Add(5 * time.Minute).Unix(), Issuer: "s1"}
}

func sign(t *testing.T, k key, c Claims) string {
	t.Helper()
	tok, err := Sign(k.priv, k.kid, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTrip(t *testing.T) {
	k := newKey(t, "k1")
	tok := sign(t, k, claims())
	for _, scope := range []string{"net:http:api", ""} {
		got, err := Verify(tok, keySet(k), scope, t0.Add(time.Minute))
		if err != nil {
			t.Fatalf("scope %q: %v", scope, err)
		}
		if got != claims() {
			t.Fatalf("claims %+v, want %+v", got, claims())
		}
	}
	// The JWKS survives its JSON.
	data, err := json.Marshal(keySet(k))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseKeySet(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tok, ks, "net:http:api", t0); err != nil {
		t.Fatalf("with the parsed key set: %v", err)
	}
	if !strings.Contains(string(data), `"kty":"OKP","crv":"Ed25519","kid":"k1"`) {
		t.Fatalf("JWKS %s", data)
	}
}

func TestRefused(t *testing.T) {
	k, other := newKey(t, "k1"), newKey(t, "k2")
	tok := sign(t, k, claims())
	parts := strings.Split(tok, ".")
	tampered := func(mut func(*Claims)) string {
		c := claims()
		mut(&c)
		p, _ := json.Marshal(c)
		return parts[0] + "." + b64.EncodeToString(p) + "." + parts[2]
	}
	forged := sign(t, key{"k1", k.pub, other.priv}, claims())
	sig := []byte(parts[2])
	// Another base64url letter at a position that is not the last: still
	// a well-formed signature, but a different one. (Flipping bits could
	// turn '-' into '.', which is not base64url: a malformed token.)
	if sig[3] == 'A' {
		sig[3] = 'B'
	} else {
		sig[3] = 'A'
	}
	noneHdr := b64.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`))
	cases := []struct {
		name, tok, scope string
		now              time.Time
		want             error
	}{
		{"scope tampered", tampered(func(c *Claims) { c.Scope = "net:http:*" }), "", t0, ErrSignature},
		{"expiry tampered", tampered(func(c *Claims) { c.Expiry += 3600 }), "", t0, ErrSignature},
		{"run tampered", tampered(func(c *Claims) { c.Run = "r2" }), "", t0, ErrSignature},
		{"signature tampered", parts[0] + "." + parts[1] + "." + string(sig), "", t0, ErrSignature},
		{"signed by another key", forged, "", t0, ErrSignature},
		{"unknown kid", sign(t, other, claims()), "", t0, ErrUnknownKey},
		{"expired", tok, "", t0.Add(5 * time.Minute), ErrExpired},
		{"long expired", tok, "", t0.Add(time.Hour), ErrExpired},
		{"other scope", tok, "net:http:other", t0, ErrScope},
		{"prefix scope", tok, "net:http", t0, ErrScope},
		{"issued in the future", tok, "", t0.Add(-time.Minute), ErrMalformed},
		{"alg none", noneHdr + "." + parts[1] + ".", "", t0, ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], "", t0, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.tok, keySet(k), tc.scope, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Within the leeway a token issued slightly ahead verifies.
	if _, err := Verify(tok, keySet(k), "", t0.Add(-10*time.Second)); err != nil {
		t.Fatalf("issued 10s ahead: %v", err)
	}
}

// TestRotation: a token signed before its key was replaced verifies, with
// the set holding the retired key and the new one, until it expires;
// tokens of the new key verify too.
func TestRotation(t *testing.T) {
	oldKey, newK := newKey(t, "old"), newKey(t, "new")
	before := sign(t, oldKey, claims())
	after := claims()
	after.IssuedAt, after.Expiry = t0.Add(time.Minute).Unix(), t0.Add(6*time.Minute).Unix()
	afterTok := sign(t, newK, after)
	ks := keySet(newK, oldKey)
	for _, now := range []time.Time{t0.Add(time.Minute), t0.Add(5*time.Minute - time.Second)} {
		if _, err := Verify(before, ks, "net:http:api", now); err != nil {
			t.Fatalf("old token at %s: %v", now, err)
		}
		if _, err := Verify(afterTok, ks, "net:http:api", now); err != nil {
			t.Fatalf("new token at %s: %v", now, err)
		}
	}
	if _, err := Verify(before, ks, "", t0.Add(5*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("old token past its expiry: %v", err)
	}
	// Once the retired key leaves the set, its tokens are unknown.
	if _, err := Verify(before, keySet(newK), "", t0.Add(time.Minute)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old token without its key: %v", err)
	}
}

func TestParseKeySetRefuses(t *testing.T) {
	k := newKey(t, "k1")
	good := NewJWK("k1", k.pub)
	bad := []func(*JWK){
		func(j *JWK) { j.Kty = "RSA" },
		func(j *JWK) { j.Crv = "X25519" },
		func(j *JWK) { j.Kid = "" },
		func(j *JWK) { j.X = "AAAA" },
		func(j *JWK) { j.X = "!!" },
		func(j *JWK) { j.Use = "enc" },
		func(j *JWK) { j.Alg = "ES256" },
	}
	for i, mut := range bad {
		j := good
		mut(&j)
		data, _ := json.Marshal(KeySet{Keys: []JWK{j}})
		if _, err := ParseKeySet(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: %s: %v", i, data, err)
		}
	}
	data, _ := json.Marshal(KeySet{Keys: []JWK{good, good}})
	if _, err := ParseKeySet(data); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate kid: %v", err)
	}
	if _, err := ParseKeySet([]byte(`{"keys":`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	k := newKey(t, "k1")
	if _, err := Sign(k.priv[:10], "k1", claims()); err == nil {
		t.Fatal("short key signed")
	}
	if _, err := Sign(k.priv, "", claims()); err == nil {
		t.Fatal("empty kid signed")
	}
}

// TestGarbage: no input makes Verify panic or accept.
func TestGarbage(t *testing.T) {
	k := newKey(t, "k1")
	ks := keySet(k)
	tok := sign(t, k, claims())
	inputs := []string{"", ".", "..", "...", "a.b.c", tok + ".", "." + tok, strings.Repeat("a", maxTokenLen+1),
		b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k1"}`)) + ".e30." + strings.Repeat("A", 86),
		b64.EncodeToString([]byte(`null`)) + ".bnVsbA.", "\x00.\xff.\n"}
	for i := 0; i < 2000; i++ {
		b := []byte(tok)
		for j := 0; j <= i%5; j++ {
			b[(i*131+j*977)%len(b)] = byte(i*7 + j)
		}
		inputs = append(inputs, string(b[:len(b)-i%len(b)]))
	}
	for _, in := range inputs {
		if c, err := Verify(in, ks, "", t0); err == nil && in != tok {
			t.Fatalf("garbage %q verified: %+v", in, c)
		}
	}
}

func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok, _ := Sign(priv, "k1", claims())
	f.Add(tok)
	f.Add("a.b.c")
	ks := KeySet{Keys: []JWK{NewJWK("k1", pub)}}
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = Verify(in, ks, "", t0)
		_, _ = ParseKeySet([]byte(in))
	})
}
