package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	metrics "github.com/armon/go-metrics"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// errSpecBehind: the server read has an older spec than the run needs yet.
var errSpecBehind = errors.New("spec behind the run")

// worker does one run's blocking work for the supervisor: reading its spec,
// launching and starting its plugin, writing its record, health checks,
// execution and, at the end, the graceful stop. It keeps no state the
// supervisor needs: it tells the supervisor what happened with events, and
// it stops when its context is cancelled.
type worker struct {
	a    *Agent
	post func(event)
	// run names the run in events only: its fields are the supervisor's.
	run *localRun

	id        string
	component string
	epoch     uint64
	// observed is the committed state when the worker started.
	observed fsm.RunState
	kind     plugins.Kind
	// proc is the plugin, reattached or launched by this worker.
	proc pluginProcess
	// reads records the memory record versions served to the run's
	// plugin while this worker drives it (nil before).
	reads *readLedger
	// logFrom is the size of the run's log before this worker launched
	// its plugin: a failure quotes only what that plugin wrote.
	logFrom int64
	// lease is the run's hold on a warm process (nil: the run has a
	// process of its own, or handed the warm one back); procLog is where
	// that process's output goes ("": the run's log).
	lease   *warmLease
	procLog string
}

// progress tells the supervisor that the run moved forward.
func (w *worker) progress(to fsm.RunState, output string) {
	w.post(progressed{run: w.run, to: to, output: output})
}

// fail tells the supervisor that the run failed, unless the worker was
// cancelled (then the failure is the cancellation's doing), with the
// record versions served to it.
func (w *worker) fail(ctx context.Context, reason string) {
	w.failWith(ctx, reason, nil)
}

// failWith is fail with the cost the failed execution reported.
func (w *worker) failWith(ctx context.Context, reason string, cost map[string]uint64) {
	if ctx.Err() != nil {
		return
	}
	w.post(failed{run: w.run, reason: reason, report: execReport{reads: w.reads.seal(), cost: cost}})
}

// drive takes the run from wherever it is (a fresh PROVISIONED run, or a
// reattached plugin) to EXECUTING, delivers a finite run's output, and then
// watches the plugin until the run ends or the worker is cancelled.
func (w *worker) drive(ctx context.Context, run fsm.Run) {
	spec, ok := w.spec(ctx, run)
	if !ok {
		return
	}
	if w.proc == nil {
		if !w.launch(ctx, spec) {
			return
		}
	} else if w.observed == fsm.StateProvisioned {
		// Reattached to a plugin whose CONTEXT_READY report was lost
		// with the previous agent.
		w.progress(fsm.StateContextReady, "")
	}
	// The plugin calls this agent (capability grants, memory reads) for as
	// long as the run is driven here.
	w.reads = newReadLedger()
	hctx, stopHost := context.WithCancel(ctx)
	defer stopHost()
	hostDone := make(chan struct{})
	w.a.tasks.Go(func() {
		defer close(hostDone)
		w.serveHost(hctx)
	})
	if w.observed != fsm.StateExecuting {
		if !w.waitHealthy(ctx) {
			return
		}
		w.progress(fsm.StateExecuting, "")
	}
	if w.kind == plugins.KindFinite {
		req := plugins.ExecuteRequest{Input: spec.Config["input"]}
		if run.Dispatch {
			req = plugins.ExecuteRequest{Input: run.Input, Meta: run.Meta}
		}
		res, err := w.execute(ctx, req)
		if ctx.Err() != nil {
			return
		}
		cost := w.cleanCost(res.Cost)
		if err != nil {
			why, exited := w.exitReason(ctx, "Execute", err)
			if !exited {
				why = "execute failed: " + err.Error()
			}
			w.endWarm(stopHost, hostDone)
			w.failWith(ctx, why, cost)
			return
		}
		w.post(progressed{run: w.run, to: fsm.StateValidating, output: res.Output, report: execReport{reads: w.reads.seal(), cost: cost}})
		if w.endWarm(stopHost, hostDone) {
			return // handed back: nothing of the run is left to watch
		}
	}
	w.monitor(ctx)
}

// endWarm ends a run's hold on its warm process once Execute returned: its
// host channel closes and the process goes back for the next run. It
// reports whether the run had one.
func (w *worker) endWarm(stopHost func(), hostDone <-chan struct{}) bool {
	if w.lease == nil {
		return false
	}
	stopHost()
	<-hostDone
	w.releaseWarm()
	return true
}

// cleanCost keeps the part of a plugin's cost the state machine accepts
// (it refuses the whole report otherwise), logging what it drops.
func (w *worker) cleanCost(cost map[string]uint64) map[string]uint64 {
	out, dropped := plugins.CleanCost(cost)
	if len(dropped) > 0 {
		w.a.logger.Warn("plugin reported cost units the runtime does not accept; dropped", "run", w.id, "units", dropped, "max_units", plugins.MaxCostUnits)
	}
	return out
}

// execute runs a finite plugin's Execute while feeding its agent watchdog
// with health calls every HealthInterval (while the lease is valid): an
// Execute that waits long (for an approval, say) would otherwise outlast
// the watchdog, which hears from the agent only through calls.
func (w *worker) execute(ctx context.Context, req plugins.ExecuteRequest) (plugins.ExecuteResult, error) {
	done := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		tick := time.NewTicker(w.a.cfg.HealthInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if w.a.lease.valid() {
				_, _ = w.proc.Component().Health(ctx)
			}
		}
	}()
	var res plugins.ExecuteResult
	var err error
	if ex, ok := w.proc.Component().(plugins.Executor); ok {
		res, err = ex.ExecuteRun(ctx, req)
	} else {
		res.Output, err = w.proc.Component().Execute(ctx, req.Input)
	}
	close(done)
	<-fed
	return res, err
}

// spec fetches the component's spec; a run older than the spec is not
// started (the runtime replaces it).
func (w *worker) spec(ctx context.Context, run fsm.Run) (*fsm.Component, bool) {
	for attempt := 1; ; attempt++ {
		comp, err := w.a.componentSpec(ctx, w.component)
		if err == nil && comp.Generation < run.Generation {
			err = fmt.Errorf("server has generation %d of %s, the run needs %d: %w", comp.Generation, w.component, run.Generation, errSpecBehind)
		} else if err == nil {
			if run.Generation < comp.RunGeneration {
				w.a.logger.Info("not starting outdated run", "run", w.id, "generation", run.Generation, "current", comp.RunGeneration)
				return nil, false
			}
			return comp, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		w.a.logger.Warn("fetch component spec failed, retrying", "run", w.id, "component", w.component, "error", err)
		wait := min(time.Duration(attempt)*w.a.cfg.SpecRetryInterval, w.a.cfg.MaxSpecRetryInterval)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
	}
}

// launch verifies and starts the plugin, hands it to the supervisor, binds
// it to the run, persists the reattach information and reports
// CONTEXT_READY.
func (w *worker) launch(ctx context.Context, comp *fsm.Component) bool {
	if entry, ok := w.a.catalog.lookup(comp.Plugin.Name); ok {
		sha := entry.SHA256
		if comp.Plugin.SHA256 != "" {
			sha = comp.Plugin.SHA256
		}
		if key, warm := w.warmKeyFor(comp, entry.path, sha); warm && strings.EqualFold(sha, entry.SHA256) {
			return w.launchWarm(ctx, comp, key)
		}
	}
	start := time.Now()
	proc, reason := w.launchPlugin(ctx, comp)
	if proc == nil {
		if reason != "" {
			w.fail(ctx, reason)
		}
		return false
	}
	w.proc = proc
	w.post(launched{run: w.run, proc: proc})
	if !w.start(ctx, comp) {
		return false
	}
	rec := runRecord{RunID: w.id, Component: w.component, Epoch: w.epoch, Kind: w.kind, Attachment: proc.Attachment()}
	if err := w.a.store.put(rec); err != nil {
		w.fail(ctx, "failed start: "+err.Error())
		return false
	}
	w.progress(fsm.StateContextReady, "") // also after a cancel: the record exists
	metrics.MeasureSince([]string{"ice", "agent", "plugin", "start"}, start)
	w.a.logger.Info("plugin started", "run", w.id, "plugin", comp.Plugin.Name, "pid", rec.Attachment.Pid, "epoch", w.epoch, "kind", w.kind.String(), "duration", time.Since(start))
	return true
}

// changedOnDisk prefixes the reason of a run whose plugin binary changed
// on disk into one that no longer satisfies its spec.
const changedOnDisk = "plugin changed on disk; the catalogue was refreshed: "

// launchPlugin verifies and starts the component's plugin, and returns it,
// or the run's failure reason ("" if ctx ended).
//
// The runtime placed the run by the node's committed catalogue, so a
// checksum mismatch means that the binary changed on disk since (rebuilt,
// say). Then the agent refreshes its catalogue (which registers the node
// again) and, if the new binary still satisfies the spec (its sha256 pin,
// if any, and its version pin), launches that for the same run: a rebuilt
// plugin does not cost the run an ABORTED report and its slot a restart
// attempt. Otherwise the run fails with a reason that starts with
// changedOnDisk, and the runtime places its replacement by the refreshed
// catalogue.
func (w *worker) launchPlugin(ctx context.Context, comp *fsm.Component) (pluginProcess, string) {
	ref := comp.Plugin
	entry, ok := w.a.catalog.lookup(ref.Name)
	if !ok {
		return nil, fmt.Sprintf("failed start: plugin %s is not installed on this node", ref.Name)
	}
	want := entry.SHA256
	if ref.SHA256 != "" {
		want = ref.SHA256
	}
	proc, err := w.launchBinary(ctx, entry.path, want)
	switch {
	case err == nil:
		return proc, "" // the supervisor kills it if ctx ended
	case ctx.Err() != nil:
		return nil, ""
	case !errors.Is(err, host.ErrChecksumMismatch):
		return nil, "failed start: " + err.Error()
	}
	w.a.logger.Info("plugin binary does not match; refreshing the catalogue before launching", "run", w.id, "plugin", ref.Name, "error", err)
	now, ok, reason := w.refreshFor(ctx, ref.Name)
	switch {
	case ctx.Err() != nil:
		return nil, ""
	case reason != "":
		return nil, reason
	case !ok:
		return nil, changedOnDisk + fmt.Sprintf("plugin %s is no longer installed on this node", ref.Name)
	case strings.EqualFold(now.SHA256, want):
		// The file is what the catalogue says: not a change on disk.
		return nil, "failed start: " + err.Error()
	case ref.SHA256 != "":
		return nil, changedOnDisk + fmt.Sprintf("plugin %s now has sha256 %s, the spec pins %s", ref.Name, shortSum(now.SHA256), shortSum(ref.SHA256))
	case ref.Version != "" && now.Version != ref.Version:
		return nil, changedOnDisk + fmt.Sprintf("plugin %s is now version %s, the spec pins %s", ref.Name, versionText(now.Version), ref.Version)
	}
	proc, err = w.launchBinary(ctx, now.path, now.SHA256)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, ""
	case errors.Is(err, host.ErrChecksumMismatch):
		return nil, changedOnDisk + "failed start: " + err.Error()
	case err != nil:
		return nil, "failed start: " + err.Error()
	}
	metrics.IncrCounter([]string{"ice", "agent", "plugin", "relaunched_changed"}, 1)
	w.a.logger.Info("plugin changed on disk; launched the new binary for the run", "run", w.id, "plugin", ref.Name,
		"sha256", now.SHA256, "was", want, "version", now.Version)
	return proc, ""
}

// launchBinary starts one plugin binary in a launch slot.
func (w *worker) launchBinary(ctx context.Context, path, sha string) (pluginProcess, error) {
	release, ok := w.a.launchSlot(ctx)
	if !ok {
		return nil, ctx.Err()
	}
	defer release()
	logPath := w.a.logPath(w.id)
	w.logFrom = host.LogSize(logPath)
	return w.a.host.Launch(host.Config{
		Path:         path,
		SHA256:       sha,
		LogPath:      logPath,
		Logger:       w.a.logger.Named("plugin").With("run", w.id),
		StartTimeout: w.a.cfg.StartTimeout,
	})
}

// refreshFor refreshes the catalogue for a launch of plugin name, waiting
// (up to StartTimeout) until its file settled, and returns its new entry;
// reason is set if the catalogue could not be read.
func (w *worker) refreshFor(ctx context.Context, name string) (entry pluginEntry, ok bool, reason string) {
	deadline := time.Now().Add(w.a.cfg.StartTimeout)
	why := fmt.Sprintf("plugin %s changed on disk (launch of run %s)", name, w.id)
	for {
		res, err := w.a.refreshCatalogue(ctx, why, w.a.settleOpts())
		if err != nil {
			return pluginEntry{}, false, changedOnDisk + err.Error()
		}
		at, deferred := res.deferred[name]
		if !deferred {
			entry, ok = w.a.catalog.lookup(name)
			return entry, ok, ""
		}
		if at.After(deadline) {
			return pluginEntry{}, false, changedOnDisk + fmt.Sprintf("plugin %s is still changing on disk", name)
		}
		select {
		case <-ctx.Done():
			return pluginEntry{}, false, ""
		case <-time.After(time.Until(at) + 10*time.Millisecond):
		}
	}
}

func shortSum(sum string) string { return sum[:min(12, len(sum))] }

func versionText(v string) string {
	if v == "" {
		return "unknown (its Info failed)"
	}
	return v
}

// exitGrace is how long a call that failed because the connection to the
// plugin was lost waits for the plugin's process to be seen exited, to
// tell a crash from an error the plugin returned.
const exitGrace = 2 * time.Second

// exitReason says, if the plugin's process exited (or exits within
// exitGrace of err, when err is a lost connection), how the run's reason
// puts it: "plugin exited during Start; its log PATH ends: panic: …", with
// what the plugin last wrote (its panic message, stderr) instead of the
// transport's "EOF".
func (w *worker) exitReason(ctx context.Context, during string, err error) (string, bool) {
	if !w.proc.Exited() {
		if err == nil || status.Code(err) != codes.Unavailable {
			return "", false
		}
		deadline := time.Now().Add(exitGrace)
		for !w.proc.Exited() {
			if time.Now().After(deadline) {
				return "", false
			}
			select {
			case <-ctx.Done():
				return "", false
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	what := "plugin exited"
	if during != "" {
		what += " during " + during
	}
	logPath := w.procLog
	if logPath == "" {
		logPath = w.a.logPath(w.id)
	}
	return what + "; " + host.LogNote(logPath, w.logFrom), true
}

// start learns the plugin's kind and binds it to the run.
func (w *worker) start(ctx context.Context, comp *fsm.Component) bool {
	sctx, cancel := context.WithTimeout(ctx, w.a.cfg.StartTimeout)
	defer cancel()
	info, err := w.proc.Component().Info(sctx)
	if err != nil {
		if why, exited := w.exitReason(ctx, "Info", err); exited {
			w.fail(ctx, "failed start: "+why)
			return false
		}
		w.fail(ctx, "failed start: "+err.Error())
		return false
	}
	w.kind = info.Kind
	err = w.proc.Component().Start(sctx, w.startRequest(comp))
	if err != nil {
		if why, exited := w.exitReason(ctx, "Start", err); exited {
			w.fail(ctx, "failed start: "+why)
			return false
		}
		w.fail(ctx, "failed start: "+err.Error())
		return false
	}
	return ctx.Err() == nil
}

// startRequest binds the plugin to the run.
func (w *worker) startRequest(comp *fsm.Component) plugins.StartRequest {
	return plugins.StartRequest{
		RunID: w.id, Component: w.component, NodeID: w.a.cfg.NodeID, Epoch: w.epoch, ClusterID: w.a.ClusterID(),
		Config: comp.Config, LogPath: w.a.logPath(w.id),
		// The plugin stops by itself if this agent goes silent: 3/4 of
		// the lease TTL, which the leader's margin (at least the TTL)
		// covers, so it is gone before the run is placed elsewhere.
		AgentTimeout: w.a.lease.TTL() * 3 / 4,
	}
}

// waitHealthy polls Health until the plugin reports healthy, and fails the
// run if it does not within the start timeout.
func (w *worker) waitHealthy(ctx context.Context) bool {
	deadline := time.Now().Add(w.a.cfg.StartTimeout)
	msg := "no health report"
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return false
		}
		if why, exited := w.exitReason(ctx, "", nil); exited {
			w.fail(ctx, "failed start: "+why)
			return false
		}
		h, err := w.proc.Component().Health(ctx)
		switch {
		case err != nil:
			msg = err.Error()
		case h.Healthy:
			return true
		default:
			msg = h.Message
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(w.a.cfg.HealthPollInterval):
		}
	}
	w.fail(ctx, "failed health: "+msg)
	return false
}

// monitor checks the plugin every HealthInterval while the lease is valid,
// which also feeds the plugin's watchdog, and fails the run when the plugin
// exits or fails UnhealthyLimit checks in a row.
func (w *worker) monitor(ctx context.Context) {
	fails := 0
	tick := time.NewTicker(w.a.cfg.HealthInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if !w.a.lease.valid() {
			continue
		}
		if why, exited := w.exitReason(ctx, "", nil); exited {
			w.fail(ctx, why)
			return
		}
		h, err := w.proc.Component().Health(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && h.Healthy {
			fails = 0
			continue
		}
		fails++
		msg := h.Message
		if err != nil {
			msg = err.Error()
		}
		if fails >= w.a.cfg.UnhealthyLimit {
			w.fail(ctx, fmt.Sprintf("failed health %d times: %s", fails, msg))
			return
		}
	}
}

// teardown stops the plugin of a run the runtime ended, deletes its record
// and tells the supervisor, which reports the run TERMINATED.
func (w *worker) teardown(ctx context.Context) {
	if w.proc != nil {
		w.a.stopPlugin(ctx, w.id, w.proc, w.a.cfg.StopGrace)
	}
	if err := w.a.store.delete(w.id); err != nil {
		w.a.logger.Warn("forget run", "run", w.id, "error", err)
	}
	w.post(tornDown{run: w.run})
}

// stopPlugin asks a plugin to stop by a deadline, then ends its process.
func (a *Agent) stopPlugin(ctx context.Context, runID string, p pluginProcess, grace time.Duration) {
	deadline := time.Now().Add(grace)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := p.Component().Stop(sctx, deadline); err != nil {
		a.logger.Warn("plugin stop failed; killing it", "run", runID, "error", err)
	}
	p.Kill()
	a.logger.Info("plugin stopped", "run", runID)
}
