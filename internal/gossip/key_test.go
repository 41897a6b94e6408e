package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseGenerateAndFingerprintKeys(t *testing.T) {
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey("  " + s + "\n")
	if err != nil || len(key) != KeySize || EncodeKey(key) != s {
		t.Fatalf("ParseKey(GenerateKey()) = %d bytes, %v", len(key), err)
	}
	other, _ := GenerateKey()
	if other == s {
		t.Fatal("two generated keys are equal")
	}
	fp := Fingerprint(key)
	if len(fp) != 8 || strings.Contains(s, fp) || fp != Fingerprint(bytes.Clone(key)) {
		t.Fatalf("fingerprint %q of key", fp)
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	for in, want := range map[string]string{
		"":                  "empty gossip key",
		"not base64!":       "not standard base64",
		short:               "is 16 bytes, want 32",
		s[:len(s)-4] + "%%": "not standard base64",
	} {
		_, err := ParseKey(in)
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKey(%q) = %v, want %q", in, err, want)
		}
		if in != "" && err != nil && strings.Contains(err.Error(), in) {
			t.Errorf("ParseKey's error quotes its input: %v", err)
		}
	}
}
