package cluster

import (
	"context"
	"fmt"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Defaults of the collection (Config.GCInterval and the retentions). Runs
// stay for 4h, Nomad's job GC threshold. The events kept in memory are
// bounded twice: by age, so that a cluster of 100,000 runs holds a few
// tens of MB of them, and by count, so that a burst (a million runs
// deployed at once writes four million events in minutes) does not hold
// gigabytes until they age: about 90 MB of packed events at 500,000.
const (
	defaultGCInterval          = time.Minute
	defaultRunRetention        = 4 * time.Hour
	defaultRunKeepPerSlot      = 3
	defaultEventRetention      = 10 * time.Minute
	defaultEventRetentionCount = 50_000
	defaultEventRetentionMax   = 500_000
)

// eventCapCheck is how often the leader looks whether the events held past
// the checkpoint have grown beyond one and a half Config.EventRetentionMax,
// in which case it collects before the next GCInterval.
const eventCapCheck = 5 * time.Second

func (c *Config) gcDefaults() error {
	if c.GCInterval == 0 {
		c.GCInterval = defaultGCInterval
	}
	if c.RunRetention == 0 {
		c.RunRetention = defaultRunRetention
	}
	if c.RunKeepPerSlot == 0 {
		c.RunKeepPerSlot = defaultRunKeepPerSlot
	}
	if c.EventRetention == 0 {
		c.EventRetention = defaultEventRetention
	}
	if c.EventRetentionCount == 0 {
		c.EventRetentionCount = defaultEventRetentionCount
	}
	if c.EventRetentionMax == 0 {
		c.EventRetentionMax = max(defaultEventRetentionMax, c.EventRetentionCount)
	}
	switch {
	case c.EventRetentionMax < c.EventRetentionCount:
		return fmt.Errorf("config: event retention max %d is below the event retention count %d: the newest count always stay", c.EventRetentionMax, c.EventRetentionCount)
	case c.RunRetention < 0 || c.EventRetention < 0:
		return fmt.Errorf("config: run retention %s and event retention %s must not be negative", c.RunRetention, c.EventRetention)
	case c.RunKeepPerSlot < 1 || c.RunKeepPerSlot > 1000:
		return fmt.Errorf("config: run-keep-per-slot %d: want 1 to 1000 (the scheduler reads the newest ended run of each slot)", c.RunKeepPerSlot)
	}
	return nil
}

// gcRequest is the collection the configuration asks for, its event
// retention shortened so that at most about EventRetentionMax events stay
// past the checkpoint.
func (s *Server) gcRequest() *fsm.StateGCRequest {
	return &fsm.StateGCRequest{
		RunRetention:   int64(s.cfg.RunRetention),
		KeepPerSlot:    s.cfg.RunKeepPerSlot,
		EventRetention: int64(s.eventRetention()),
		EventKeep:      s.cfg.EventRetentionCount,
	}
}

// eventRetention is the configured event retention, or less when more
// than EventRetentionMax events are held past the checkpoint: then it
// reaches back only to the event EventRetentionMax before the head, so
// that the state.gc archives the events before it, whatever their age.
// The state machine's rule stays what it is (older than the retention and
// beyond the newest EventRetentionCount): the cap is the leader's choice
// of retention, and replay does not depend on it.
func (s *Server) eventRetention() time.Duration {
	retention := s.cfg.EventRetention
	var oldest int64
	var over bool
	s.sm.read(func(st *fsm.State) {
		total, cp := st.EventCount(), st.Checkpoint().Seq
		if total-cp > s.cfg.EventRetentionMax {
			oldest, over = st.EventTime(total - s.cfg.EventRetentionMax)
		}
	})
	if !over {
		return retention
	}
	// The command's time is at least this server's clock now, so a cutoff
	// of now-d reaches the oldest kept event's time or later.
	d := max(time.Duration(s.now().UnixNano()-oldest), 0)
	return min(retention, d)
}

// eventsOverCap reports whether the events held past the checkpoint are
// more than one and a half EventRetentionMax: a burst the next GCInterval
// should not wait for.
func (s *Server) eventsOverCap() bool {
	var over bool
	s.sm.read(func(st *fsm.State) {
		over = st.EventCount()-st.Checkpoint().Seq > s.cfg.EventRetentionMax+s.cfg.EventRetentionMax/2
	})
	return over
}

// collections commits a state.gc every GCInterval while this server leads,
// and sooner when the events held grow past one and a half their cap. It returns
// when ctx ends (leadership lost or shutdown).
func (s *Server) collections(ctx context.Context) {
	if s.cfg.GCInterval < 0 {
		return
	}
	timer := time.NewTimer(s.cfg.GCInterval)
	defer timer.Stop()
	check := time.NewTicker(min(eventCapCheck, s.cfg.GCInterval))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-check.C:
			if !s.eventsOverCap() {
				continue
			}
			metrics.IncrCounter([]string{"ice", "gc", "event_cap"}, 1)
		}
		if v := s.BodyVersion(); v != 0 && v < fsm.MinBodyVersion(fsm.StateGCType) {
			s.logger.Debug("not collecting: a server of the cluster cannot read state.gc yet", "body_version", v)
		} else if _, err := s.collect(ctx, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "gc"}, s.gcRequest()); err != nil && ctx.Err() == nil {
			s.logger.Warn("collection failed", "error", err)
		}
		timer.Reset(s.cfg.GCInterval)
	}
}

// CollectGarbage commits a state.gc now as the given actor, with the
// configured retentions where req leaves them empty, and returns what it
// did (a zero Index: nothing was old enough).
func (s *Server) CollectGarbage(ctx context.Context, h fsm.Header, req api.GCRequest) (api.GCResult, error) {
	body := s.gcRequest()
	for _, d := range []struct {
		v   string
		dst *int64
	}{{req.RunRetention, &body.RunRetention}, {req.EventRetention, &body.EventRetention}} {
		if d.v == "" {
			continue
		}
		dur, err := time.ParseDuration(d.v)
		if err != nil || dur < 0 {
			return api.GCResult{}, fmt.Errorf("collect: retention %q: want a duration such as 4h or 0s: %w", d.v, fsm.ErrBadRequest)
		}
		*d.dst = int64(dur)
	}
	if req.KeepPerSlot != 0 {
		body.KeepPerSlot = req.KeepPerSlot
	}
	if req.EventKeep != nil {
		body.EventKeep = *req.EventKeep
	}
	return s.collect(ctx, h, body)
}

func (s *Server) collect(ctx context.Context, h fsm.Header, body *fsm.StateGCRequest) (api.GCResult, error) {
	start := time.Now()
	res, err := s.Apply(ctx, fsm.StateGCType, h, body)
	if err != nil {
		return api.GCResult{}, fmt.Errorf("collect: %w", err)
	}
	if res.Err != nil {
		return api.GCResult{}, fmt.Errorf("collect: %w", res.Err)
	}
	var out api.GCResult
	s.sm.read(func(st *fsm.State) {
		if gc := st.LastGC(); gc.Index == res.Index {
			out = api.GCResult(gc)
		}
	})
	metrics.MeasureSince([]string{"ice", "gc", "duration"}, start)
	if out.Index != 0 {
		metrics.IncrCounter([]string{"ice", "gc", "runs"}, float32(out.Runs))
		metrics.IncrCounter([]string{"ice", "gc", "components"}, float32(out.Components))
		metrics.IncrCounter([]string{"ice", "gc", "events", "archived"}, float32(out.Archived))
		s.logger.Info("collected", "index", out.Index, "runs", out.Runs, "components", out.Components,
			"events_archived", out.Archived, "checkpoint", out.Checkpoint, "by", h.Actor)
	}
	return out, nil
}
