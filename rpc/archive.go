package rpc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// EventArchive is what the API needs of a server's event archive: the
// events that left memory, served as part of the chain, and its segment
// files, served to peers that lack them.
type EventArchive interface {
	// ArchivedEvents returns up to limit archived events, of one
	// component if not empty, from the first at or after Raft index from
	// (byIndex) or after seq from, and before seq before.
	ArchivedEvents(byIndex bool, from, before uint64, component string, limit int) ([]fsm.Event, error)
	// OpenEventSegment opens segment k raw, with its size.
	OpenEventSegment(k uint64) (io.ReadCloser, int64, error)
	// VerifyChain checks this server's whole chain, archive included.
	VerifyChain() api.ChainCheck
	// CollectGarbage commits a state.gc now (on the leader).
	CollectGarbage(ctx context.Context, h fsm.Header, req api.GCRequest) (api.GCResult, error)
}

func (s *Server) routeArchive() {
	s.handle("GET /v1/operator/events/segments/{k}", s.getEventSegment)
	s.handle("GET /v1/operator/events/verify", s.verifyChain)
	s.handle("POST /v1/operator/gc", s.write(s.collectGarbage))
}

// archive returns the backend's event archive, if it keeps one.
func (s *Server) archive() EventArchive {
	a, _ := s.b.(EventArchive)
	return a
}

// getEventSegment serves one segment file of this server's archive (not
// forwarded: a server that lacks events asks a peer directly, with its
// server certificate; an operator may read them with operator read).
func (s *Server) getEventSegment(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireServerOrOperator(r, acl.Read); err != nil {
		return err
	}
	k, err := strconv.ParseUint(r.PathValue("k"), 10, 64)
	if err != nil || k == 0 {
		return fmt.Errorf("segment %q: want a segment number from 1: %w", r.PathValue("k"), fsm.ErrBadRequest)
	}
	a := s.archive()
	if a == nil {
		return fmt.Errorf("segment %d: this server keeps no event archive: %w", k, fsm.ErrNotFound)
	}
	rc, size, err := a.OpenEventSegment(k)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.CopyN(w, rc, size) // a client that goes away ends the copy
	return nil
}

// verifyChain checks this server's whole event chain (not forwarded: each
// server checks its own).
func (s *Server) verifyChain(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireServerOrOperator(r, acl.Read); err != nil {
		return err
	}
	a := s.archive()
	if a == nil {
		var check api.ChainCheck
		s.b.Read(func(st *fsm.State) {
			check = api.ChainCheck{NodeID: s.b.ID(), Held: st.HeldEvents(), Total: st.EventCount(), Head: st.Head().String(), OK: true}
			if err := st.VerifyEvents(); err != nil {
				check.OK, check.Error = false, err.Error()
			}
		})
		writeJSON(w, http.StatusOK, check)
		return nil
	}
	writeJSON(w, http.StatusOK, a.VerifyChain())
	return nil
}

// requireServerOrOperator allows a server certificate on a direct request,
// or an identity with operator access at level.
func (s *Server) requireServerOrOperator(r *http.Request, level acl.Level) error {
	var id *identity
	var err error
	s.b.Read(func(st *fsm.State) { id, err = s.identify(r, st, s.b.Now()) })
	if err != nil {
		return err
	}
	if id.cert.Role == tlsutil.RoleServer && r.Header.Get(api.HeaderForwarded) == "" {
		return nil
	}
	return id.require(acl.KindOperator, "", level)
}

// collectGarbage commits a collection now, on the leader.
func (s *Server) collectGarbage(w http.ResponseWriter, r *http.Request) error {
	who := identityOf(r)
	if err := who.require(acl.KindOperator, "", acl.Write); err != nil {
		return err
	}
	var req api.GCRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			return err
		}
	}
	if req.KeepPerSlot < 0 {
		return fmt.Errorf("keep_per_slot %d: want 1 or more: %w", req.KeepPerSlot, fsm.ErrBadRequest)
	}
	h, err := who.operatorHeader(r, "gc")
	if err != nil {
		return err
	}
	a := s.archive()
	if a == nil {
		return fmt.Errorf("collect: this server cannot: %w", fsm.ErrNotFound)
	}
	res, err := a.CollectGarbage(r.Context(), h, req)
	if err != nil {
		return err
	}
	s.logger.Info("operator collected", "index", res.Index, "runs", res.Runs, "components", res.Components, "events_archived", res.Archived, "by", who.principal())
	writeJSON(w, http.StatusOK, res)
	return nil
}
