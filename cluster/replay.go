package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ice-run/ice/fsm"
)

// ReplayStats describes an offline replay.
type ReplayStats struct {
	// SnapshotIndex is the index of the snapshot replay started from (0:
	// from an empty state).
	SnapshotIndex uint64
	// FromIndex and ToIndex bound the log entries read after the snapshot.
	FromIndex, ToIndex uint64
	// Entries is the number of log entries read; CommandEntries of them
	// held commands (the rest are Raft's own entries), Commands in all: a
	// group-commit batch entry holds many.
	Entries, CommandEntries, Commands int
	Duration                          time.Duration
}

// ReplayProgress is told how many log entries of how many were replayed.
type ReplayProgress func(done, total uint64)

// Replay rebuilds the state of a server's data dir offline, at toIndex (0:
// the last entry): from the newest snapshot at or below toIndex plus the log
// after it. The server must not be running (its log store is locked). It
// changes nothing in the data dir.
func Replay(dataDir string, toIndex uint64, progress ReplayProgress) (*fsm.State, ReplayStats, error) {
	start := time.Now()
	var stats ReplayStats
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		return nil, stats, fmt.Errorf("replay %s: no raft log: %w", dataDir, err)
	}
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second},
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, stats, fmt.Errorf("replay %s: the log store is locked: stop the server first: %w", dataDir, err)
		}
		return nil, stats, fmt.Errorf("replay %s: open log store: %w", dataDir, err)
	}
	defer logs.Close()
	first, err := logs.FirstIndex()
	if err != nil {
		return nil, stats, fmt.Errorf("replay %s: read first index: %w", dataDir, err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return nil, stats, fmt.Errorf("replay %s: read last index: %w", dataDir, err)
	}
	if toIndex == 0 || toIndex > last {
		toIndex = last
	}
	st, snapIndex, err := replayBase(dir, toIndex)
	if err != nil {
		return nil, stats, fmt.Errorf("replay %s: %w", dataDir, err)
	}
	stats.SnapshotIndex = snapIndex
	from := snapIndex + 1
	if from < first && from <= toIndex {
		return nil, stats, fmt.Errorf("replay %s to %d: the log starts at %d but the newest usable snapshot ends at %d", dataDir, toIndex, first, snapIndex)
	}
	stats.FromIndex, stats.ToIndex = from, toIndex
	var entry raft.Log
	total := uint64(0)
	if toIndex >= from {
		total = toIndex - from + 1
	}
	for i := from; i <= toIndex; i++ {
		if err := logs.GetLog(i, &entry); err != nil {
			return nil, stats, fmt.Errorf("replay %s: read entry %d: %w", dataDir, i, err)
		}
		stats.Entries++
		if entry.Type == raft.LogCommand {
			res := st.Apply(entry.Index, entry.Term, entry.Data)
			if err := corruptionIn(res); err != nil {
				return nil, stats, fmt.Errorf("replay %s: entry %d is damaged (the first; nothing after it is replayed): %w", dataDir, i, err)
			}
			stats.CommandEntries++
			stats.Commands += max(1, len(res.Batch))
		}
		if progress != nil && (stats.Entries%20000 == 0 || i == toIndex) {
			progress(uint64(stats.Entries), total)
		}
	}
	if err := st.VerifyEvents(); err != nil {
		return nil, stats, fmt.Errorf("replay %s: %w", dataDir, err)
	}
	stats.Duration = time.Since(start)
	return st, stats, nil
}

// replayBase restores the newest snapshot at or below index, or returns an
// empty state.
func replayBase(dir string, index uint64) (*fsm.State, uint64, error) {
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1<<20, hclog.NewNullLogger())
	if err != nil {
		return nil, 0, fmt.Errorf("open snapshot store: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return nil, 0, fmt.Errorf("list snapshots: %w", err)
	}
	for _, m := range metas { // newest first
		if m.Index > index {
			continue
		}
		_, rc, err := snaps.Open(m.ID)
		if err != nil {
			return nil, 0, fmt.Errorf("open snapshot %s: %w", m.ID, err)
		}
		st, _, err := fsm.ReadSnapshot(rc, nil)
		rc.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("restore snapshot %s: %w", m.ID, err)
		}
		return st, m.Index, nil
	}
	return fsm.New(), 0, nil
}
