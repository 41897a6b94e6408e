package rpc

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/ice-run/ice/cluster"
)

// getSnapshot serves GET /v1/operator/snapshot: a verified archive of a
// snapshot taken now on the leader.
func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	if forwarded, err := s.forward(w, r); forwarded || err != nil {
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
	if forwarded, err := s.forward(w, r); forwarded || err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, cluster.MaxSnapshotBytes+maxArchiveOverhead)
	meta, err := s.b.RestoreSnapshot(r.Body)
	if err != nil {
		return err
	}
	s.logger.Warn("operator restored a snapshot", "operator", r.Header.Get(HeaderOperator), "index", meta.Index, "digest", meta.Digest)
	writeJSON(w, http.StatusOK, meta)
	return nil
}

// maxArchiveOverhead allows for an archive's meta, sums and tar headers.
const maxArchiveOverhead = 4 << 20

// SaveSnapshot downloads a snapshot archive into w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/v1/operator/snapshot", nil)
	if err != nil {
		return fmt.Errorf("build snapshot request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("save snapshot: download: %w", err)
	}
	return nil
}

// RestoreSnapshot uploads an archive and replaces the cluster's state.
func (c *Client) RestoreSnapshot(ctx context.Context, archive io.Reader) (*cluster.ArchiveMeta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.addr+"/v1/operator/snapshot", archive)
	if err != nil {
		return nil, fmt.Errorf("build restore request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	if c.Operator != "" {
		req.Header.Set(HeaderOperator, c.Operator)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readAPIError(resp)
	}
	var meta cluster.ArchiveMeta
	if err := decodeJSON(resp.Body, &meta); err != nil {
		return nil, fmt.Errorf("restore snapshot: decode answer: %w", err)
	}
	return &meta, nil
}
