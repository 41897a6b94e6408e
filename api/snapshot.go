package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// SaveSnapshot downloads a snapshot archive into w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/v1/operator/snapshot", nil)
	if err != nil {
		return fmt.Errorf("build snapshot request: %w", err)
	}
	c.authorize(req)
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
func (c *Client) RestoreSnapshot(ctx context.Context, archive io.Reader) (*ArchiveMeta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.addr+"/v1/operator/snapshot", archive)
	if err != nil {
		return nil, fmt.Errorf("build restore request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readAPIError(resp)
	}
	var meta ArchiveMeta
	if err := decodeJSON(resp.Body, &meta); err != nil {
		return nil, fmt.Errorf("restore snapshot: decode answer: %w", err)
	}
	return &meta, nil
}
