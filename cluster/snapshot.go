package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// MaxSnapshotBytes bounds the state of a snapshot archive a server accepts.
const MaxSnapshotBytes = 4 << 30

// SaveSnapshot takes a Raft snapshot now (or uses the newest one if nothing
// was applied since) and writes it to w as a verified archive.
func (s *Server) SaveSnapshot(w io.Writer) (api.ArchiveMeta, error) {
	var meta *raft.SnapshotMeta
	var rc io.ReadCloser
	f := s.raft.Snapshot()
	err := f.Error()
	switch {
	case err == nil:
		meta, rc, err = f.Open()
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		meta, rc, err = s.newestSnapshot()
	}
	if err != nil {
		return api.ArchiveMeta{}, fmt.Errorf("save snapshot: %w", err)
	}
	defer rc.Close()
	state, err := io.ReadAll(rc)
	if err != nil {
		return api.ArchiveMeta{}, fmt.Errorf("save snapshot %s: read: %w", meta.ID, err)
	}
	_, sm, err := fsm.ReadSnapshot(bytes.NewReader(state), nil)
	if err != nil {
		return api.ArchiveMeta{}, fmt.Errorf("save snapshot %s: verify: %w", meta.ID, err)
	}
	am := archiveMetaOf(sm, meta.Term, s.cfg.NodeID)
	if err := WriteArchive(w, am, state); err != nil {
		return am, fmt.Errorf("save snapshot %s: %w", meta.ID, err)
	}
	s.logger.Info("saved snapshot archive", "index", am.Index, "digest", am.Digest, "bytes", len(state))
	return am, nil
}

func (s *Server) newestSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	metas, err := s.stores.snaps.List()
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil, nil, errors.New("no snapshot to save")
	}
	return s.stores.snaps.Open(metas[0].ID)
}

// RestoreSnapshot replaces the whole cluster's state with an archive's
// (leader only). The archive is verified completely before Raft sees it;
// Raft then installs it on every server at a new index.
func (s *Server) RestoreSnapshot(r io.Reader) (api.ArchiveMeta, error) {
	if !s.IsLeader() {
		return api.ArchiveMeta{}, fsm.ErrNotLeader
	}
	am, _, state, err := ReadArchive(r, MaxSnapshotBytes)
	if err != nil {
		return am, fmt.Errorf("restore snapshot: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: am.Index, Term: am.Term, Size: int64(len(state))}
	if err := s.raft.Restore(meta, bytes.NewReader(state), s.cfg.ApplyTimeout); err != nil {
		return am, fmt.Errorf("restore snapshot at index %d: %w", am.Index, err)
	}
	s.logger.Warn("restored snapshot archive: the cluster's state was replaced", "archive_index", am.Index, "digest", am.Digest)
	return am, nil
}
