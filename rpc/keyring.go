package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

// KeyringBackend is what the gossip keyring endpoints need from a server;
// *cluster.Server provides it. A Backend without it answers them 400.
type KeyringBackend interface {
	// GossipKeyring runs a keyring operation (list, install, use, remove)
	// on every live gossip member and reports what each answered.
	GossipKeyring(ctx context.Context, op, key string) (*api.KeyringResponse, error)
}

var _ KeyringBackend = (*cluster.Server)(nil)

// maxKeyringBody bounds a keyring request body: one base64 key.
const maxKeyringBody = 4 << 10

// routeKeyring mounts the gossip keyring endpoints. Any server fans the
// operation out over gossip itself (agents have no API), so requests are not
// forwarded to the leader. Every one needs operator write, list too: it
// answers with the keys.
func (s *Server) routeKeyring() {
	s.handle("GET /v1/operator/keyring", s.keyring("list"))
	s.handle("POST /v1/operator/keyring/install", s.keyring("install"))
	s.handle("POST /v1/operator/keyring/use", s.keyring("use"))
	s.handle("POST /v1/operator/keyring/remove", s.keyring("remove"))
}

// keyring returns the handler of one keyring operation.
func (s *Server) keyring(op string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		who, err := s.localIdentity(r, acl.KindOperator, acl.Write)
		if err != nil {
			return err
		}
		kb, ok := s.b.(KeyringBackend)
		if !ok {
			return fmt.Errorf("this server has no gossip keyring: %w", fsm.ErrBadRequest)
		}
		var req api.KeyringRequest
		if op != "list" {
			if req, err = decodeKeyringRequest(w, r); err != nil {
				return err
			}
		}
		resp, err := kb.GossipKeyring(r.Context(), op, req.Key)
		if err != nil {
			return err
		}
		s.logger.Info("operator ran a gossip keyring operation", "op", op, "key", resp.KeyFingerprint, "members", resp.Total, "failed", resp.Failed, "by", who.principal())
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
}

// localIdentity identifies the request against this server's state (as
// requireLocal does) and requires want on kind; it returns the identity
// for the log.
func (s *Server) localIdentity(r *http.Request, kind acl.Kind, want acl.Level) (*identity, error) {
	var id *identity
	var err error
	s.b.Read(func(st *fsm.State) {
		if id, err = s.identify(r, st, s.b.Now()); err == nil {
			err = id.require(kind, "", want)
		}
	})
	return id, err
}

// decodeKeyringRequest reads {"key": "..."}. Its errors never quote the
// body, which holds a key.
func decodeKeyringRequest(w http.ResponseWriter, r *http.Request) (api.KeyringRequest, error) {
	var req api.KeyringRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxKeyringBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return req, fmt.Errorf("body over %d bytes: %w", maxKeyringBody, fsm.ErrTooLarge)
	case errors.Is(err, io.EOF):
		return req, fmt.Errorf(`empty body, want {"key": "<base64>"}: %w`, fsm.ErrBadRequest)
	case err != nil:
		return req, fmt.Errorf(`decode JSON body, want {"key": "<base64>"}: %w`, fsm.ErrBadRequest)
	}
	if req.Key == "" {
		return req, fmt.Errorf(`no key in the body, want {"key": "<base64>"}: %w`, fsm.ErrBadRequest)
	}
	return req, nil
}
