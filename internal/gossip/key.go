package gossip

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a gossip encryption key: 32 bytes select
// AES-256-GCM in memberlist.
const KeySize = 32

// ErrInvalidKey is wrapped by every error about a malformed key. Such errors
// never quote the key.
var ErrInvalidKey = errors.New("invalid gossip key")

// ParseKey decodes a gossip key given in standard base64 (as GenerateKey
// and `openssl rand -base64 32` write it; surrounding white space is
// ignored) and checks that it is KeySize bytes long. Its errors say what is
// wrong without quoting the key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty gossip key: want base64 of %d bytes: %w", KeySize, ErrInvalidKey)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// CorruptInputError names an offset, never the input.
		return nil, fmt.Errorf("gossip key is not standard base64 (%v): %w", err, ErrInvalidKey)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("gossip key is %d bytes, want %d: %w", len(key), KeySize, ErrInvalidKey)
	}
	return key, nil
}

// GenerateKey returns a new random gossip key, base64 encoded, for
// --gossip-key and `ice operator gossip keyring install`.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate gossip key: %w", err)
	}
	return EncodeKey(key), nil
}

// EncodeKey returns the base64 form of a key, as ParseKey reads it.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// Fingerprint names a key in logs, errors and tables without revealing it:
// the first 8 hex digits of its sha256.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// checkKey validates a raw key's length.
func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("gossip key is %d bytes, want %d: %w", len(key), KeySize, ErrInvalidKey)
	}
	return nil
}

// fingerprints names keys, in order.
func fingerprints(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = Fingerprint(k)
	}
	return out
}
