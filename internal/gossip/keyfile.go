package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyringFile is the name of the file, in a server's or an agent's data
// dir, that a member's keyring persists in.
const KeyringFile = "gossip.keyring"

// keyringFile is the JSON form of a persisted keyring.
type keyringFile struct {
	// Keys are the keys, primary first, in base64 (JSON's []byte).
	Keys [][]byte `json:"keys"`
}

// loadKeys reads a persisted keyring: its keys, primary first, or nil
// without error when the file does not exist.
func loadKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read gossip keyring: %w", err)
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("gossip keyring %s does not parse (%v): fix or remove it to start from --gossip-key: %w", path, err, ErrInvalidKey)
	}
	if len(f.Keys) == 0 || len(f.Keys) > maxKeysPerRing {
		return nil, fmt.Errorf("gossip keyring %s holds %d keys: remove it to start from --gossip-key: %w", path, len(f.Keys), ErrInvalidKey)
	}
	for i, k := range f.Keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("gossip keyring %s, key %d: %w", path, i+1, err)
		}
	}
	return f.Keys, nil
}

// saveKeys persists keys (primary first) to path atomically: a temporary
// file, readable by the owner only, synced and renamed over the old one,
// and the directory synced.
func saveKeys(path string, keys [][]byte) error {
	b, _ := json.Marshal(keyringFile{Keys: keys}) // byte slices: cannot fail
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create gossip keyring dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, KeyringFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("sync gossip keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace gossip keyring: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
