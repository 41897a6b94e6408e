package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one write for client number client (0-based) and returns when
// it is committed. seq counts the client's calls from 0.
type Op func(ctx context.Context, client int, seq uint64) error

// LoadConfig is one concurrency level of a closed-loop load: Clients
// goroutines each issue one write after the other.
type LoadConfig struct {
	Clients  int
	Warmup   time.Duration
	Duration time.Duration
	// OpTimeout bounds one write (default 10s).
	OpTimeout time.Duration
	// ServerPIDs are the processes of the system under test whose CPU time
	// during the measured window is reported per write (none: not
	// reported, as for a system inside this process).
	ServerPIDs []int
}

// Level is the measured result of one concurrency level.
type Level struct {
	Clients int `json:"clients"`
	// Target says where the writes went ("leader", "follower", ...).
	Target      string  `json:"target,omitempty"`
	DurationSec float64 `json:"duration_s"`
	Ops         int     `json:"ops"`
	Errors      int     `json:"errors"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	MeanMs      float64 `json:"mean_ms"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	// ServerCPUUsPerOp is the CPU time (user + system) the server
	// processes used during the window, per write; ClientCPUUsPerOp is
	// this process's (the load generator's, and for a system inside this
	// process, the system's too). Both machines' cores are shared, so their
	// sum bounds what the machine can do: cores / sum.
	ServerCPUUsPerOp float64 `json:"server_cpu_us_per_op,omitempty"`
	ClientCPUUsPerOp float64 `json:"client_cpu_us_per_op,omitempty"`
}

// RunLoad runs one level: Warmup without recording, then Duration during
// which every write that completes is recorded. Throughput is the writes
// completed inside the window divided by its length; latencies are those of
// the same writes (time from send to commit acknowledged), sorted exactly.
func RunLoad(ctx context.Context, cfg LoadConfig, op Op) Level {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const (
		warming = iota
		measuring
		stopped
	)
	var phase atomic.Int32
	type clientStats struct {
		lat      []time.Duration
		errors   int
		firstErr error
	}
	stats := make([]clientStats, cfg.Clients)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[i]
			st.lat = make([]time.Duration, 0, 1024)
			for seq := uint64(0); ctx.Err() == nil; seq++ {
				octx, ocancel := context.WithTimeout(ctx, cfg.OpTimeout)
				t0 := time.Now()
				err := op(octx, i, seq)
				d := time.Since(t0)
				ocancel()
				switch phase.Load() {
				case measuring:
					if err != nil {
						st.errors++
						if st.firstErr == nil {
							st.firstErr = err
						}
					} else {
						st.lat = append(st.lat, d)
					}
				case stopped:
					return
				}
				if err != nil && ctx.Err() == nil {
					// Do not spin on a refusing server.
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	sleepCtx(ctx, cfg.Warmup)
	start := time.Now()
	servers, self := newCPUMeter(cfg.ServerPIDs), newCPUMeter([]int{0})
	phase.Store(measuring)
	sleepCtx(ctx, cfg.Duration)
	phase.Store(stopped)
	window := time.Since(start)
	serverCPU, selfCPU := servers.seconds(), self.seconds()
	cancel()
	wg.Wait()

	var all []time.Duration
	lv := Level{Clients: cfg.Clients, DurationSec: window.Seconds()}
	for i := range stats {
		all = append(all, stats[i].lat...)
		lv.Errors += stats[i].errors
		if lv.FirstError == "" && stats[i].firstErr != nil {
			lv.FirstError = stats[i].firstErr.Error()
		}
	}
	summarise(&lv, all, window)
	if n := float64(len(all)); n > 0 {
		if len(cfg.ServerPIDs) > 0 && serverCPU >= 0 {
			lv.ServerCPUUsPerOp = serverCPU / n * 1e6
		}
		if selfCPU >= 0 {
			lv.ClientCPUUsPerOp = selfCPU / n * 1e6
		}
	}
	return lv
}

func summarise(lv *Level, all []time.Duration, window time.Duration) {
	lv.Ops = len(all)
	if window > 0 {
		lv.OpsPerSec = float64(len(all)) / window.Seconds()
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	lv.MeanMs = ms(sum / time.Duration(len(all)))
	lv.P50Ms = ms(Percentile(all, 0.50))
	lv.P90Ms = ms(Percentile(all, 0.90))
	lv.P99Ms = ms(Percentile(all, 0.99))
	lv.MaxMs = ms(all[len(all)-1])
}

// Percentile returns the q-quantile (0..1) of sorted durations by the
// nearest-rank method.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Payload returns a payload of exactly size bytes that differs per client
// and sequence number, so that every write changes the stored value.
func Payload(size, client int, seq uint64) []byte {
	head := fmt.Sprintf("c%05d-s%012d-", client, seq)
	b := make([]byte, size)
	n := copy(b, head)
	for i := n; i < size; i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
