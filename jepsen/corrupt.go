package jepsen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ice-run/ice/internal/raftlogtest"
)

// Damage is what DamageLog did to a stopped server's log.
type Damage struct {
	// Index is the damaged entry's; SnapshotIndex the newest snapshot's.
	Index, SnapshotIndex, LastIndex uint64
	// Offset is the byte of the entry's data that was flipped, Type the
	// command type the entry held.
	Offset int
	Type   string
}

func (d Damage) String() string {
	return fmt.Sprintf("flipped byte %d of entry %d (%s; newest snapshot at %d, log to %d)", d.Offset, d.Index, d.Type, d.SnapshotIndex, d.LastIndex)
}

// newestSnapshotIndex returns the index of the newest snapshot in a data
// dir (0: none), read from the meta.json files of raft's snapshot store.
func newestSnapshotIndex(dataDir string) (uint64, error) {
	metas, err := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "meta.json"))
	if err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	}
	var newest uint64
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			return 0, fmt.Errorf("read snapshot meta: %w", err)
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(b, &meta); err != nil {
			return 0, fmt.Errorf("snapshot meta %s: %w", m, err)
		}
		newest = max(newest, meta.Index)
	}
	return newest, nil
}

// DamageLog flips one byte inside the data of a command entry of a stopped
// server's log (data dir/raft/raft.db, with raftlogtest.Damage), so that the
// entry fails its checksum when the server applies it: the first command
// entry after the newest snapshot's index (which the server applied before
// it stopped, so it is committed and will be applied again from the
// snapshot at restart). The byte is chosen by pick, past the type and
// version bytes; the damaged data is checked to decode as fsm.ErrCorrupt
// before it is written.
func DamageLog(dataDir string, pick uint64) (Damage, error) {
	var d Damage
	var err error
	if d.SnapshotIndex, err = newestSnapshotIndex(dataDir); err != nil {
		return d, err
	}
	r, err := raftlogtest.Damage(dataDir, raftlogtest.Spec{Kind: raftlogtest.Flip, Oldest: true, After: d.SnapshotIndex,
		Offset: func(n int) int { return 2 + int(pick%uint64(n-2)) }, Mask: 0x5a})
	d.LastIndex = r.Last
	if errors.Is(err, raftlogtest.ErrNoEntry) {
		return d, fmt.Errorf("no checksummed command entry after the newest snapshot (index %d) in a log of %d to %d: %w", d.SnapshotIndex, r.First, r.Last, raftlogtest.ErrNoEntry)
	}
	if err != nil {
		return d, err
	}
	d.Index, d.Offset, d.Type = r.Index, r.Offset, r.Type.String()
	return d, nil
}
