package cluster

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/granttoken"
)

// TestSigningKeyFile: the key is made once (0600), read back the same, and
// a garbled file refuses to load rather than being replaced, and a
// world-readable one is made 0600.
func TestSigningKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := loadSigningKey(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SigningKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v: %v", fi, err)
	}
	b, err := loadSigningKey(dir, hclog.NewNullLogger())
	if err != nil || b.kid != a.kid || !a.priv.Equal(b.priv) {
		t.Fatalf("reloaded %v: %v", b, err)
	}
	if a.kid != fsm.SigningKeyID(a.pub) || len(a.kid) != 16 {
		t.Fatalf("kid %q", a.kid)
	}
	good, _ := os.ReadFile(path)
	for name, data := range map[string][]byte{
		"garbled":   []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"not PEM":   []byte("hello"),
		"empty":     nil,
		"truncated": good[:len(good)/2],
		"trailing":  append(append([]byte{}, good...), "junk"...),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadSigningKey(dir, hclog.NewNullLogger())
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming %s", name, err, path)
		}
	}
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := loadSigningKey(dir, hclog.NewNullLogger()); err != nil || c.kid != a.kid {
		t.Fatalf("world-readable key: %v %v", c, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("world-readable key left %v: %v", fi.Mode(), err)
	}
}

// TestPublishedKeys: active keys, and retired ones for as long as a token
// they signed may last.
func TestPublishedKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	pub := func(b byte) []byte {
		p := make([]byte, ed25519.PublicKeySize)
		p[0] = b
		return p
	}
	keys := []*fsm.SigningKey{
		{ID: "a", Public: pub(1), Status: fsm.SigningKeyActive},
		{ID: "b", Public: pub(2), Status: fsm.SigningKeyRetired, RetireTime: now.Add(-time.Minute).UnixNano()},
		{ID: "c", Public: pub(3), Status: fsm.SigningKeyRetired, RetireTime: now.Add(-MaxGrantTokenTTL - granttoken.Leeway - time.Second).UnixNano()},
	}
	ks := publishedKeys(keys, now)
	var ids []string
	for _, k := range ks.Keys {
		ids = append(ids, k.Kid)
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Fatalf("published %v, want a,b", ids)
	}
}
