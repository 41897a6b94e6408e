// Package randomid makes the random identifiers and secrets ICE hands out:
// cluster ids, token accessor ids and secrets, gossip keys. It reads
// crypto/rand only; the state machine never calls it (ids reach the log in
// the command that carries them).
package randomid

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// UUID returns a random id formatted like a version 4 UUID.
func UUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// Base64 returns n random bytes in standard base64.
func Base64(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
