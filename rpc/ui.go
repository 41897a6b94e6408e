package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/ui"
)

// The web UI (package ui) is served by every server on the API's listener:
// /ui/ its pages, GET / a redirect there. Its pages call the API with the
// operator's token; the endpoints here are the few it needs that the CLI
// does not:
//
//   - GET /v1/acl/token/self/can?write=component:NAME&read=memory:TYPE...
//     answers what the request's token may do, so that a page renders no
//     control its token may not use (the API still decides every call);
//   - POST /v1/ui/spec parses a component spec in HCL or JSON, as `ice
//     deploy` does, and answers it as the JSON PUT /v1/components/{name}
//     takes (a browser cannot parse HCL);
//   - GET /v1/ui/servers answers every server's /v1/status, asked by this
//     server (a browser may not call the others' origins), and whether
//     their state digests agree at one index.
func (s *Server) routeUI() {
	s.mux.Handle("GET /ui/", ui.Handler())
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	s.handle("GET /v1/acl/token/self/can", s.read(s.getTokenCan))
	s.handle("POST /v1/ui/spec", s.parseSpecForUI)
	s.handle("GET /v1/ui/servers", s.getUIServers)
}

// getTokenCan answers {"write": {"component:web": true}, ...}: for each
// level=kind:name asked, whether the token may. An empty name asks about
// any resource of the kind (a page's "may deploy anything").
func (s *Server) getTokenCan(r *http.Request, st *fsm.State, id *identity) (any, error) {
	out := map[string]map[string]bool{}
	for _, level := range []acl.Level{acl.Read, acl.Write} {
		for _, q := range r.URL.Query()[level.String()] {
			kind, name, _ := strings.Cut(q, ":")
			if !validKind(acl.Kind(kind)) {
				return nil, fmt.Errorf("%s=%q: want KIND:NAME with a kind of %v: %w", level, q, uiKinds, fsm.ErrBadRequest)
			}
			var ok bool
			switch {
			case !id.acls:
				ok = true
			case name == "":
				ok = id.authz.AllowsAny(acl.Kind(kind), level)
			default:
				ok = id.authz.Allows(acl.Kind(kind), name, level)
			}
			if out[level.String()] == nil {
				out[level.String()] = map[string]bool{}
			}
			out[level.String()][q] = ok
		}
	}
	return out, nil
}

var uiKinds = []acl.Kind{acl.KindComponent, acl.KindNode, acl.KindCapability, acl.KindMemory, acl.KindOperator, acl.KindACL}

func validKind(k acl.Kind) bool {
	for _, v := range uiKinds {
		if k == v {
			return true
		}
	}
	return false
}

// parseSpecForUI parses an HCL or JSON spec and answers it as JSON. It
// reads no state and needs no authority: it is the parser `ice deploy`
// runs on the operator's machine.
func (s *Server) parseSpecForUI(w http.ResponseWriter, r *http.Request) error {
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("spec over %d bytes: %w", MaxBodyBytes, fsm.ErrTooLarge)
		}
		return fmt.Errorf("read spec: %v: %w", err, fsm.ErrBadRequest)
	}
	sp, err := api.ParseSpecFile("spec", src)
	if err != nil {
		if !errors.Is(err, fsm.ErrBadRequest) {
			err = fmt.Errorf("%w: %w", err, fsm.ErrBadRequest)
		}
		return err
	}
	writeJSON(w, http.StatusOK, sp)
	return nil
}

// UIServer is one server in GET /v1/ui/servers.
type UIServer struct {
	api.ServerInfo
	// Status is the server's own /v1/status (nil: it did not answer).
	Status *api.Status `json:"status,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// UIServers is GET /v1/ui/servers.
type UIServers struct {
	Self    api.Status `json:"self"`
	Servers []UIServer `json:"servers"`
	// Digests is "agree" when every server that answered has the same
	// state digest at one index (a digest mark they all hold, or the same
	// applied index), "disagree" when they differ there, "unknown" when no
	// index is common to them or a server did not answer.
	Digests     string `json:"digests"`
	DigestIndex uint64 `json:"digest_index,omitempty"`
	DigestsNote string `json:"digests_note,omitempty"`
	// LeaderChanges is the leader changes the answering server observed
	// since it started, newest first.
	LeaderChanges []cluster.LeaderChange `json:"leader_changes"`
}

// uiClients holds one HTTP client per Server for asking peers' status.
var uiClients sync.Map

func (s *Server) uiClient() *http.Client {
	if c, ok := uiClients.Load(s); ok {
		return c.(*http.Client)
	}
	tr := &http.Transport{TLSClientConfig: s.opts.ForwardTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	c, _ := uiClients.LoadOrStore(s, &http.Client{Transport: tr, Timeout: 2 * time.Second})
	return c.(*http.Client)
}

func (s *Server) getUIServers(w http.ResponseWriter, r *http.Request) error {
	self, err := s.b.Status()
	if err != nil {
		return err
	}
	self.Secure, self.ACLs = s.opts.Secure, s.opts.ACLs
	out := UIServers{Self: self, Servers: make([]UIServer, len(self.Servers)), LeaderChanges: s.b.LeaderChanges()}
	if out.LeaderChanges == nil {
		out.LeaderChanges = []cluster.LeaderChange{}
	}
	var wg sync.WaitGroup
	for i, info := range self.Servers {
		out.Servers[i].ServerInfo = info
		if info.ID == self.NodeID {
			st := self
			out.Servers[i].Status = &st
			continue
		}
		if info.HTTPAddr == "" {
			out.Servers[i].Error = "no HTTP address known"
			continue
		}
		wg.Add(1)
		go func(u *UIServer) {
			defer wg.Done()
			st, err := s.peerStatus(r.Context(), u.HTTPAddr)
			if err != nil {
				u.Error = err.Error()
				return
			}
			u.Status = st
		}(&out.Servers[i])
	}
	wg.Wait()
	out.Digests, out.DigestIndex, out.DigestsNote = compareDigests(out.Servers)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) peerStatus(ctx context.Context, addr string) (*api.Status, error) {
	scheme := "http"
	if s.opts.ForwardTLS != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	res, err := s.uiClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", addr, err)
	}
	defer res.Body.Close()
	var st api.Status
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	if res.StatusCode != http.StatusOK && st.NodeID == "" {
		return nil, fmt.Errorf("status of %s: %s", addr, res.Status)
	}
	return &st, nil
}

// compareDigests compares the servers' digests at the newest digest mark
// they all hold, else at their applied index if it is the same.
func compareDigests(servers []UIServer) (verdict string, index uint64, note string) {
	var sts []*api.Status
	for _, s := range servers {
		if s.Status == nil {
			return "unknown", 0, fmt.Sprintf("server %s did not answer: %s", s.ID, s.Error)
		}
		sts = append(sts, s.Status)
	}
	if len(sts) == 0 {
		return "unknown", 0, "no servers"
	}
	if len(sts) == 1 {
		return "agree", sts[0].AppliedIndex, "one server"
	}
	marks := make([]map[uint64]string, len(sts))
	for i, st := range sts {
		marks[i] = map[uint64]string{}
		for _, m := range st.Marks {
			marks[i][m.Index] = m.Digest
		}
		// A server's current digest is at its applied index.
		marks[i][st.AppliedIndex] = st.Digest
	}
	var best uint64
	for idx := range marks[0] {
		common := true
		for _, m := range marks[1:] {
			if _, ok := m[idx]; !ok {
				common = false
				break
			}
		}
		if common && idx > best {
			best = idx
		}
	}
	if best == 0 {
		return "unknown", 0, "no index common to every server's digest marks yet"
	}
	want := marks[0][best]
	for i, m := range marks[1:] {
		if m[best] != want {
			return "disagree", best, fmt.Sprintf("at index %d %s has %.12s, %s has %.12s", best, sts[0].NodeID, want, sts[i+1].NodeID, m[best])
		}
	}
	return "agree", best, fmt.Sprintf("at index %d", best)
}
