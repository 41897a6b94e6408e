// Package raftlogtest damages the raft log of a stopped ICE server on
// purpose, for the tests and the fault-injection harness (jepsen/) that
// check ICE finds it: a byte flipped inside a command entry (what the
// entry's checksum catches), or a command rewritten with a valid checksum
// (what only the cross-server digest comparison catches).
//
// It opens data dir/raft/raft.db (raft-boltdb over bbolt) the way a server
// does, so the server must be stopped. It depends on raft, raft-boltdb,
// bbolt and fsm only, not on cluster/, so that jepsen/ can use it without
// the in-process harness of internal/testcluster.
//
// # Usage
//
//	r, err := raftlogtest.Damage(dataDir, raftlogtest.Spec{Kind: raftlogtest.Flip})
//	// r.Index is the entry the server halts at once restarted.
package raftlogtest

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/fsm"
)

// Kind is the damage Damage does to an entry.
type Kind int

const (
	// Flip xors one byte of the entry's data, keeping its length: the
	// damage a bad disk does, which the entry's checksum catches
	// (fsm.CheckEntry fails, fsm.Decode returns fsm.ErrCorrupt).
	Flip Kind = iota + 1
	// Rewrite replaces the entry's data with its command changed and
	// encoded again (fsm.Encode): the checksum is valid, so only the
	// cross-server digest comparison finds it.
	Rewrite
)

func (k Kind) String() string {
	switch k {
	case Flip:
		return "flip"
	case Rewrite:
		return "rewrite"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// ErrNoEntry is returned (wrapped) when no entry of the log matches a Spec.
var ErrNoEntry = errors.New("no command entry to damage")

// Spec chooses the entry to damage and says what to do to it.
//
// The entry is a command entry (raft.LogCommand) whose data decodes, the
// newest in the log (or the oldest, with Oldest) above index After that
// matches Type and Match. Flip also passes by entries shorter than 8 bytes
// and entries whose checksum would not catch the flip (older encodings).
type Spec struct {
	Kind Kind
	// Type, when not zero, chooses only commands of that type (a batch is
	// not looked into: it is of fsm.BatchType).
	Type fsm.MessageType
	// Match, when set, chooses only the commands it returns true for.
	Match func(fsm.Command) bool
	// Oldest chooses the oldest matching entry, not the newest.
	Oldest bool
	// After, when not zero, chooses only entries above that index (the
	// newest snapshot's, say: an entry the server applies again at restart).
	After uint64

	// Offset returns the byte Flip xors, from the data's length (nil: the
	// middle one, n/2). Mask is xored into it (0: 0xff).
	Offset func(n int) int
	Mask   byte

	// Change edits the decoded command that Rewrite encodes again; it must
	// change something.
	Change func(*fsm.Command) error
}

// Result is what Damage did.
type Result struct {
	// Index is the damaged entry's; First and Last the log's (set on
	// ErrNoEntry too).
	Index, First, Last uint64
	Kind               Kind
	// Type is the type of the command the entry held.
	Type fsm.MessageType
	// Offset is the byte of the data Flip xored (-1 for Rewrite).
	Offset int
}

func (r Result) String() string {
	if r.Kind == Flip {
		return fmt.Sprintf("flipped byte %d of entry %d (%s)", r.Offset, r.Index, r.Type)
	}
	return fmt.Sprintf("rewrote entry %d (%s) with a valid checksum", r.Index, r.Type)
}

// Damage damages one command entry of the log of the stopped server whose
// data dir is dataDir, as spec says, writes it back and syncs the file.
// Entries above the choice are left as they are.
func Damage(dataDir string, spec Spec) (Result, error) {
	r := Result{Kind: spec.Kind, Offset: -1}
	if err := spec.check(); err != nil {
		return r, err
	}
	path := filepath.Join(dataDir, "raft", "raft.db")
	db, err := raftboltdb.New(raftboltdb.Options{Path: path,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true}})
	if err != nil {
		return r, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if r.First, err = db.FirstIndex(); err != nil {
		return r, fmt.Errorf("first index of %s: %w", path, err)
	}
	if r.Last, err = db.LastIndex(); err != nil {
		return r, fmt.Errorf("last index of %s: %w", path, err)
	}
	for i := range spec.indexes(r.First, r.Last) {
		var l raft.Log
		if err := db.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return r, fmt.Errorf("read entry %d of %s: %w", i, path, err)
		}
		data, cmd, off, err := spec.damaged(l)
		if err != nil {
			return r, fmt.Errorf("entry %d of %s: %w", i, path, err)
		}
		if data == nil {
			continue
		}
		r.Index, r.Type = i, cmd.Type
		if spec.Kind == Flip {
			r.Offset = off
		}
		l.Data = data
		if err := db.StoreLog(&l); err != nil {
			return r, fmt.Errorf("write entry %d of %s: %w", i, path, err)
		}
		if err := db.Sync(); err != nil {
			return r, fmt.Errorf("sync %s: %w", path, err)
		}
		return r, nil
	}
	return r, fmt.Errorf("%s (%s, type %s, above index %d) in %s, a log of %d to %d: %w",
		spec.Kind, spec.order(), typeName(spec.Type), spec.After, path, r.First, r.Last, ErrNoEntry)
}

func (s Spec) check() error {
	switch {
	case s.Kind != Flip && s.Kind != Rewrite:
		return fmt.Errorf("damage a raft log: %s is neither flip nor rewrite", s.Kind)
	case s.Kind == Rewrite && s.Change == nil:
		return errors.New("damage a raft log: rewrite needs a Change")
	}
	return nil
}

func (s Spec) order() string {
	if s.Oldest {
		return "oldest"
	}
	return "newest"
}

func typeName(t fsm.MessageType) string {
	if t == 0 {
		return "any"
	}
	return t.String()
}

// indexes yields the log's indexes above After in the order they are
// looked at.
func (s Spec) indexes(first, last uint64) iter.Seq[uint64] {
	low := max(first, s.After+1, 1)
	return func(yield func(uint64) bool) {
		if s.Oldest {
			for i := low; i <= last; i++ {
				if !yield(i) {
					return
				}
			}
			return
		}
		for i := last; i >= low; i-- {
			if !yield(i) {
				return
			}
		}
	}
}

// damaged returns the new data for an entry, the command it held and the
// byte flipped, or nil data when the entry is not one to damage.
func (s Spec) damaged(l raft.Log) ([]byte, fsm.Command, int, error) {
	if l.Type != raft.LogCommand || (s.Kind == Flip && len(l.Data) < 8) {
		return nil, fsm.Command{}, 0, nil
	}
	cmd, err := fsm.Decode(l.Data)
	if err != nil || (s.Type != 0 && cmd.Type != s.Type) || (s.Match != nil && !s.Match(cmd)) {
		return nil, cmd, 0, nil
	}
	if s.Kind == Rewrite {
		data, err := s.rewritten(l.Data, cmd)
		return data, cmd, -1, err
	}
	data, off, err := s.flipped(l.Data)
	return data, cmd, off, err
}

// flipped returns data with one byte xored, or nil when its checksum would
// not catch it.
func (s Spec) flipped(data []byte) ([]byte, int, error) {
	off := len(data) / 2
	if s.Offset != nil {
		off = s.Offset(len(data))
	}
	if off < 0 || off >= len(data) {
		return nil, off, fmt.Errorf("flip byte %d of %d", off, len(data))
	}
	mask := s.Mask
	if mask == 0 {
		mask = 0xff
	}
	out := bytes.Clone(data)
	out[off] ^= mask
	if _, err := fsm.Decode(out); !errors.Is(err, fsm.ErrCorrupt) {
		return nil, off, nil
	}
	return out, off, nil
}

// rewritten returns the entry's command, changed, encoded again.
func (s Spec) rewritten(old []byte, cmd fsm.Command) ([]byte, error) {
	if err := s.Change(&cmd); err != nil {
		return nil, fmt.Errorf("change %s: %w", cmd.Type, err)
	}
	data, err := fsm.Encode(cmd.Type, cmd.Header, cmd.Body)
	if err != nil {
		return nil, fmt.Errorf("encode %s again: %w", cmd.Type, err)
	}
	if bytes.Equal(data, old) {
		return nil, fmt.Errorf("change left the %s as it was", cmd.Type)
	}
	return data, nil
}
