package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
)

// DataDirError is a data dir the server refuses to start from: File is the
// damaged file or directory, Problem what is wrong with it, and Remedy what
// to do ("": restore the cluster or rebuild this server, remedyDamaged).
type DataDirError struct {
	File    string
	Problem string
	Remedy  string
}

const (
	remedyDamaged = "The server cannot start from it without losing state it may have acknowledged. " +
		"Either restore the cluster from a snapshot archive with `ice operator snapshot restore`, " +
		"or remove this server with `ice operator raft remove-peer ID`, clear its Raft state with `ice operator raft reset-data --data-dir DIR` " +
		"and start it again so that it catches up from the leader"
	remedyNewer = "This build cannot read it. Start the server with the build that wrote it, or a newer one; " +
		"to run this build instead, remove this server with `ice operator raft remove-peer ID` and start it from a new, empty data dir so that it catches up from the leader"
)

func (e *DataDirError) Error() string {
	remedy := e.Remedy
	if remedy == "" {
		remedy = remedyDamaged
	}
	return fmt.Sprintf("data dir refused: %s: %s. %s", e.File, e.Problem, remedy)
}

func damaged(file, format string, args ...any) error {
	return &DataDirError{File: file, Problem: fmt.Sprintf(format, args...)}
}

// snapDir is one directory under raft/snapshots.
type snapDir struct {
	path    string
	meta    raft.SnapshotMeta
	crc     []byte
	problem string // why it cannot be restored; "" when not known to be bad
	newer   bool   // the problem is a format newer than this build reads
}

// readSnapDirs lists raft/snapshots newest first, as hashicorp/raft orders
// them, with the ones whose meta.json cannot be read or is of a format this
// build does not know (which raft skips without a word) marked damaged; their
// term and index come from the directory name (term-index-millis).
func readSnapDirs(dir string) ([]*snapDir, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot dir %s: %w", dir, err)
	}
	var out []*snapDir
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		sd := &snapDir{path: filepath.Join(dir, e.Name())}
		var fm struct {
			raft.SnapshotMeta
			CRC []byte
		}
		b, err := os.ReadFile(filepath.Join(sd.path, "meta.json"))
		if err == nil {
			err = json.Unmarshal(b, &fm)
		}
		switch {
		case err != nil:
			sd.problem = fmt.Sprintf("its meta.json cannot be read: %v", err)
			sd.meta.ID = e.Name()
			if p := strings.Split(e.Name(), "-"); len(p) == 3 {
				sd.meta.Term, _ = strconv.ParseUint(p[0], 10, 64)
				sd.meta.Index, _ = strconv.ParseUint(p[1], 10, 64)
			}
		case fm.Version < raft.SnapshotVersionMin || fm.Version > raft.SnapshotVersionMax:
			sd.problem = fmt.Sprintf("its snapshot format version %d is not one this build reads (%d..%d): perhaps written by a newer build",
				fm.Version, raft.SnapshotVersionMin, raft.SnapshotVersionMax)
			sd.newer = fm.Version > raft.SnapshotVersionMax
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
		case fm.ID != e.Name():
			sd.problem = fmt.Sprintf("its meta.json names the snapshot %q, not its directory's name (raft cannot open it)", fm.ID)
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
			sd.meta.ID = e.Name()
		default:
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
		}
		out = append(out, sd)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].meta, out[j].meta
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return out, nil
}

// verifySnapshot checks state.bin against the CRC in meta.json and that
// its state format (the version after the magic) is one this build reads,
// and when decode is set also that the state machine can read all of it.
func verifySnapshot(sd *snapDir, decode bool) {
	path := filepath.Join(sd.path, "state.bin")
	b, err := os.ReadFile(path)
	if err != nil {
		sd.problem = fmt.Sprintf("its state.bin cannot be read: %v", err)
		return
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	_, _ = h.Write(b)
	if !bytes.Equal(h.Sum(nil), sd.crc) {
		sd.problem = "its state.bin does not match the CRC in its meta.json"
		return
	}
	// The header alone: the magic and the format version (big-endian).
	if _, _, err := fsm.ReadSnapshot(bytes.NewReader(b[:min(len(b), 10)]), nil); errors.Is(err, fsm.ErrUnsupportedVersion) {
		sd.problem = fmt.Sprintf("its state.bin cannot be restored: %v", err)
		if v := binary.BigEndian.Uint16(b[8:10]); v > fsm.SnapshotVersion {
			sd.problem = fmt.Sprintf("its state.bin is of state format version %d, and this build reads versions 1 to %d: it was written by a newer build", v, fsm.SnapshotVersion)
			sd.newer = true
		}
		return
	}
	if decode {
		if _, _, err := fsm.ReadSnapshot(bytes.NewReader(b), nil); err != nil {
			sd.problem = fmt.Sprintf("its state.bin cannot be decoded: %v", err)
		}
	}
}

// pickSnapshot returns the snapshot hashicorp/raft will restore on start:
// the newest of the ones it lists (meta.json readable, at most retain) whose
// state.bin matches its CRC. The newest is checked by CRC only: that reads
// state.bin once more than raft does (from the page cache, after this), a
// cost proportional to the state, not to the log. An older one is only
// looked at when a newer one is damaged, and is then decoded as well, since
// raft falls back past any that fails to restore.
func pickSnapshot(snaps []*snapDir, retain int) *snapDir {
	listed := 0
	for _, sd := range snaps {
		if sd.problem != "" {
			continue
		}
		if retain > 0 && listed == retain {
			return nil
		}
		verifySnapshot(sd, listed > 0)
		listed++
		if sd.problem == "" {
			return sd
		}
	}
	return nil
}

// checkRaftState refuses a data dir from which hashicorp/raft would panic or
// start with less than the server had: the usable snapshot plus the log must
// reach every index the data dir knows of, with no gap between them. It
// reads the log's first and last index and its current term, not the log.
// dir is the data dir's raft directory. A data dir that passes gets its
// format file (datadir_format.go) when it has none yet: with the stores
// open, no other server writes it at the same time.
func checkRaftState(dir string, logs raft.LogStore, stable raft.StableStore, retain int, logger hclog.Logger) (err error) {
	dbPath := filepath.Join(dir, "raft.db")
	defer func() {
		if r := recover(); r != nil {
			err = damaged(dbPath, "reading it failed: %v", r)
		}
	}()
	first, err := logs.FirstIndex()
	if err != nil {
		return damaged(dbPath, "its first log index cannot be read: %v", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return damaged(dbPath, "its last log index cannot be read: %v", err)
	}
	if last > 0 { // raft reads it first, and returns, not panics, when it cannot
		var e raft.Log
		if err := logs.GetLog(last, &e); err != nil {
			return damaged(dbPath, "its last log entry, index %d, cannot be read: %v", last, err)
		}
	}
	snapPath := filepath.Join(dir, "snapshots")
	snaps, err := readSnapDirs(snapPath)
	if err != nil {
		return err
	}
	usable := pickSnapshot(snaps, retain)
	var base uint64
	if usable != nil {
		base = usable.meta.Index
	}
	var lost *snapDir // the newest damaged snapshot past the usable one
	for _, sd := range snaps {
		if sd.problem != "" {
			logger.Warn("damaged snapshot", "path", sd.path, "index", sd.meta.Index, "problem", sd.problem)
			if sd.meta.Index > base && (lost == nil || sd.meta.Index > lost.meta.Index) {
				lost = sd
			}
		}
	}
	from := fmt.Sprintf("the newest readable snapshot, %s, ends at index %d", filepath.Base(pathOf(usable)), base)
	if usable == nil {
		from = "no snapshot is readable"
	}
	switch {
	case lost != nil && last < lost.meta.Index:
		return refuseSnapshot(lost, "%s, and it holds the state up to index %d; %s and the log in raft.db ends at index %d, so entries up to %d are in no readable file",
			lost.problem, lost.meta.Index, from, last, lost.meta.Index)
	case last > base && first > base+1 && lost != nil:
		return refuseSnapshot(lost, "%s; %s and the log in raft.db starts at index %d, so entries %d..%d are in no readable file",
			lost.problem, from, first, base+1, first-1)
	case last > base && first > base+1:
		return damaged(snapPath, "%s, but the log in raft.db starts at index %d (it was compacted after a snapshot), so entries %d..%d are in no file: the snapshot directory was removed",
			from, first, base+1, first-1)
	case usable == nil && len(snaps) > 0:
		return refuseSnapshot(snaps[0], "no snapshot in %s can be restored; the newest: %s", snapPath, snaps[0].problem)
	}
	if usable != nil {
		term, err := stable.GetUint64([]byte("CurrentTerm"))
		if err != nil && err.Error() != "not found" {
			return damaged(dbPath, "its current term cannot be read: %v", err)
		}
		if term < usable.meta.Term {
			return damaged(dbPath, "its current term %d is older than term %d of snapshot %s: raft.db is older than the snapshots (put back from an old copy?) and the server could vote twice in a term",
				term, usable.meta.Term, usable.meta.ID)
		}
	}
	return recordFormat(filepath.Dir(dir))
}

// refuseSnapshot is the DataDirError for snapshot sd, telling to run a
// newer build when that is what it needs.
func refuseSnapshot(sd *snapDir, format string, args ...any) error {
	e := &DataDirError{File: sd.path, Problem: fmt.Sprintf(format, args...)}
	if sd.newer {
		e.Remedy = remedyNewer
	}
	return e
}

func pathOf(sd *snapDir) string {
	if sd == nil {
		return ""
	}
	return sd.path
}
