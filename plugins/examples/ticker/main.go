// Command ticker is a long-running ICE component: every interval it appends
// one line "epoch run_id unix_nanos" to the file named in its config, so a
// test can check from the file that two epochs of one slot never ran at the
// same time.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type ticker struct {
	mu      sync.Mutex
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

func (t *ticker) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "ticker", Version: "1.0.0", Kind: plugins.KindService}, nil
}

func (t *ticker) Start(_ context.Context, req plugins.StartRequest) error {
	path := req.Config["file"]
	if path == "" {
		return fmt.Errorf("config: file is required")
	}
	interval := time.Second
	if v := req.Config["interval"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("config: interval %q: want a positive duration", v)
		}
		interval = d
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		defer f.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			// One write per line, O_APPEND: lines from concurrent runs
			// never interleave within a line.
			_, err := fmt.Fprintf(f, "%d %s %d\n", req.Epoch, req.RunID, time.Now().UnixNano())
			t.mu.Lock()
			t.lastErr = err
			t.mu.Unlock()
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
		}
	}()
	sdk.Logger().Info("ticking", "file", path, "interval", interval)
	return nil
}

func (t *ticker) Health(context.Context) (plugins.Health, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr != nil {
		return plugins.Health{Healthy: false, Message: t.lastErr.Error()}, nil
	}
	return plugins.Health{Healthy: true}, nil
}

func (t *ticker) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }

func (t *ticker) Stop(_ context.Context, deadline time.Time) error {
	if t.stop == nil {
		return nil
	}
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	select {
	case <-t.done:
		return nil
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("ticker did not stop by the deadline")
	}
}

func main() { sdk.Serve(&ticker{}) }
