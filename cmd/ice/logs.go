package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func newLogsCmd() *cobra.Command {
	var (
		o      clientOpts
		tail   int64
		follow bool
		poll   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs RUN_ID",
		Short: "Print a run's plugin log, read from the agent that ran it",
		Long: `Print the plugin log of a run (its plugin's stdout and stderr), which its
agent keeps in <agent data dir>/runs/<run id>.log. The server proxies it from
the agent's log listener (ice agent --http), so no one needs to ssh to the
node; the token must be able to read the run's component, as for ice runs
RUN_ID. RUN_ID may be a unique prefix of the id.

--tail N prints only the last N bytes; --follow keeps printing what the
plugin writes until the run is TERMINATED (then it prints the rest and the
run's outcome) or until interrupted. See docs/run-logs.md.`,
		Example: `  ice logs 0123abcd
  ice logs 0123abcd --tail 4096      # the last 4 KiB
  ice logs 0123abcd -f               # follow, like tail -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if tail < 0 || tail > api.MaxLogChunk {
				return fmt.Errorf("--tail %d: want a number of bytes from 1 to %d", tail, api.MaxLogChunk)
			}
			c := o.client()
			run, err := resolveRun(ctx, c, args[0])
			if err != nil {
				return fmt.Errorf("logs of run %s: %w", args[0], err)
			}
			l := logPrinter{c: c, id: run.ID, w: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
			if err := l.printFrom(ctx, api.LogRange{Tail: tail}); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			return l.follow(ctx, poll)
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.Flags().Int64Var(&tail, "tail", 0, "print only the last N bytes of the log")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended to the log until the run ends or until interrupted")
	cmd.Flags().DurationVar(&poll, "poll-interval", time.Second, "with --follow: how often to ask for new log bytes")
	return cmd
}

// logPrinter prints one run's log, remembering where it got to.
type logPrinter struct {
	c    *api.Client
	id   string
	w    io.Writer
	errw io.Writer
	next int64 // the offset of the first byte not printed yet
}

// printFrom prints the log from lr (a tail, or from its offset) to the end
// the agent saw, one chunk at a time.
func (l *logPrinter) printFrom(ctx context.Context, lr api.LogRange) error {
	for {
		chunk, err := l.c.RunLog(ctx, l.id, lr)
		if err != nil {
			return fmt.Errorf("logs of run %s: %w", l.id, err)
		}
		if chunk.Size < l.next {
			fmt.Fprintf(l.errw, "ice logs: the log of run %s shrank to %d bytes (truncated?); reading it again from the start\n", l.id, chunk.Size)
			l.next = 0
			lr = api.LogRange{Limit: api.MaxLogChunk}
			continue
		}
		if _, err := l.w.Write(chunk.Data); err != nil {
			return fmt.Errorf("write the log of run %s: %w", l.id, err)
		}
		l.next = chunk.End()
		if len(chunk.Data) == 0 || l.next >= chunk.Size {
			return nil
		}
		lr = api.LogRange{Offset: l.next, Limit: api.MaxLogChunk}
	}
}

// follow polls for what is appended, every interval, until the run is
// TERMINATED (its agent has torn the plugin down: nothing more is written,
// so what is read after that is the whole log) or ctx ends.
func (l *logPrinter) follow(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: following ends there
		case <-tick.C:
		}
		run, runErr := l.c.Run(ctx, l.id)
		if err := l.printFrom(ctx, api.LogRange{Offset: l.next, Limit: api.MaxLogChunk}); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if runErr == nil && run.State == fsm.StateTerminated {
			fmt.Fprintf(l.errw, "ice logs: run %s ended %s%s\n", l.id, run.Outcome, reasonSuffix(run.Reason))
			return nil
		}
	}
}

// reasonSuffix is ": reason", or nothing without one.
func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
