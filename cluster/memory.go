package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// startMemoryExpiries runs memoryExpiries on wg while ctx lives.
func (s *Server) startMemoryExpiries(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.memoryExpiries(ctx)
	}()
}

// memoryExpiries expires memory records past their ttl, by this leader's
// clock, every grantExpiryInterval while this server leads.
func (s *Server) memoryExpiries(ctx context.Context) {
	tick := time.NewTicker(grantExpiryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if v, need := s.BodyVersion(), fsm.MinBodyVersion(fsm.MemoryExpireType); v < need {
			continue // some server cannot read memory.expire (nor hold records)
		}
		if err := s.expireMemory(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("memory expiry failed", "error", err)
		}
	}
}

// expireMemory commits memory.expire entries until no ACTIVE record is
// past its expiry.
func (s *Server) expireMemory(ctx context.Context) error {
	for {
		var refs []fsm.MemoryRef
		now := s.Now().UnixNano()
		s.Read(func(st *fsm.State) { refs = st.ExpiredMemory(now, maxExpireBatch) })
		if len(refs) == 0 {
			return nil
		}
		res, err := s.Apply(ctx, fsm.MemoryExpireType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "memory expiry"}, &fsm.MemoryExpireRequest{Refs: refs})
		if err != nil {
			return fmt.Errorf("expire %d memory records: %w", len(refs), err)
		}
		if res.Err != nil {
			return fmt.Errorf("expire %d memory records: %w", len(refs), res.Err)
		}
		metrics.IncrCounter([]string{"ice", "memory", "expired"}, float32(len(refs)-res.Rejected()))
		if res.Rejected() == len(refs) {
			return fmt.Errorf("expire %d memory records: every one refused, the first: %w", len(refs), res.FirstErr())
		}
		if len(refs) < maxExpireBatch {
			return nil
		}
	}
}
