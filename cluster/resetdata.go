package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ResetData clears a stopped server's Raft state, for a server that must
// rejoin from nothing (one named in a corrupt alarm, after `ice operator
// raft remove-peer`): it moves <data-dir>/raft (the log, the stable store
// and the snapshots) aside to <data-dir>/raft.reset-<UTC time>, so nothing
// is deleted, and returns that path. The gossip keyring and the rest of the
// data dir stay. It refuses while a server holds the log open, and when
// there is no Raft state to clear.
func ResetData(dataDir string, now time.Time) (string, error) {
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("reset data dir %s: no Raft state at %s: nothing to clear", dataDir, dir)
		}
		return "", fmt.Errorf("reset data dir %s: %w", dataDir, err)
	}
	if err := checkNotInUse(filepath.Join(dir, "raft.db")); err != nil {
		return "", fmt.Errorf("reset data dir %s: %w", dataDir, err)
	}
	aside := filepath.Join(dataDir, "raft.reset-"+now.UTC().Format("20060102T150405Z"))
	if _, err := os.Stat(aside); err == nil {
		return "", fmt.Errorf("reset data dir %s: %s exists already: try again in a second", dataDir, aside)
	}
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("reset data dir %s: move %s aside: %w", dataDir, dir, err)
	}
	return aside, nil
}

// checkNotInUse refuses a log a running server holds: bbolt holds an
// exclusive flock on the file while it is open. (Opening it with bbolt to
// find out could panic on the very damage that calls for a reset.)
func checkNotInUse(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%s is in use: stop the server first", path)
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
