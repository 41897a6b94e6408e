package jepsen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Why replay targets are chosen per data dir (a harness race, seen as a
// flake of seed 1): the harness reads the servers' digests at index D, but
// the cluster goes on applying entries until the servers stop, and a server
// that takes a snapshot at S > D compacts its log to start near S - 64
// (--trailing-logs 64); when its previous snapshot lies below that start, no
// snapshot at or below D meets the log, and `ice replay --to-index D` of
// that data dir is impossible although nothing is wrong with it. So the
// harness (1) stops the agents first and reads the live cluster once more
// (ReadFinal: every server at one applied index Q that held while each
// server's events were read), then stops the servers at once, and (2)
// replays each data dir to the newest of the indexes it knows the live
// digest and chain head at (Q, else D) that the data dir still reaches
// (DataDirReach.Reaches, the same rule as `ice replay`). A replay is still
// compared with the live digest and chain head at its index, so a mismatch
// is a violation as before. Only when an entry slipped in after the final
// read and brought a snapshot that cut both Q and D away (no live reference
// reachable) is the data dir replayed to its newest snapshot and compared
// with the replays of the other data dirs there (each of which is also
// compared with the live state); with no other data dir reaching that index
// the replay is not compared and the verdict is unknown, never a pass.

// DataDirReach is what a stopped server's data dir can be replayed to: its
// snapshots' indexes (ascending) and its log's first and last index (0, 0:
// an empty log).
type DataDirReach struct {
	Snapshots []uint64 `json:"snapshots"`
	First     uint64   `json:"first"`
	Last      uint64   `json:"last"`
}

func (d DataDirReach) String() string {
	return fmt.Sprintf("snapshots at %v, log %d..%d", d.Snapshots, d.First, d.Last)
}

// Newest returns the newest snapshot's index (0: none).
func (d DataDirReach) Newest() uint64 {
	if len(d.Snapshots) == 0 {
		return 0
	}
	return d.Snapshots[len(d.Snapshots)-1]
}

// Reaches reports whether `ice replay --to-index i` can rebuild the state
// at i (cluster.Replay's rule): from the newest snapshot at or below i (or
// the empty state) and the log entries after it, which must all be there;
// replay never goes past the log's last entry.
func (d DataDirReach) Reaches(i uint64) bool {
	if i == 0 || i > d.Last {
		return false
	}
	var base uint64
	for _, s := range d.Snapshots {
		if s <= i {
			base = s
		}
	}
	return base == i || base+1 >= d.First
}

// ReadReach reads a stopped server's data dir: the snapshots' meta.json
// files (as raft's file snapshot store lists them: no .tmp dirs) and the
// log store's bounds, opened read-only.
func ReadReach(dataDir string) (DataDirReach, error) {
	var d DataDirReach
	var err error
	if d.Snapshots, err = snapshotIndexes(dataDir); err != nil {
		return d, err
	}
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dataDir, "raft", "raft.db"),
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second},
	})
	if err != nil {
		return d, fmt.Errorf("open log store: %w", err)
	}
	defer logs.Close()
	if d.First, err = logs.FirstIndex(); err != nil {
		return d, fmt.Errorf("first index: %w", err)
	}
	if d.Last, err = logs.LastIndex(); err != nil {
		return d, fmt.Errorf("last index: %w", err)
	}
	return d, nil
}

// snapshotIndexes returns the indexes of a data dir's snapshots, ascending,
// from the meta.json files of raft's snapshot store.
func snapshotIndexes(dataDir string) ([]uint64, error) {
	metas, err := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []uint64
	for _, m := range metas {
		if strings.HasSuffix(filepath.Dir(m), ".tmp") {
			continue // being written
		}
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, fmt.Errorf("read snapshot meta: %w", err)
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("snapshot meta %s: %w", m, err)
		}
		out = append(out, meta.Index)
	}
	slices.Sort(out)
	return out, nil
}

// PlannedReplay is one `ice replay --to-index Index` of a server's data dir.
type PlannedReplay struct {
	Server string
	Index  uint64
}

// PlanReplays chooses what to replay once the servers are stopped (see the
// comment at the top of this file). refs are the indexes the harness knows
// the live digest and chain head at; reach holds each data dir's (nil: not
// read, then it is replayed to the newest ref and the replay tells what is
// wrong). It returns the replays, each server's first, and why a server's
// data dir is not replayed (it reaches no ref and no snapshot of its own).
func PlanReplays(ids []string, reach map[string]*DataDirReach, refs []uint64) ([]PlannedReplay, map[string]string) {
	refs = slices.Clone(refs)
	slices.Sort(refs)
	refs = slices.Compact(refs)
	var plan, extra []PlannedReplay
	skipped := map[string]string{}
	planned := map[PlannedReplay]bool{}
	add := func(to *[]PlannedReplay, p PlannedReplay) {
		if !planned[p] {
			planned[p] = true
			*to = append(*to, p)
		}
	}
	for _, id := range ids {
		d := reach[id]
		if d == nil {
			if len(refs) > 0 {
				add(&plan, PlannedReplay{id, refs[len(refs)-1]})
			}
			continue
		}
		target := uint64(0)
		for _, ref := range refs {
			if d.Reaches(ref) {
				target = ref
			}
		}
		if target > 0 {
			add(&plan, PlannedReplay{id, target})
			continue
		}
		// No live reference reachable: the newest snapshot (committed: a
		// server snapshots what it applied), compared with the other data
		// dirs' replays there.
		s := d.Newest()
		if !d.Reaches(s) {
			skipped[id] = fmt.Sprintf("its data dir (%s) reaches none of the indexes the live state is known at (%v)", d, refs)
			continue
		}
		add(&plan, PlannedReplay{id, s})
		for _, other := range ids {
			if o := reach[other]; other != id && o != nil && o.Reaches(s) {
				add(&extra, PlannedReplay{other, s})
			}
		}
	}
	return append(plan, extra...), skipped
}
