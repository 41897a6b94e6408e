package soak

import (
	"errors"
	"time"
)

// Config is one soak run.
type Config struct {
	// IceBin is the ice binary; PluginDir the catalogue the simulated
	// nodes offer (it must hold FinitePlugin and CrashPlugin).
	IceBin, PluginDir string
	// ResultsDir gets a <UTC time>/ directory per run.
	ResultsDir string
	// Transitions is the target; the run ends when it is reached or after
	// MaxDuration, whichever comes first.
	Transitions uint64
	MaxDuration time.Duration
	// Rate paces the workload at this many transitions per second (0: as
	// fast as the cluster goes). The state the retention keeps is the
	// transitions of the last retention period, so a steady rate keeps the
	// comparison of the end with the baseline about memory, not about a
	// rate that drifted.
	Rate float64
	// BaselineFraction of Transitions is where the baselines are taken
	// (RSS and snapshot size "after the first 200,000" of 2,000,000).
	BaselineFraction float64

	// Nodes simulated by one `ice agent --simulate`.
	Nodes int
	// Finite components of FiniteCount runs each, deployed again once all
	// their runs ended; every StopEvery-th cycle stops the component once
	// its runs exist, then deploys it again.
	Finite, FiniteCount, StopEvery int
	// Crash components of CrashCount runs, restarted after CrashDelay
	// (doubling up to 4×) CrashAttempts times, then failed and deployed again.
	Crash, CrashCount, CrashAttempts int
	CrashDelay                       time.Duration
	FinitePlugin, CrashPlugin        string
	// CycleTimeout bounds one cycle of a component; a cycle that does not
	// end in time is counted as a stall and the component deployed again.
	CycleTimeout time.Duration

	ProbeInterval, SampleInterval, ProgressInterval time.Duration

	// Retention and garbage collection (server flags, when the server has
	// them).
	RunRetention        time.Duration
	RunKeepPerSlot      int
	EventRetention      time.Duration
	EventRetentionCount int
	GCInterval          time.Duration
	// Snapshots.
	SnapshotThreshold, TrailingLogs int
	SnapshotInterval                time.Duration

	// Keep leaves the temporary data dirs in place.
	Keep bool
	// Logf prints progress (nil: nothing).
	Logf func(format string, args ...any)
}

// DefaultConfig is what `make soak` runs.
func DefaultConfig() Config {
	return Config{
		IceBin: "bin/ice", PluginDir: "bin/plugins", ResultsDir: "soak/results",
		Transitions: 2_000_000, MaxDuration: 15 * time.Minute, Rate: 8000, BaselineFraction: 0.1,
		Nodes:  10,
		Finite: 32, FiniteCount: 25, StopEvery: 5,
		Crash: 2, CrashCount: 4, CrashAttempts: 5, CrashDelay: 20 * time.Millisecond,
		FinitePlugin: "batch", CrashPlugin: "flaky",
		CycleTimeout:  60 * time.Second,
		ProbeInterval: 100 * time.Millisecond, SampleInterval: 2 * time.Second, ProgressInterval: 10 * time.Second,
		RunRetention: 5 * time.Second, RunKeepPerSlot: 1,
		EventRetention: 5 * time.Second, EventRetentionCount: 20000,
		GCInterval:        2 * time.Second,
		SnapshotThreshold: 256, TrailingLogs: 1024, SnapshotInterval: 2 * time.Second,
	}
}

// Check refuses a configuration that cannot run.
func (c *Config) Check() error {
	switch {
	case c.IceBin == "" || c.PluginDir == "" || c.ResultsDir == "":
		return errors.New("soak: --ice-bin, --plugin-dir and --results are required")
	case c.Transitions == 0 || c.MaxDuration <= 0:
		return errors.New("soak: want --transitions > 0 and --max-duration > 0")
	case c.Rate < 0:
		return errors.New("soak: --rate must be >= 0")
	case c.BaselineFraction <= 0 || c.BaselineFraction >= 1:
		return errors.New("soak: --baseline-fraction must be in (0, 1)")
	case c.Nodes <= 0 || c.Finite < 0 || c.FiniteCount <= 0 || c.Crash < 0 || c.CrashCount <= 0:
		return errors.New("soak: want --nodes, --finite-count and --crash-count > 0, --finite and --crash >= 0")
	case c.Finite+c.Crash == 0:
		return errors.New("soak: no workload: --finite and --crash are both 0")
	case c.ProbeInterval <= 0 || c.SampleInterval <= 0 || c.ProgressInterval <= 0 || c.CycleTimeout <= 0:
		return errors.New("soak: intervals and --cycle-timeout must be > 0")
	}
	return nil
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}
