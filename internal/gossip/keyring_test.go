package gossip

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOpenKeyringRule(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyringFile)
	k1, k2 := testKey(1), testKey(2)

	// No key: plaintext, and a keyring file is ignored with a warning.
	if err := saveKeys(path, [][]byte{k1}); err != nil {
		t.Fatal(err)
	}
	logger, logs := testLogger(t, "open")
	if kr, err := OpenKeyring(KeyringConfig{Path: path, Logger: logger}); kr != nil || err != nil {
		t.Fatalf("no key: %v, %v", kr, err)
	}
	if len(logs.lines("[WARN]", "persisted keyring is ignored")) != 1 {
		t.Fatalf("no warning about the ignored file:\n%s", logs)
	}
	_ = os.Remove(path)

	// No file: the flag's key seeds it.
	kr, err := OpenKeyring(KeyringConfig{Key: k1, Path: path, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	kr.Close()
	if keys, err := loadKeys(path); err != nil || !reflect.DeepEqual(keys, [][]byte{k1}) {
		t.Fatalf("seeded file holds %v, %v", fingerprints(keys), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode %v, %v", fi.Mode(), err)
	}

	// A file wins, with a warning naming fingerprints when the flag's key
	// is not in it; it never logs a key.
	if err := saveKeys(path, [][]byte{k2, k1}); err != nil {
		t.Fatal(err)
	}
	for _, flag := range [][]byte{k1, testKey(3)} {
		kr, err := OpenKeyring(KeyringConfig{Key: flag, Path: path, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		if got := kr.Keys(); !reflect.DeepEqual(got, [][]byte{k2, k1}) {
			t.Fatalf("flag %s: keys %v, want the file's", Fingerprint(flag), fingerprints(got))
		}
		kr.Close()
	}
	if w := logs.lines("[WARN]", "not in the persisted keyring"); len(w) != 1 || !strings.Contains(w[0], Fingerprint(testKey(3))) {
		t.Fatalf("warnings %q", w)
	}
	for _, k := range [][]byte{k1, k2, testKey(3)} {
		if strings.Contains(logs.String(), EncodeKey(k)) {
			t.Fatal("a key appears in the log")
		}
	}

	// A bad key or a broken file refuses to start.
	if _, err := OpenKeyring(KeyringConfig{Key: []byte("short")}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short key: %v", err)
	}
	for _, content := range []string{"garbage", `{"keys":[]}`, `{"keys":["c2hvcnQ="]}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyring(KeyringConfig{Key: k1, Path: path}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("file %q: %v", content, err)
		}
	}
}

func TestKeyringApplyRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", KeyringFile)
	k1, k2, k3 := testKey(1), testKey(2), testKey(3)
	kr, err := OpenKeyring(KeyringConfig{Key: k1, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	step := func(op KeyOp, key []byte, wantErr string, want ...[]byte) {
		t.Helper()
		_, err := kr.apply(op, key, "test")
		if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("%s %s: %v, want %q", op, Fingerprint(key), err, wantErr)
		}
		if got := kr.Keys(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s %s: keys %v, want %v", op, Fingerprint(key), fingerprints(got), fingerprints(want))
		}
		if onDisk, err := loadKeys(path); err != nil || !reflect.DeepEqual(onDisk, want) {
			t.Fatalf("after %s %s: file %v, %v", op, Fingerprint(key), fingerprints(onDisk), err)
		}
	}
	step(OpInstall, k2, "", k1, k2)
	step(OpInstall, k2, "", k1, k2)
	step(OpUse, k3, "is not installed", k1, k2)
	step(OpRemove, k1, "is the primary key", k1, k2)
	step(OpUse, k2, "", k2, k1)
	step(OpUse, k2, "", k2, k1)
	step(OpRemove, k1, "", k2)
	step(OpRemove, k3, "", k2)
	if keys, err := kr.apply(OpList, nil, "test"); err != nil || !reflect.DeepEqual(keys, [][]byte{k2}) {
		t.Fatalf("list: %v, %v", fingerprints(keys), err)
	}
	if _, err := kr.apply("rotate", k1, "test"); !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("unknown op: %v", err)
	}
	// Fan-out checks its input, and needs a started member.
	if _, err := kr.Fanout(context.Background(), "rotate", nil); !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("fan-out of an unknown op: %v", err)
	}
	if _, err := kr.Fanout(context.Background(), OpInstall, []byte("short")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("fan-out of a short key: %v", err)
	}
	if _, err := kr.Fanout(context.Background(), OpList, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("fan-out before start: %v", err)
	}
	var none *Keyring
	if _, err := none.Fanout(context.Background(), OpList, nil); !errors.Is(err, ErrEncryptionOff) {
		t.Fatalf("fan-out without encryption: %v", err)
	}
	none.Close()
	if none.Keys() != nil {
		t.Fatal("a nil keyring has keys")
	}
}
