package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// Grant expiry: a GRANTED grant ends by itself at its ExpireTime, but the
// state machine only knows the time of the entries it applies, so the
// leader commits a grant.expire (as the runtime) for the grants whose
// expiry its clock has passed. The entry's time, which Apply stamps with
// the same clock (and never before the newest committed time), is at or
// after each expiry: the state machine accepts every id listed.

const (
	// grantExpiryInterval is how often the leader looks for expired grants.
	grantExpiryInterval = time.Second
	// maxExpireBatch bounds the ids of one grant.expire entry.
	maxExpireBatch = 1000
)

// startGrantExpiries runs the grant expiry loop in a goroutine wg waits for.
func (s *Server) startGrantExpiries(ctx context.Context, wg *sync.WaitGroup) {
	s.startExpiries(ctx, wg, fsm.GrantExpireType, "grant", s.expireGrants)
}

// startExpiries calls expire every grantExpiryInterval while this server
// leads (until ctx ends), in a goroutine wg waits for, once every server
// of the cluster reads t.
func (s *Server) startExpiries(ctx context.Context, wg *sync.WaitGroup, t fsm.MessageType, what string, expire func(context.Context) error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(grantExpiryInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if v, need := s.BodyVersion(), fsm.MinBodyVersion(t); v < need {
				continue // some server cannot read the expiry (nor hold what it ends)
			}
			if err := expire(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn(what+" expiry failed", "error", err)
			}
		}
	}()
}

// expireGrants commits grant.expire entries, of at most maxExpireBatch ids
// each, until no GRANTED grant is past its expiry by this server's clock.
func (s *Server) expireGrants(ctx context.Context) error {
	for {
		ids := s.dueGrants(s.Now().UnixNano(), maxExpireBatch)
		if len(ids) == 0 {
			return nil
		}
		res, err := s.Apply(ctx, fsm.GrantExpireType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "grant expiry"}, &fsm.GrantExpireRequest{IDs: ids})
		if err != nil {
			return fmt.Errorf("expire %d grants: %w", len(ids), err)
		}
		if res.Err != nil {
			return fmt.Errorf("expire %d grants: %w", len(ids), res.Err)
		}
		metrics.IncrCounter([]string{"ice", "grants", "expired"}, float32(len(ids)-res.Rejected()))
		if res.Rejected() == len(ids) {
			// Nothing moved (every id changed meanwhile): do not spin.
			return fmt.Errorf("expire %d grants: every one refused, the first: %w", len(ids), res.FirstErr())
		}
		if len(ids) < maxExpireBatch {
			return nil
		}
	}
}

// dueGrants returns up to limit GRANTED grants whose expiry is at or
// before now, oldest first.
func (s *Server) dueGrants(now int64, limit int) []string {
	var ids []string
	s.Read(func(st *fsm.State) {
		for _, g := range st.Grants(fsm.GrantFilter{Status: fsm.GrantGranted}) {
			if g.ExpireTime <= now {
				ids = append(ids, g.ID)
				if len(ids) == limit {
					return
				}
			}
		}
	})
	return ids
}
