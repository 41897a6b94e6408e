package jepsen

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// finalState is what the run collects after the heal, for the checkers.
type finalState struct {
	peers    []api.ServerInfo
	peersErr string

	comps     map[string]fsm.Component
	runs      []fsm.Run
	runsIndex uint64
	events    []fsm.Event
	// eventsErr says why the events were not read completely ("": they were).
	eventsErr string
	// eventsReadAt is the harness's wall clock when the events were read.
	eventsReadAt int64
	conv         ConvergenceInput
}

// collect reads the final state through the leader, every server's digest
// and own copy of the events, and writes them to final/.
func (r *runner) collect(ctx context.Context) {
	c, f := r.c, &r.fin
	fin := filepath.Join(r.cfg.Out, "final")
	_ = os.MkdirAll(fin, 0o755)
	cl := c.AnyClient()
	if l := c.Leader(ctx); l != nil {
		cl = l.Client()
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	comps, err := cl.Components(fctx)
	if err != nil {
		r.note("final components not read: %v", err)
	}
	f.runs, f.runsIndex, err = cl.Runs(fctx, "", nil)
	if err != nil {
		r.note("final runs not read: %v", err)
	}
	fcancel()
	// The digests first: the leader's events read after them hold every
	// event up to their index, whose chain head the checker compares with.
	conv := ConvergenceInput{ServerEvents: map[string][]fsm.Event{}, EventErrors: map[string]string{}}
	conv.Index, conv.Digests, err = CollectDigests(ctx, c.Servers, 30*time.Second)
	if err != nil {
		conv.NotConverged = err.Error()
	}
	f.events, err = FetchEvents(ctx, cl)
	f.eventsReadAt = time.Now().UnixNano()
	if err != nil {
		f.eventsErr = err.Error()
		r.note("final events not read completely: %v", err)
	}
	conv.Events = f.events
	for _, s := range c.Servers {
		sc := s.Client()
		sc.Stale = true
		evs, err := FetchEvents(ctx, sc)
		if err != nil {
			conv.EventErrors[s.ID] = err.Error()
			continue
		}
		conv.ServerEvents[s.ID] = evs
	}
	f.conv = conv
	f.comps = map[string]fsm.Component{}
	for _, fc := range comps {
		f.comps[fc.Name] = fc
	}
	_ = writeJSON(filepath.Join(fin, "components.json"), comps)
	_ = writeJSON(filepath.Join(fin, "runs.json"), f.runs)
	_ = writeJSONLines(filepath.Join(fin, "events.jsonl"), f.events)
	_ = writeJSON(filepath.Join(fin, "digests.json"), conv.Digests)
	_ = writeJSON(filepath.Join(fin, "peers.json"), f.peers)
	r.logf("jepsen: final state: %d components, %d runs, %d events; digests at index %d; voters %v",
		len(comps), len(f.runs), len(f.events), conv.Index, peerIDs(f.peers))
}

// stopAndReplay stops the agents, reads the live cluster once more
// (ReadFinal), stops the servers, replays each server's data dir offline to
// an index it knows the live state at (PlanReplays; replay.go says why not
// simply the digests' index) and unmounts the tmpfs data dirs (keeping
// their contents).
func (r *runner) stopAndReplay(ctx context.Context) {
	c, conv := r.c, &r.fin.conv
	fin := filepath.Join(r.cfg.Out, "final")
	c.StopAgents()
	if conv.NotConverged == "" {
		f, err := ReadFinal(ctx, c.Servers, 20*time.Second)
		if err != nil {
			conv.FinalError = err.Error()
		} else {
			conv.Final = f
			_ = writeJSON(filepath.Join(fin, "digests-agents-stopped.json"), f)
			r.logf("jepsen: final read with the agents stopped: digests at index %d", f.Index)
		}
	}
	c.StopServers()
	if r.nf != nil {
		r.nf.Close()
	}
	switch {
	case r.rep.Replay != "available":
		conv.ReplayUnavailable = r.rep.Replay
	case conv.Index == 0:
		conv.ReplayUnavailable = "skipped: no common index to replay to"
	default:
		refs := []uint64{conv.Index}
		if conv.Final != nil {
			refs = append(refs, conv.Final.Index)
		}
		var ids []string
		reach := map[string]*DataDirReach{}
		for _, s := range c.Servers {
			ids = append(ids, s.ID)
			d, err := ReadReach(s.DataDir)
			if err != nil {
				r.note("data dir of %s not read before replay: %v", s.ID, err)
				continue
			}
			reach[s.ID] = &d
		}
		_ = writeJSON(filepath.Join(fin, "data-dirs.json"), reach)
		plan, skipped := PlanReplays(ids, reach, refs)
		if len(skipped) > 0 {
			conv.ReplaySkipped = skipped
		}
		for _, p := range plan {
			conv.Replays = append(conv.Replays, replay(r.bins.Ice, c.Server(p.Server), p.Index))
		}
		_ = writeJSON(filepath.Join(fin, "replays.json"), conv.Replays)
	}
	for _, p := range c.unmountAll() {
		r.note("%s", p)
	}
}

// check runs every checker over the history and the final state.
func (r *runner) check() {
	cfg, rep, f := r.cfg, r.rep, &r.fin
	lin := LifecycleInput{Events: f.events, Runs: f.runs, RunsIndex: f.runsIndex, Components: f.comps, Ticks: map[string][]Tick{},
		Malformed: map[string][]string{}, Tickers: r.life.Names, Registers: r.reg.Keys, Settled: r.settled,
		ClockSlack: ClockSlack(r.rep.Plan, r.rec.Entries())}
	for _, n := range r.life.Names {
		tf, err := os.Open(r.life.TickFile(n))
		if err != nil {
			r.note("tick file of %s: %v", n, err)
			continue
		}
		lin.Ticks[n], lin.Malformed[n] = ParseTicks(tf)
		_ = tf.Close()
	}
	entries := r.rec.Entries()
	rep.Entries = entries
	ops := Pair(entries)
	rep.OpCounts = opCounts(ops)
	r.logf("jepsen: checking %d operations", len(ops))
	lv := CheckLinearizability(ops, r.reg.Keys, AppliedFromEvents(f.events), LinearizabilityOptions{Timeout: cfg.CheckTimeout,
		HTMLPath: filepath.Join(cfg.Out, "linearizability.html"), Faults: Faults(entries)})
	var ids []string
	for _, s := range r.c.Servers {
		ids = append(ids, s.ID)
	}
	rep.Verdicts = append(rep.Verdicts,
		lv,
		CheckDurability(ops, f.events, f.comps),
		CheckLifecycle(lin),
		CheckConvergence(f.conv),
		CheckCorruption(CorruptionInput{Entries: entries, CheckInterval: cfg.CorruptionCheckInterval, Events: f.events}),
		CheckCommittedTime(TimeInput{Events: f.events, ServerEvents: f.conv.ServerEvents, ReadAt: f.eventsReadAt}),
		CheckRecovery(RecoveryInput{Entries: entries, Servers: ids, Peers: f.peers, PeersError: f.peersErr}),
		CheckProcesses(entries, readLogs(cfg.Out, r.c)),
		CheckGrants(GrantsInput{Events: f.events, EventsError: f.eventsErr, Entries: entries}),
	)
	for _, v := range rep.Verdicts {
		if err := v.WriteJSON(cfg.Out); err != nil {
			r.note("verdict %s not written: %v", v.Checker, err)
		}
		switch v.Result {
		case Fail:
			rep.Failed = true
		case Unknown:
			rep.Undecided = true
		}
		r.logf("jepsen: %-16s %-7s %s", v.Checker, strings.ToUpper(v.Result), v.Summary)
	}
}

// ClockSlack is the largest clock offset a clock-skew fault of the plan
// that was injected (it has a fault entry) set, plus a second; 0 when none
// was.
func ClockSlack(plan []PlannedFault, entries []Entry) time.Duration {
	injected := map[int]bool{}
	for _, e := range entries {
		if e.Type == TFault && e.F == KindClockSkew {
			injected[e.FaultID] = true
		}
	}
	var slack time.Duration
	for _, f := range plan {
		if f.Kind == KindClockSkew && injected[f.Seq] {
			slack = max(slack, f.Skew.Abs()+time.Second)
		}
	}
	return slack
}
