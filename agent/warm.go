package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// Warm plugin processes. A finite plugin whose Info says Reusable serves
// successive runs in one process: a run takes an idle process of its
// component's run generation (or launches one), binds it with Start,
// executes, and right after Execute stops its run in the plugin (Stop) and
// hands the process back, while its transitions go on exactly as for a
// process of its own. Runs of one component that overlap each take a
// process, up to Config.WarmProcesses of them; a run that finds them all
// busy waits for one to come back (a run holds one only from its Start to
// the end of its Execute), rather than paying a launch.
//
// A warm run writes no reattach record: a restarted agent does not reattach
// to a process that other runs share. Its runs in progress are reported
// ABORTED like any run whose plugin is not running, and the process
// exits by its own watchdog, which the agent feeds while it is idle.
//
// The pool's loop checks every HealthInterval (while the lease is valid)
// that each idle process answers Health, which also feeds its watchdog; a
// process that crashed or does not answer is dropped, and the next run
// launches a new one. The loop also stops the idle processes of a component
// that was stopped, deleted or changed (its run generation moved on), and of
// one idle for longer than WarmProcessesTimeout. Fencing kills the idle
// processes; stopping the agent stops them.

// warmKey is what processes that may serve a run must share.
type warmKey struct {
	component  string
	generation uint64 // the component's RunGeneration
	path, sha  string
}

// warmProc is one warm plugin process.
type warmProc struct {
	key      warmKey
	proc     pluginProcess
	logPath  string // where go-plugin copies its stdout and stderr
	kind     plugins.Kind
	reusable bool // what its Info said (finite and reusable)
	runs     int  // runs it was bound to
	idle     time.Time
	dead     bool // ended or being ended (warmPool.mu)
}

// warmPool keeps the idle warm processes.
type warmPool struct {
	a        *Agent
	mu       sync.Mutex
	idle     map[warmKey][]*warmProc
	live     map[warmKey]int // processes not dead, idle or serving a run
	changed  chan struct{}   // closed and replaced when one is idle or dead
	closed   bool
	launched int // processes launched for warm use (tests read it)
	// sums are the plugin binaries (by sha256) whose Info said reusable.
	sums map[string]bool
}

func newWarmPool(a *Agent) *warmPool {
	return &warmPool{a: a, idle: map[warmKey][]*warmProc{}, live: map[warmKey]int{}, changed: make(chan struct{}), sums: map[string]bool{}}
}

// learn records what a probed binary's Info said.
func (p *warmPool) learn(sha string, info plugins.Info) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sums) >= maxCachedInfos {
		clear(p.sums)
	}
	p.sums[strings.ToLower(sha)] = info.Reusable && info.Kind == plugins.KindFinite
}

// reusable reports whether the binary of sha said it is reusable.
func (p *warmPool) reusable(sha string) bool {
	if p.a.cfg.WarmProcesses < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sums[strings.ToLower(sha)]
}

// get takes an idle process of key, newest first; or, when fewer than
// WarmProcesses of key are alive, reserves a place for a new one (nil,
// true: the caller launches it, and calls died if that fails); or waits
// until one of them is idle or dead. It returns nil, false once ctx ends.
func (p *warmPool) get(ctx context.Context, key warmKey) (*warmProc, bool) {
	for {
		p.mu.Lock()
		for l := p.idle[key]; len(l) > 0; l = p.idle[key] {
			wp := l[len(l)-1]
			p.idle[key] = l[:len(l)-1]
			if !wp.proc.Exited() {
				p.mu.Unlock()
				return wp, false
			}
			p.retireLocked(wp)
			p.a.tasks.Go(wp.proc.Kill) // releases its log
		}
		if p.live[key] < max(p.a.cfg.WarmProcesses, 1) {
			p.live[key]++
			p.mu.Unlock()
			return nil, true
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// died gives back a place get reserved for a launch that failed.
func (p *warmPool) died(key warmKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[key]--; p.live[key] <= 0 {
		delete(p.live, key)
	}
	p.signalLocked()
}

// retire marks wp dead (it is being ended) and frees its place.
func (p *warmPool) retire(wp *warmProc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retireLocked(wp)
}

func (p *warmPool) retireLocked(wp *warmProc) {
	if wp.dead {
		return
	}
	wp.dead = true
	if p.live[wp.key]--; p.live[wp.key] <= 0 {
		delete(p.live, wp.key)
	}
	p.signalLocked()
}

func (p *warmPool) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// put makes wp idle; it is stopped instead when it exited, is not
// reusable or the pool is closed, and idle processes of the component's
// other generations are stopped.
func (p *warmPool) put(wp *warmProc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if wp.proc.Exited() || !wp.reusable || p.closed {
		p.retireLocked(wp)
		p.a.tasks.Go(wp.proc.Kill)
		return
	}
	for k, l := range p.idle {
		if k.component == wp.key.component && k != wp.key {
			p.stopLocked(k, l, "its component's run generation changed")
		}
	}
	wp.idle = time.Now()
	p.idle[wp.key] = append(p.idle[wp.key], wp)
	p.signalLocked()
}

// stopLocked stops the idle processes l of k (p.mu held).
func (p *warmPool) stopLocked(k warmKey, l []*warmProc, why string) {
	delete(p.idle, k)
	for _, wp := range l {
		p.retireLocked(wp)
		p.a.logger.Info("stopping warm plugin process", "component", k.component, "generation", k.generation, "pid", wp.proc.Attachment().Pid, "reason", why)
		p.a.tasks.Go(func() { p.a.stopPlugin(context.Background(), "", wp.proc, p.a.cfg.ExitStopGrace) })
	}
}

// drop removes wp from the idle processes if it is still there.
func (p *warmPool) drop(wp *warmProc) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[wp.key]
	for i, x := range l {
		if x == wp {
			p.idle[wp.key] = append(l[:i:i], l[i+1:]...)
			p.retireLocked(wp)
			return true
		}
	}
	return false
}

// killIdle kills every idle process at once (fencing); it never blocks.
func (p *warmPool) killIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.idle {
		delete(p.idle, k)
		for _, wp := range l {
			p.retireLocked(wp)
			p.a.tasks.Go(wp.proc.KillNow)
		}
	}
}

// close stops every idle process, and every one handed back later.
func (p *warmPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, l := range p.idle {
		p.stopLocked(k, l, "agent stopping")
	}
}

// idleProcs returns the idle processes by key.
func (p *warmPool) idleProcs() map[warmKey][]*warmProc {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[warmKey][]*warmProc, len(p.idle))
	for k, l := range p.idle {
		out[k] = append([]*warmProc(nil), l...)
	}
	return out
}

// loop checks the idle processes every HealthInterval until ctx ends.
func (p *warmPool) loop(ctx context.Context) {
	tick := time.NewTicker(p.a.cfg.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p.a.lease.valid() {
			p.check(ctx)
		}
	}
}

// check feeds and checks each idle process, and stops those of a component
// that no longer runs them.
func (p *warmPool) check(ctx context.Context) {
	for k, l := range p.idleProcs() {
		if why := p.outdated(ctx, k); why != "" {
			p.mu.Lock()
			if cur := p.idle[k]; len(cur) > 0 {
				p.stopLocked(k, cur, why)
			}
			p.mu.Unlock()
			continue
		}
		for _, wp := range l {
			hctx, cancel := context.WithTimeout(ctx, p.a.cfg.HealthInterval)
			_, err := wp.proc.Component().Health(hctx)
			cancel()
			idleFor := time.Since(wp.idle)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil || wp.proc.Exited():
				if p.drop(wp) {
					metrics.IncrCounter([]string{"ice", "agent", "warm", "lost"}, 1)
					p.a.logger.Warn("warm plugin process lost; the next run launches another", "component", k.component, "pid", wp.proc.Attachment().Pid, "error", err)
					p.a.tasks.Go(wp.proc.KillNow)
				}
			case idleFor > p.a.cfg.WarmProcessesTimeout:
				if p.drop(wp) {
					p.a.tasks.Go(func() { p.a.stopPlugin(ctx, "", wp.proc, p.a.cfg.ExitStopGrace) })
				}
			}
		}
	}
}

// outdated says why k's processes serve no more runs ("": they may).
func (p *warmPool) outdated(ctx context.Context, k warmKey) string {
	comp, err := p.a.componentSpec(ctx, k.component)
	var apiErr *api.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == 404:
		return "component deleted"
	case err != nil:
		return "" // unknown: keep them, ask again next time
	case comp.Status == fsm.ComponentStopped:
		return "component stopped"
	case comp.RunGeneration != k.generation:
		return fmt.Sprintf("component at run generation %d", comp.RunGeneration)
	}
	return ""
}

// warmLease is one run's hold on a warm process, the run's pluginProcess.
// Once handed back, ending the lease (the supervisor killing the run's
// plugin) no longer touches the process, which may serve another run.
type warmLease struct {
	pool *warmPool
	wp   *warmProc
	mu   sync.Mutex
	// returned: handed back; killed: the process was ended through it.
	returned, killed bool
}

var _ pluginProcess = (*warmLease)(nil)

func (l *warmLease) Component() plugins.Component { return l.wp.proc.Component() }
func (l *warmLease) Attachment() host.Attachment  { return l.wp.proc.Attachment() }
func (l *warmLease) Exited() bool                 { return l.wp.proc.Exited() }
func (l *warmLease) Kill()                        { l.end(l.wp.proc.Kill) }
func (l *warmLease) KillNow()                     { l.end(l.wp.proc.KillNow) }

// Detach kills the process: a shared one is never left for a restarted
// agent (there is no record to reattach with).
func (l *warmLease) Detach() { l.end(l.wp.proc.KillNow) }

func (l *warmLease) end(kill func()) {
	l.mu.Lock()
	if l.returned || l.killed {
		l.mu.Unlock()
		return
	}
	l.killed = true
	l.mu.Unlock()
	l.pool.retire(l.wp)
	kill()
}

// giveBack hands the process back to the pool unless it was killed.
func (l *warmLease) giveBack() bool {
	l.mu.Lock()
	if l.returned || l.killed {
		l.mu.Unlock()
		return false
	}
	l.returned = true
	l.mu.Unlock()
	l.pool.put(l.wp)
	return true
}

// released: a worker handed its run's warm process back; the run no longer
// holds it.
type released struct {
	run  *localRun
	proc pluginProcess
}

func (released) isEvent() {}

func (s *supervisor) onReleased(ev released) {
	if ev.run.proc == ev.proc {
		ev.run.proc = nil
	}
}

// warmKeyFor is the key of a run of comp launched from the binary at path
// with sha, if the binary is reusable.
func (w *worker) warmKeyFor(comp *fsm.Component, path, sha string) (warmKey, bool) {
	if !w.a.warm.reusable(sha) {
		return warmKey{}, false
	}
	return warmKey{component: w.component, generation: comp.RunGeneration, path: path, sha: strings.ToLower(sha)}, true
}

// launchWarm binds the run to a warm process of key: an idle one, or one
// it launches. A process that died while idle (its Start fails) is
// replaced once.
func (w *worker) launchWarm(ctx context.Context, comp *fsm.Component, key warmKey) bool {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		wp, launch := w.a.warm.get(ctx, key)
		if wp == nil && !launch {
			return false // ctx ended
		}
		reused := !launch
		if launch {
			var err error
			if wp, err = w.launchWarmProc(ctx, key); err != nil {
				w.a.warm.died(key)
				if ctx.Err() == nil {
					w.fail(ctx, "failed start: "+err.Error())
				}
				return false
			}
		}
		lease := &warmLease{pool: w.a.warm, wp: wp}
		w.proc, w.lease, w.procLog = lease, lease, wp.logPath
		w.logFrom = host.LogSize(wp.logPath)
		w.post(launched{run: w.run, proc: lease})
		err := w.bindWarm(ctx, comp, wp, reused)
		switch {
		case err == nil:
			wp.runs++
			w.post(progressed{run: w.run, to: fsm.StateContextReady, noRecord: true})
			metrics.MeasureSince([]string{"ice", "agent", "plugin", "start"}, start)
			w.a.logger.Debug("run bound to a warm plugin process", "run", w.id, "pid", wp.proc.Attachment().Pid, "reused", reused, "runs", wp.runs, "duration", time.Since(start))
			return true
		case ctx.Err() != nil:
			return false
		case reused && attempt == 1:
			metrics.IncrCounter([]string{"ice", "agent", "warm", "lost"}, 1)
			w.a.logger.Warn("warm plugin process failed the next run's start; launching another", "run", w.id, "pid", wp.proc.Attachment().Pid, "error", err)
			lease.KillNow()
			continue
		}
		if why, exited := w.exitReason(ctx, "Start", err); exited {
			w.fail(ctx, "failed start: "+why)
		} else {
			w.fail(ctx, "failed start: "+err.Error())
		}
		return false
	}
}

// launchWarmProc launches a process of key for warm use, logging to
// DATA_DIR/warm/COMPONENT.log.
func (w *worker) launchWarmProc(ctx context.Context, key warmKey) (*warmProc, error) {
	release, ok := w.a.launchSlot(ctx)
	if !ok {
		return nil, ctx.Err()
	}
	defer release()
	logPath := filepath.Join(w.a.cfg.DataDir, "warm", key.component+".log")
	proc, err := w.a.host.Launch(host.Config{
		Path: key.path, SHA256: key.sha, LogPath: logPath,
		Logger:       w.a.logger.Named("plugin").With("component", key.component, "warm", true),
		StartTimeout: w.a.cfg.StartTimeout,
	})
	if err != nil {
		return nil, err
	}
	w.a.warm.mu.Lock()
	w.a.warm.launched++
	w.a.warm.mu.Unlock()
	return &warmProc{key: key, proc: proc, logPath: logPath}, nil
}

// bindWarm learns a new process's kind and starts the run in it.
func (w *worker) bindWarm(ctx context.Context, comp *fsm.Component, wp *warmProc, reused bool) error {
	sctx, cancel := context.WithTimeout(ctx, w.a.cfg.StartTimeout)
	defer cancel()
	if !reused {
		info, err := wp.proc.Component().Info(sctx)
		if err != nil {
			return err
		}
		wp.kind, wp.reusable = info.Kind, info.Reusable && info.Kind == plugins.KindFinite
	}
	w.kind = wp.kind
	return wp.proc.Component().Start(sctx, w.startRequest(comp))
}

// releaseWarm ends the run in its warm process (Stop) and hands the process
// back, unless it exited; the run no longer holds it.
func (w *worker) releaseWarm() {
	l := w.lease
	if l == nil {
		return
	}
	w.lease = nil
	deadline := time.Now().Add(w.a.cfg.StopGrace)
	ctx, cancel := context.WithDeadline(w.a.ctx, deadline)
	defer cancel()
	if err := l.Component().Stop(ctx, deadline); err != nil || l.Exited() {
		w.a.logger.Warn("warm plugin process did not stop its run; killing it", "run", w.id, "error", err)
		l.KillNow()
	} else {
		l.giveBack()
	}
	w.post(released{run: w.run, proc: l})
	w.proc = nil
}
