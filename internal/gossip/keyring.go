package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Errors of keyring operations. Cluster code maps them to API statuses.
var (
	// ErrEncryptionOff: the member runs plaintext gossip (no key given, as
	// with --insecure) and has no keyring to change.
	ErrEncryptionOff = errors.New("gossip encryption is off")
	// ErrRefused: the operation would cut members off, so it was not sent.
	ErrRefused = errors.New("keyring operation refused")
	// ErrClosed: the keyring was closed (the member is stopping).
	ErrClosed = errors.New("gossip keyring closed")
)

// DefaultKeyringTimeout is how long a fan-out waits for the members'
// answers by default.
const DefaultKeyringTimeout = 5 * time.Second

// KeyringConfig configures a member's keyring.
type KeyringConfig struct {
	// Key is the member's configured key (--gossip-key, 32 bytes). Without
	// it gossip is plaintext and OpenKeyring returns no keyring.
	Key []byte
	// Path is the file the keyring persists in (<data-dir>/gossip.keyring);
	// "" keeps it in memory only. A keyring found there wins over Key: see
	// OpenKeyring.
	Path string
	// Timeout bounds how long a fan-out waits for answers (default
	// DefaultKeyringTimeout).
	Timeout time.Duration
	// Logger receives the keyring's logs (default: discarded). Keys are
	// never logged, only their fingerprints.
	Logger hclog.Logger
}

// Keyring is a member's gossip encryption keyring: memberlist's Keyring,
// persisted in a file, and the protocol by which one member (a server
// handling `ice operator gossip keyring`) has every live member apply an
// operation to its own keyring and answer. A nil *Keyring is a plaintext
// member: its Fanout returns ErrEncryptionOff.
type Keyring struct {
	ring    *memberlist.Keyring
	path    string
	timeout time.Duration
	logger  hclog.Logger

	// opMu serializes operations on ring and its file.
	opMu sync.Mutex

	mu      sync.Mutex
	member  *Member               // set by Start
	pending map[string]*collector // fan-outs waiting for answers, by request id
	closed  bool

	// requests holds other members' requests for the worker, in order.
	requests chan *keyringRequest
	stop     chan struct{}
	// wg tracks the worker and every goroutine sending a request.
	wg sync.WaitGroup
}

// requestQueue bounds the requests waiting for the worker; more are
// dropped (their sender reports the member as not answering).
const requestQueue = 64

// OpenKeyring returns the keyring of a member configured with cfg.Key, nil
// when there is none (plaintext gossip).
//
// The rule at start: the keyring persisted at cfg.Path wins when the file
// exists, as Consul's keyring file does, so a restarted member keeps the
// keys rotated since the flag was written, whatever the flag says. The
// flag's key seeds the file when there is none. When the flag's key is not
// in the file (a rotation retired it) a warning says so, with fingerprints;
// remove the file to start over from the flag. Without a key the file is
// ignored, with a warning, and gossip is plaintext.
//
// The caller hands the keyring to Start through Options.Keyring and closes
// it after memberlist has shut down.
func OpenKeyring(cfg KeyringConfig) (*Keyring, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.Key == nil {
		if cfg.Path != "" {
			if _, err := os.Stat(cfg.Path); !errors.Is(err, fs.ErrNotExist) {
				logger.Warn("no gossip key given: gossip is plaintext and the persisted keyring is ignored", "keyring", cfg.Path)
			}
		}
		return nil, nil
	}
	if err := checkKey(cfg.Key); err != nil {
		return nil, err
	}
	keys, source, err := initialKeys(cfg, logger)
	if err != nil {
		return nil, err
	}
	ring, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	k := &Keyring{
		ring: ring, path: cfg.Path, timeout: cfg.Timeout, logger: logger,
		pending:  map[string]*collector{},
		requests: make(chan *keyringRequest, requestQueue),
		stop:     make(chan struct{}),
	}
	if k.timeout <= 0 {
		k.timeout = DefaultKeyringTimeout
	}
	logger.Info("gossip encryption on", "primary", Fingerprint(keys[0]), "keys", len(keys), "from", source)
	k.wg.Add(1)
	go k.worker()
	return k, nil
}

// initialKeys applies OpenKeyring's rule: the persisted keys if any, else
// the configured key (persisted now). It says where the keys came from.
func initialKeys(cfg KeyringConfig, logger hclog.Logger) ([][]byte, string, error) {
	if cfg.Path == "" {
		return [][]byte{cfg.Key}, "flag", nil
	}
	keys, err := loadKeys(cfg.Path)
	if err != nil {
		return nil, "", err
	}
	if keys == nil {
		keys = [][]byte{cfg.Key}
		if err := saveKeys(cfg.Path, keys); err != nil {
			return nil, "", err
		}
		return keys, "flag", nil
	}
	if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, cfg.Key) }) {
		logger.Warn("the configured gossip key is not in the persisted keyring (retired by a rotation?): the keyring file wins; remove it to start from the configured key",
			"configured", Fingerprint(cfg.Key), "primary", Fingerprint(keys[0]), "keyring", cfg.Path)
	}
	return keys, "keyring file " + cfg.Path, nil
}

// memberlistRing is the keyring memberlist encrypts and decrypts with.
func (k *Keyring) memberlistRing() *memberlist.Keyring { return k.ring }

// attach binds the keyring to the started member.
func (k *Keyring) attach(m *Member) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.member = m
}

// Keys returns the member's keys, primary first.
func (k *Keyring) Keys() [][]byte {
	if k == nil {
		return nil
	}
	k.opMu.Lock()
	defer k.opMu.Unlock()
	return slices.Clone(k.ring.GetKeys())
}

// Close stops the worker and waits for every request being sent. Requests
// that arrive later are dropped, and fan-outs refused. It is safe to call
// more than once, and on nil.
func (k *Keyring) Close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()
	close(k.stop)
	k.wg.Wait()
}

// goTracked runs f on a goroutine that Close waits for; it returns false
// (and does not run f) once the keyring is closed.
func (k *Keyring) goTracked(f func()) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		f()
	}()
	return true
}

// apply runs one operation on this member's keyring and persists the
// result. It returns the keys for list. by names who asked, for the log.
func (k *Keyring) apply(op KeyOp, key []byte, by string) ([][]byte, error) {
	k.opMu.Lock()
	defer k.opMu.Unlock()
	if op == OpList {
		return slices.Clone(k.ring.GetKeys()), nil
	}
	primary := bytes.Equal(k.ring.GetPrimaryKey(), key)
	var err error
	switch {
	case op == OpInstall && k.has(key), op == OpUse && primary, op == OpRemove && !k.has(key):
		return nil, nil // nothing to change
	case op == OpInstall:
		err = k.ring.AddKey(key)
	case op == OpUse:
		if !k.has(key) {
			return nil, fmt.Errorf("key %s is not installed: install it first", Fingerprint(key))
		}
		err = k.ring.UseKey(key)
	case op == OpRemove:
		if primary {
			return nil, fmt.Errorf("key %s is the primary key: make another key primary (use) before removing it", Fingerprint(key))
		}
		// memberlist's RemoveKey compacts its key slice in place, which a
		// decryption in progress may be reading; in a rotation the retired
		// key is the last one after use, and removing the last key moves
		// nothing.
		err = k.ring.RemoveKey(key)
	default:
		return nil, fmt.Errorf("keyring operation %q: %w", op, ErrInvalidOp)
	}
	if err != nil {
		return nil, fmt.Errorf("%s key %s: %w", op, Fingerprint(key), err)
	}
	keys := k.ring.GetKeys()
	if k.path != "" {
		if err := saveKeys(k.path, keys); err != nil {
			return nil, fmt.Errorf("%s key %s applied in memory but not persisted (a restart would undo it): %w", op, Fingerprint(key), err)
		}
	}
	metrics.IncrCounterWithLabels([]string{"ice", "gossip", "keyring", "changed"}, 1, []metrics.Label{{Name: "op", Value: string(op)}})
	k.logger.Info("gossip keyring changed", "op", op, "key", Fingerprint(key), "primary", Fingerprint(keys[0]), "keys", len(keys), "by", by)
	return nil, nil
}

// has reports whether key is installed; opMu is held.
func (k *Keyring) has(key []byte) bool {
	return slices.ContainsFunc(k.ring.GetKeys(), func(i []byte) bool { return bytes.Equal(i, key) })
}
