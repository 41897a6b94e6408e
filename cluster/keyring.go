package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/gossip"
)

// GossipKeyring runs a gossip keyring operation (list, install, use or
// remove; key is base64, ignored for list) on every live member, servers
// and agents, from this server: any server can, the leader is not needed.
// Each member applies it to its own keyring and persists it; the answer
// reports every member, and those that did not answer. Errors wrap fsm's
// sentinels for the API: a bad operation or key, or gossip encryption off
// (ErrBadRequest), an operation refused because it would cut members off
// (ErrConflict), a server shutting down (ErrShutdown). No error holds a
// key.
func (s *Server) GossipKeyring(ctx context.Context, op, key string) (*api.KeyringResponse, error) {
	kop, err := gossip.ParseOp(op)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, fsm.ErrBadRequest)
	}
	var raw []byte
	if kop != gossip.OpList {
		if raw, err = gossip.ParseKey(key); err != nil {
			return nil, fmt.Errorf("%w: %w", err, fsm.ErrBadRequest)
		}
	}
	rep, err := s.keyring.Fanout(ctx, kop, raw)
	result := "ok"
	switch {
	case err != nil:
		result = "refused"
	case len(rep.Failed()) > 0:
		result = "partial"
	}
	metrics.IncrCounterWithLabels([]string{"ice", "gossip", "keyring", "op"}, 1, []metrics.Label{{Name: "op", Value: string(kop)}, {Name: "result", Value: result}})
	if err != nil {
		return nil, keyringError(err)
	}
	return keyringResponse(s.cfg.NodeID, rep), nil
}

// keyringError adds the API's sentinel to a fan-out error.
func keyringError(err error) error {
	switch {
	case errors.Is(err, gossip.ErrRefused):
		return fmt.Errorf("%w: %w", err, fsm.ErrConflict)
	case errors.Is(err, gossip.ErrEncryptionOff):
		return fmt.Errorf("%w (gossip is plaintext: --insecure): %w", err, fsm.ErrBadRequest)
	case errors.Is(err, gossip.ErrInvalidKey), errors.Is(err, gossip.ErrInvalidOp):
		return fmt.Errorf("%w: %w", err, fsm.ErrBadRequest)
	case errors.Is(err, gossip.ErrClosed):
		return fmt.Errorf("%w: %w", err, fsm.ErrShutdown)
	}
	return err
}

// keyringResponse turns a fan-out report into the API's answer: members
// named with their keys' fingerprints, and for list the keys themselves
// with how many members hold each.
func keyringResponse(server string, rep *gossip.Report) *api.KeyringResponse {
	out := &api.KeyringResponse{Op: string(rep.Op), Server: server, Total: len(rep.Members)}
	if rep.Key != nil {
		out.KeyFingerprint = gossip.Fingerprint(rep.Key)
	}
	tally := map[string]*api.KeyringKey{}
	for _, m := range rep.Members {
		am := api.KeyringMember{Member: m.Name, Role: m.Role, Status: api.KeyringOK, Error: m.Err}
		switch {
		case !m.Answered:
			am.Status = api.KeyringNoAnswer
		case m.Err != "":
			am.Status = api.KeyringError
		}
		if am.Status == api.KeyringOK {
			out.OK++
		} else {
			out.Failed++
		}
		for i, k := range m.Keys {
			fp := gossip.Fingerprint(k)
			am.Keys = append(am.Keys, fp)
			t := tally[fp]
			if t == nil {
				t = &api.KeyringKey{Key: gossip.EncodeKey(k), Fingerprint: fp}
				tally[fp] = t
			}
			t.Installed++
			if i == 0 {
				am.Primary = fp
				t.Primary++
			}
		}
		out.Members = append(out.Members, am)
	}
	for _, t := range tally {
		out.Keys = append(out.Keys, *t)
	}
	sort.Slice(out.Keys, func(i, j int) bool {
		a, b := out.Keys[i], out.Keys[j]
		if a.Primary != b.Primary {
			return a.Primary > b.Primary
		}
		if a.Installed != b.Installed {
			return a.Installed > b.Installed
		}
		return a.Fingerprint < b.Fingerprint
	})
	return out
}
