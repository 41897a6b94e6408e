package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/bench"
	"github.com/ice-run/ice/internal/proctest"
)

// sampler reads each server's figures.
type sampler struct {
	acc     *bench.Access
	cluster *bench.IceCluster
	hc      *http.Client
}

// sample reads every server once, in parallel.
func (s *sampler) sample(ctx context.Context) []ServerSample {
	out := make([]ServerSample, len(s.cluster.Servers))
	var wg sync.WaitGroup
	for i, srv := range s.cluster.Servers {
		wg.Go(func() { out[i] = s.server(ctx, srv) })
	}
	wg.Wait()
	return out
}

func (s *sampler) server(ctx context.Context, srv *bench.IceServer) ServerSample {
	ss := ServerSample{ID: srv.ID}
	if srv.Proc == nil || !srv.Proc.Running() {
		ss.Err = "not running"
		return ss
	}
	var errs []string
	var err error
	if ss.RSS, err = proctest.RSS(srv.Proc.PID()); err != nil {
		errs = append(errs, err.Error())
	}
	ss.Snapshot, _ = newestSnapshotSize(srv.DataDir)
	ss.Archive, _ = archiveSize(srv.DataDir)
	if m, err := s.metrics(ctx, srv.HTTP, "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes"); err != nil {
		errs = append(errs, err.Error())
	} else {
		ss.HeapAlloc, ss.HeapInuse = int64(m[0]), int64(m[1])
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if st, err := bench.IceStatus(sctx, s.acc, srv.HTTP); err != nil {
		errs = append(errs, err.Error())
	} else {
		ss.Applied, ss.Leader = st.AppliedIndex, st.State == "Leader"
	}
	if ss.RSS == 0 {
		ss.Err = strings.Join(errs, "; ")
	} else {
		ss.Partial = strings.Join(errs, "; ")
	}
	return ss
}

// metrics reads the named unlabelled gauges from /metrics of the server at
// addr, in the order asked.
func (s *sampler) metrics(ctx context.Context, addr string, names ...string) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.acc.URL(addr)+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: HTTP %d", addr, resp.StatusCode)
	}
	return parseGauges(resp.Body, names)
}

// parseGauges finds "NAME VALUE" lines of the Prometheus text format.
func parseGauges(r io.Reader, names []string) ([]float64, error) {
	out := make([]float64, len(names))
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for i, n := range names {
			if name == n {
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					out[i] = v
					found++
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	if found < len(names) {
		return out, fmt.Errorf("metrics: found %d of %v", found, names)
	}
	return out, nil
}

// newestSnapshotSize is the size of state.bin of the most recently
// written snapshot under raft/snapshots (hashicorp/raft writes a snapshot
// into NAME.tmp and renames it when complete).
func newestSnapshotSize(dataDir string) (int64, error) {
	dirs, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	if err != nil {
		return 0, fmt.Errorf("snapshots of %s: %w", dataDir, err)
	}
	var newest time.Time
	var size int64
	for _, d := range dirs {
		if !d.IsDir() || strings.HasSuffix(d.Name(), ".tmp") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dataDir, "raft", "snapshots", d.Name(), "state.bin"))
		if err == nil && fi.ModTime().After(newest) {
			newest, size = fi.ModTime(), fi.Size()
		}
	}
	return size, nil
}

// archiveSize is the total size of the event archive's segments
// (events/*.seg; 0 while there are none).
func archiveSize(dataDir string) (int64, error) {
	segs, err := filepath.Glob(filepath.Join(dataDir, "events", "*.seg"))
	if err != nil {
		return 0, fmt.Errorf("archive of %s: %w", dataDir, err)
	}
	var total int64
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total, nil
}
