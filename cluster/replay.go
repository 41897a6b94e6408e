package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/eventarchive"
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
	// Archived is how many events were read and verified from the data
	// dir's event archive (the ones before the first the state holds).
	Archived uint64
	Duration time.Duration
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
	if stats.Archived, err = verifyReplayArchive(dataDir, st); err != nil {
		return nil, stats, fmt.Errorf("replay %s: %w", dataDir, err)
	}
	stats.Duration = time.Since(start)
	return st, stats, nil
}

// openReplayArchive opens a stopped server's event archive without
// changing anything in it.
func openReplayArchive(dataDir string) (*eventStore, error) {
	per := segmentSizeOf(eventsDir(dataDir))
	arc, err := eventarchive.Open(eventsDir(dataDir), eventarchive.Options{ReadOnly: true, PerSegment: per})
	if err != nil {
		return nil, fmt.Errorf("open event archive: %w", err)
	}
	return &eventStore{logger: hclog.NewNullLogger(), dir: eventsDir(dataDir), arc: arc}, nil
}

// verifyReplayArchive checks the archive from event 1 and that it links
// to the first event the replayed state holds; it returns how many
// events it verified (0 when the state holds the whole chain).
func verifyReplayArchive(dataDir string, st *fsm.State) (uint64, error) {
	first := st.FirstEventSeq()
	if first == 1 {
		return 0, nil
	}
	es, err := openReplayArchive(dataDir)
	if err != nil {
		return 0, err
	}
	defer es.close()
	if f := es.arc.First(); f != 1 {
		return 0, fmt.Errorf("events 1 to %d left the state and the archive starts at %d (the server had not fetched them from a peer yet)", first-1, f)
	}
	h, n, err := es.arc.Verify(nil)
	if err != nil {
		return 0, fmt.Errorf("verify event archive: %w", err)
	}
	if n+1 < first {
		return 0, fmt.Errorf("the event archive ends at event %d and the state holds events from %d on", n, first)
	}
	if n+1 > first {
		events, err := es.readEvents(first-1, first, "", 1)
		if err != nil || len(events) != 1 {
			return 0, fmt.Errorf("read archived event %d: %v", first-1, err)
		}
		h = events[0].Hash
	}
	if h != st.FirstEventLink() {
		return 0, fmt.Errorf("the event archive's event %d has hash %s, the state's first event links to %s: %w", first-1, h, st.FirstEventLink(), fsm.ErrChecksum)
	}
	return first - 1, nil
}

// ReplayTimeline returns a component's events (every event when component
// is empty) of a replayed state: those the data dir's archive holds, then
// those of the state.
func ReplayTimeline(dataDir string, st *fsm.State, component string) ([]fsm.Event, error) {
	held := st.Events(0, component, 0)
	first := st.FirstEventSeq()
	if first == 1 {
		return held, nil
	}
	es, err := openReplayArchive(dataDir)
	if err != nil {
		return nil, err
	}
	defer es.close()
	archived, err := es.readEvents(1, first, component, 0)
	if err != nil {
		return nil, err
	}
	return append(archived, held...), nil
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

// segmentSizeOf reads the number of events per segment an archive was
// written with from the header of its second or later segment (segment k
// starts at event (k-1)·n+1); 0, the default, when it has only the first.
func segmentSizeOf(dir string) uint64 {
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return 0
	}
	for _, name := range names {
		k, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".seg"), 10, 64)
		if err != nil || k < 2 {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return 0
		}
		var hdr [16]byte
		_, err = io.ReadFull(f, hdr[:])
		f.Close()
		if first := binary.BigEndian.Uint64(hdr[8:]); err == nil && first > 1 && (first-1)%(k-1) == 0 {
			return (first - 1) / (k - 1)
		}
		return 0
	}
	return 0
}
