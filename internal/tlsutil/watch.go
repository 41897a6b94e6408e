package tlsutil

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// WatchSIGHUP reloads the Store each time the process receives SIGHUP, until
// ctx is done or stop is called, and logs each outcome: the new
// certificate's identity, serial and expiry, or the error and that the
// current material is kept. stop ends the watch and waits for its
// goroutine; it may be called more than once.
func (s *Store) WatchSIGHUP(ctx context.Context, logger hclog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return s.watch(ctx, ch, func() { signal.Stop(ch) }, logger)
}

// watch reloads on every value from ch; unsubscribe runs when it ends.
func (s *Store) watch(ctx context.Context, ch <-chan os.Signal, unsubscribe func(), logger hclog.Logger) (stop func()) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				s.reloadAndLog(logger)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

func (s *Store) reloadAndLog(logger hclog.Logger) {
	if err := s.Reload(); err != nil {
		logger.Error("TLS reload failed; still using the previous certificates", "ca_file", s.cfg.CAFile, "cert_file", s.cfg.CertFile, "error", err)
		return
	}
	args := []any{"ca_file", s.cfg.CAFile, "cas", len(s.CAs())}
	if leaf := s.Leaf(); leaf != nil {
		args = append(args, "identity", s.Identity().String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC())
	}
	logger.Info("TLS certificates reloaded", args...)
}
