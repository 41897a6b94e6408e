package rpc

import (
	"net/http"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/cluster"
)

// getSnapshot serves GET /v1/operator/snapshot: a verified archive of a
// snapshot taken now on the leader.
func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
		return err
	}
	// A snapshot holds every token's secret hash and every spec: it needs
	// operator write, as a restore does.
	if err := s.requireLocal(r, acl.KindOperator, acl.Write); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if _, err := s.b.SaveSnapshot(w); err != nil {
		// Headers may be out already; the client sees a truncated archive,
		// which ReadArchive refuses.
		return err
	}
	return nil
}

// putSnapshot serves PUT /v1/operator/snapshot: restore an archive on the
// running cluster.
func (s *Server) putSnapshot(w http.ResponseWriter, r *http.Request) error {
	if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
		return err
	}
	if err := s.requireLocal(r, acl.KindOperator, acl.Write); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, cluster.MaxSnapshotBytes+maxArchiveOverhead)
	meta, err := s.b.RestoreSnapshot(r.Body)
	if err != nil {
		return err
	}
	s.logger.Warn("operator restored a snapshot", "index", meta.Index, "digest", meta.Digest)
	writeJSON(w, http.StatusOK, meta)
	return nil
}

// maxArchiveOverhead allows for an archive's meta, sums and tar headers.
const maxArchiveOverhead = 4 << 20
