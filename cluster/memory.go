package cluster

import (
	"context"
	"fmt"
	"sync"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// startMemoryExpiries expires memory records past their ttl, by this
// leader's clock, while this server leads.
func (s *Server) startMemoryExpiries(ctx context.Context, wg *sync.WaitGroup) {
	s.startExpiries(ctx, wg, fsm.MemoryExpireType, "memory", s.expireMemory)
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
