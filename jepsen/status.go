package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/clustercreds"
)

// StatusView is the part of GET /v1/status the nemesis watches, decoded
// from the JSON itself: it sees the cluster's alarms whether or not the
// api package of this build declares them.
type StatusView struct {
	NodeID       string           `json:"node_id"`
	State        string           `json:"state"`
	Leader       string           `json:"leader"`
	AppliedIndex uint64           `json:"applied_index"`
	Servers      []api.ServerInfo `json:"servers"`
	// Corrupt says this server halted (at a damaged entry, or because an
	// alarm names it).
	Corrupt *api.Corruption `json:"corrupt,omitempty"`
	// Alarms are the cluster's raised alarms, from the replicated state.
	Alarms []AlarmView `json:"alarms,omitempty"`
}

// AlarmView is one raised alarm.
type AlarmView struct {
	Type        string `json:"type"`
	Server      string `json:"server"`
	Index       uint64 `json:"index"`
	Detail      string `json:"detail"`
	RaisedIndex uint64 `json:"raised_index"`
}

// AlarmFor returns the alarm naming server, or nil.
func (st *StatusView) AlarmFor(server string) *AlarmView {
	i := slices.IndexFunc(st.Alarms, func(a AlarmView) bool { return a.Server == server })
	if i < 0 {
		return nil
	}
	return &st.Alarms[i]
}

// rawClient GETs a server's status with the management token.
type rawClient struct {
	url   string
	token string
	http  *http.Client
}

func newRawClient(creds *clustercreds.Creds, addr string) (*rawClient, error) {
	tc, err := api.ClientTLS(creds.CAFile, "", "", "")
	if err != nil {
		return nil, fmt.Errorf("status client of %s: %w", addr, err)
	}
	return &rawClient{url: "https://" + addr + "/v1/status", token: creds.Token,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 2}}}, nil
}

// StatusView reads the server's status.
func (s *Server) StatusView(ctx context.Context) (*StatusView, error) {
	c := s.raw
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.ID, err)
	}
	req.Header.Set(api.HeaderToken, c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.ID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: HTTP %d: %s", s.ID, resp.StatusCode, truncate(string(b), 200))
	}
	var st StatusView
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("status of %s: decode: %w", s.ID, err)
	}
	return &st, nil
}
