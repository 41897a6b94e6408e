package jepsen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/fsm"
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
// server's log (data dir/raft/raft.db, opened offline with raft-boltdb over
// bbolt), so that the entry fails its checksum when the server applies it:
// the first command entry after the newest snapshot's index (which the
// server applied before it stopped, so it is committed and will be applied
// again from the snapshot at restart). The byte is chosen by pick, past the
// type and version bytes; the damaged data is checked to decode as
// fsm.ErrCorrupt before it is written.
func DamageLog(dataDir string, pick uint64) (Damage, error) {
	var d Damage
	var err error
	if d.SnapshotIndex, err = newestSnapshotIndex(dataDir); err != nil {
		return d, err
	}
	path := filepath.Join(dataDir, "raft", "raft.db")
	db, err := raftboltdb.New(raftboltdb.Options{Path: path,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true}})
	if err != nil {
		return d, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	first, err := db.FirstIndex()
	if err != nil {
		return d, fmt.Errorf("first index of %s: %w", path, err)
	}
	if d.LastIndex, err = db.LastIndex(); err != nil {
		return d, fmt.Errorf("last index of %s: %w", path, err)
	}
	for i := max(first, d.SnapshotIndex+1); i <= d.LastIndex && i > 0; i++ {
		var l raft.Log
		if err := db.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return d, fmt.Errorf("read entry %d of %s: %w", i, path, err)
		}
		data, off, ok := flipped(l, pick)
		if !ok {
			continue
		}
		d.Index, d.Offset, d.Type = i, off, fsm.MessageType(l.Data[0]).String()
		l.Data = data
		if err := db.StoreLog(&l); err != nil {
			return d, fmt.Errorf("write entry %d of %s: %w", i, path, err)
		}
		if err := db.Sync(); err != nil {
			return d, fmt.Errorf("sync %s: %w", path, err)
		}
		return d, nil
	}
	return d, fmt.Errorf("no checksummed command entry after the newest snapshot (index %d) in a log of %d to %d", d.SnapshotIndex, first, d.LastIndex)
}

// flipped returns the data of a command entry with one byte flipped, when
// the damage is one ICE must find (the entry decodes now and fails its
// checksum once damaged).
func flipped(l raft.Log, pick uint64) ([]byte, int, bool) {
	if l.Type != raft.LogCommand || len(l.Data) < 8 {
		return nil, 0, false
	}
	if _, err := fsm.Decode(l.Data); err != nil {
		return nil, 0, false
	}
	data := append([]byte(nil), l.Data...)
	off := 2 + int(pick%uint64(len(data)-2))
	data[off] ^= 0x5a
	if _, err := fsm.Decode(data); !errors.Is(err, fsm.ErrCorrupt) {
		return nil, 0, false
	}
	return data, off, true
}
