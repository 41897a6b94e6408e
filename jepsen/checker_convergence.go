package jepsen

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// ServerDigest is one server's state digest at an applied index.
type ServerDigest struct {
	ID           string `json:"id"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

// ReplayResult is `ice replay --json` of one server's data dir.
type ReplayResult struct {
	Server        string `json:"server"`
	Error         string `json:"error,omitempty"`
	AppliedIndex  uint64 `json:"applied_index"`
	Digest        string `json:"digest"`
	ChainVerified bool   `json:"chain_verified"`
	ChainHead     string `json:"chain_head"`
	Events        int    `json:"events"`
	// SnapshotIndex is the snapshot the replay started from.
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Target is the index the harness replayed to (`--to-index`; 0: the
	// input's Index), the one the replay is compared at.
	Target uint64 `json:"target"`
}

// FinalRead is the live cluster read once more with the agents stopped,
// just before the servers were: every server at one applied index that it
// still reported after its own events were read, so the events are its
// chain at that index.
type FinalRead struct {
	Index   uint64                 `json:"index"`
	Digests []ServerDigest         `json:"digests"`
	Events  map[string][]fsm.Event `json:"-"`
}

// ConvergenceInput is what the convergence checker judges.
type ConvergenceInput struct {
	// Index is the applied index all servers were seen at (0: none), and
	// Digests what each reported there.
	Index   uint64
	Digests []ServerDigest
	// NotConverged says why no common index was found.
	NotConverged string
	// Events is the event log read through the leader; ServerEvents each
	// server's own copy (stale reads), both complete.
	Events       []fsm.Event
	ServerEvents map[string][]fsm.Event
	EventErrors  map[string]string
	// Final is the read with the agents stopped (nil: FinalError says why
	// there is none).
	Final      *FinalRead
	FinalError string
	// Replays holds `ice replay --to-index Target` of the servers' data
	// dirs (PlanReplays); ReplayUnavailable says why there are none,
	// ReplaySkipped why a server's data dir was not replayed.
	Replays           []ReplayResult
	ReplayUnavailable string
	ReplaySkipped     map[string]string
}

// liveRef is what the live cluster held at an index: every server's
// digest (equal) and the event chain's head there.
type liveRef struct {
	digest, head, when string
}

// headAt returns the hash of the last event at or below index, the number
// of such events, and whether they are numbered 1..n.
func headAt(events []fsm.Event, index uint64) (fsm.Hash, int) {
	var h fsm.Hash
	n := 0
	for _, e := range events {
		if e.Index > index {
			break
		}
		h, n = e.Hash, n+1
	}
	return h, n
}

// CheckConvergence checks that, after the faults were healed, every server
// reported the same digest at one applied index, the event hash chain
// verifies and every server holds the same chain, and replaying each
// server's data dir offline reproduces the digest and chain head.
func CheckConvergence(in ConvergenceInput) *Verdict {
	v := &Verdict{Checker: "convergence"}
	if in.NotConverged != "" {
		v.violate("servers did not converge to one applied index: %s", in.NotConverged)
	}
	digest := ""
	if in.Index > 0 {
		var differ string
		digest, differ = digestAgreement(in.Digests)
		if differ != "" {
			v.violate("state digests differ at applied index %d: %s", in.Index, differ)
		}
		v.stat("index", in.Index)
		v.stat("digest", digest)
	}
	// The chain as the leader serves it.
	if _, err := fsm.VerifyChain(fsm.Hash{}, in.Events); err != nil {
		v.violate("event hash chain does not verify: %v", err)
	}
	for i, e := range in.Events {
		if e.Seq != uint64(i)+1 {
			v.violate("event %d of the log has seq %d: events missing or duplicated", i+1, e.Seq)
			break
		}
	}
	v.stat("events", len(in.Events))
	head, n := headAt(in.Events, in.Index)
	// Every server's own copy.
	for id, msg := range in.EventErrors {
		v.note("events of %s not read: %s", id, msg)
	}
	ids := make([]string, 0, len(in.ServerEvents))
	for id := range in.ServerEvents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		evs := in.ServerEvents[id]
		if _, err := fsm.VerifyChain(fsm.Hash{}, evs); err != nil {
			v.violate("%s: event hash chain does not verify: %v", id, err)
			continue
		}
		if in.Index == 0 {
			continue
		}
		sh, sn := headAt(evs, in.Index)
		if sh != head || sn != n {
			v.violate("%s: %d events up to index %d with head %s, the leader's log has %d with head %s", id, sn, in.Index, short(sh.String()), n, short(head.String()))
		}
	}
	// The final read, with the agents stopped.
	refs := map[uint64]liveRef{}
	if in.Index > 0 && digest != "" {
		refs[in.Index] = liveRef{digest, head.String(), "after the heal"}
	}
	final := ""
	if in.FinalError != "" {
		v.note("no final read with the agents stopped: %s", in.FinalError)
	}
	if f := in.Final; f != nil && f.Index > 0 {
		if ref, ok := checkFinal(v, f, in.Index, head, n); ok {
			if old, ok := refs[f.Index]; ok && old.digest != ref.digest {
				v.violate("state digest at applied index %d was %s after the heal and %s with the agents stopped", f.Index, short(old.digest), short(ref.digest))
			}
			refs[f.Index] = ref
			final = fmt.Sprintf(", %s at index %d with the agents stopped", short(ref.digest), f.Index)
			if f.Index == in.Index {
				final = " (read again with the agents stopped)"
			}
			v.stat("final_index", f.Index)
		}
	}
	// Offline replay.
	if in.ReplayUnavailable != "" {
		v.note("replay: %s", in.ReplayUnavailable)
	}
	replay := checkReplays(v, in, refs)
	if in.ReplayUnavailable != "" {
		replay = "; replay: " + in.ReplayUnavailable
	}
	return v.finish(fmt.Sprintf("%d servers agree on digest %s at index %d%s; chain of %d events verifies on every server%s",
		len(in.Digests), short(digest), in.Index, final, len(in.Events), replay))
}

// checkFinal judges the final read: equal digests at its index, and every
// server's own chain verifying, agreeing with the leader's log at index
// (head, n events there) and with the others' at the final index. It
// returns the live state at the final index, and whether it is known.
func checkFinal(v *Verdict, f *FinalRead, index uint64, head fsm.Hash, n int) (liveRef, bool) {
	digest, differ := digestAgreement(f.Digests)
	if differ != "" {
		v.violate("state digests differ at applied index %d with the agents stopped: %s", f.Index, differ)
		return liveRef{}, false
	}
	ids := make([]string, 0, len(f.Events))
	for id := range f.Events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var fh fsm.Hash
	var fn int
	known, ok := "", true
	for _, id := range ids {
		evs := f.Events[id]
		if _, err := fsm.VerifyChain(fsm.Hash{}, evs); err != nil {
			v.violate("%s: event hash chain does not verify at index %d with the agents stopped: %v", id, f.Index, err)
			ok = false
			continue
		}
		if sh, sn := headAt(evs, index); index > 0 && (sh != head || sn != n) {
			v.violate("%s, with the agents stopped: %d events up to index %d with head %s, the leader's log had %d with head %s", id, sn, index, short(sh.String()), n, short(head.String()))
			ok = false
		}
		sh, sn := headAt(evs, f.Index)
		if known == "" {
			fh, fn, known = sh, sn, id
		} else if sh != fh || sn != fn {
			v.violate("%s, with the agents stopped: %d events up to index %d with head %s, %s has %d with head %s", id, sn, f.Index, short(sh.String()), known, fn, short(fh.String()))
			ok = false
		}
	}
	if known == "" || !ok || digest == "" {
		if known == "" {
			v.note("final read at index %d: no server's events, so no chain head to compare replays with there", f.Index)
		}
		return liveRef{}, false
	}
	return liveRef{digest, fh.String(), "with the agents stopped"}, true
}

// checkReplays judges the replays: each must succeed with a verified chain
// and, at an index the live state is known at (refs), give its digest and
// chain head; a replay at another index (a data dir that reaches no ref)
// must agree with the replays of the other data dirs there, one of which
// was also compared with the live state. It notes the index each replay
// was compared at and returns the summary's replay clause.
func checkReplays(v *Verdict, in ConvergenceInput, refs map[uint64]liveRef) string {
	atLive := map[string]bool{}
	byTarget := map[uint64][]ReplayResult{}
	// compared groups the servers by the index (and kind) they were
	// compared at, for the summary.
	compared := map[string][]string{}
	var order []string
	compare := func(how string, servers ...string) {
		if _, ok := compared[how]; !ok {
			order = append(order, how)
		}
		compared[how] = append(compared[how], servers...)
	}
	for _, r := range in.Replays {
		t := r.Target
		if t == 0 {
			t = in.Index
		}
		switch {
		case r.Error != "":
			v.violate("replay of %s to index %d failed: %s", r.Server, t, r.Error)
			continue
		case !r.ChainVerified:
			v.violate("replay of %s to index %d: event chain not verified", r.Server, t)
			continue
		}
		ref, ok := refs[t]
		if !ok {
			byTarget[t] = append(byTarget[t], r)
			continue
		}
		switch {
		case r.Digest != ref.digest:
			v.violate("replay of %s to index %d gives digest %s (applied index %d), the servers reported %s there %s", r.Server, t, short(r.Digest), r.AppliedIndex, short(ref.digest), ref.when)
		case r.ChainHead != ref.head:
			v.violate("replay of %s to index %d gives chain head %s, the log's head there is %s", r.Server, t, short(r.ChainHead), short(ref.head))
		default:
			atLive[r.Server] = true
			v.note("replay of %s to index %d (from the snapshot at %d) compared with the live digest and chain head at %d, read %s: equal", r.Server, t, r.SnapshotIndex, t, ref.when)
			compare(fmt.Sprintf("at %d (live, %s)", t, ref.when), r.Server)
		}
	}
	targets := make([]uint64, 0, len(byTarget))
	for t := range byTarget {
		targets = append(targets, t)
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i] < targets[j] })
	undecided := 0
	for _, t := range targets {
		rs := byTarget[t]
		var parts, servers []string
		differ, anchored := false, false
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s gives digest %s, chain head %s", r.Server, short(r.Digest), short(r.ChainHead)))
			servers = append(servers, r.Server)
			differ = differ || r.Digest != rs[0].Digest || r.ChainHead != rs[0].ChainHead
			anchored = anchored || atLive[r.Server]
		}
		switch {
		case differ:
			v.violate("replays to index %d (no live digest known there) differ: %s", t, strings.Join(parts, "; "))
		case len(rs) < 2 || !anchored:
			undecided += len(rs)
			v.note("replay of %s to index %d not compared: no live digest is known there and no other data dir whose replay matched the live state reaches it", strings.Join(servers, ","), t)
		default:
			v.note("replays of %s to index %d (no live digest known there) agree: digest %s, chain head %s", strings.Join(servers, ","), t, short(rs[0].Digest), short(rs[0].ChainHead))
			compare(fmt.Sprintf("at %d (against each other)", t), servers...)
		}
	}
	skipped := make([]string, 0, len(in.ReplaySkipped))
	for id := range in.ReplaySkipped {
		skipped = append(skipped, id)
	}
	sort.Strings(skipped)
	for _, id := range skipped {
		undecided++
		v.note("%s not replayed: %s", id, in.ReplaySkipped[id])
	}
	if undecided > 0 && v.Result == "" {
		v.Result = Unknown
	}
	v.stat("replays", len(in.Replays))
	var parts []string
	for _, how := range order {
		parts = append(parts, strings.Join(compared[how], ",")+" "+how)
	}
	out := "; no replay compared"
	if len(parts) > 0 {
		out = "; replays reproduce it: " + strings.Join(parts, "; ")
	}
	if undecided > 0 {
		out += fmt.Sprintf("; %d data dir(s) not compared (notes)", undecided)
	}
	return out
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	if d == "" {
		return "(none)"
	}
	return d
}

// FetchEvents reads a server's whole event log, paging by index: each
// page starts at the index of the last event of the previous one (an
// index can hold several events), keeping only events not seen yet.
func FetchEvents(ctx context.Context, c *api.Client) ([]fsm.Event, error) {
	var out []fsm.Event
	var from, lastSeq uint64
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		page, err := c.Events(rctx, from, "")
		cancel()
		if err != nil {
			return out, err
		}
		added := 0
		for _, e := range page {
			if e.Seq > lastSeq {
				out = append(out, e)
				lastSeq = e.Seq
				added++
			}
		}
		if added == 0 || len(page) == 0 {
			return out, nil
		}
		from = page[len(page)-1].Index
	}
}

// CollectDigests polls every server's status until all of them have been
// seen at one applied index, and returns their digests there (the idea of
// `ice verify`, against a known list of servers).
func CollectDigests(ctx context.Context, servers []*Server, timeout time.Duration) (uint64, []ServerDigest, error) {
	seen := map[string]map[uint64]string{}
	var mu sync.Mutex
	deadline := time.Now().Add(timeout)
	lastErr := map[string]string{}
	for {
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				st, err := s.Client().Status(rctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					lastErr[s.ID] = err.Error()
					return
				}
				delete(lastErr, s.ID)
				if seen[s.ID] == nil {
					seen[s.ID] = map[uint64]string{}
				}
				seen[s.ID][st.AppliedIndex] = st.Digest
			})
		}
		wg.Wait()
		var best uint64
		for idx := range seen[servers[0].ID] {
			all := true
			for _, s := range servers[1:] {
				if _, ok := seen[s.ID][idx]; !ok {
					all = false
					break
				}
			}
			if all && idx > best {
				best = idx
			}
		}
		if best > 0 {
			var out []ServerDigest
			for _, s := range servers {
				out = append(out, ServerDigest{ID: s.ID, AppliedIndex: best, Digest: seen[s.ID][best]})
			}
			return best, out, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var why []string
			for _, s := range servers {
				if e, ok := lastErr[s.ID]; ok {
					why = append(why, s.ID+": "+e)
				} else {
					var idxs []uint64
					for i := range seen[s.ID] {
						idxs = append(idxs, i)
					}
					sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
					if len(idxs) > 3 {
						idxs = idxs[len(idxs)-3:]
					}
					why = append(why, fmt.Sprintf("%s at %v", s.ID, idxs))
				}
			}
			return 0, nil, fmt.Errorf("no common applied index within %s (%s)", timeout, strings.Join(why, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ReadFinal reads the live cluster once more, for the replays to be compared
// with (replay.go): it polls every server's status until all report one
// applied index, reads each server's own events, and keeps them when every
// server still reports that index afterwards (so the events are its chain
// there); otherwise it tries again, until timeout. Meant for when the
// agents are stopped and entries are rare.
func ReadFinal(ctx context.Context, servers []*Server, timeout time.Duration) (*FinalRead, error) {
	deadline := time.Now().Add(timeout)
	why := "no attempt"
	for {
		index, digests, err := statusAll(ctx, servers)
		switch {
		case err != nil:
			why = err.Error()
		case index == 0:
			why = fmt.Sprintf("applied indexes differ: %s", digestList(digests))
		default:
			f := &FinalRead{Index: index, Digests: digests, Events: map[string][]fsm.Event{}}
			for _, s := range servers {
				sc := s.Client()
				sc.Stale = true
				evs, err := FetchEvents(ctx, sc)
				if err != nil {
					why = fmt.Sprintf("events of %s: %v", s.ID, err)
					f = nil
					break
				}
				f.Events[s.ID] = evs
			}
			if f == nil {
				break
			}
			after, ds, err := statusAll(ctx, servers)
			if err == nil && after == index {
				return f, nil
			}
			why = fmt.Sprintf("the servers were at %d before their events were read and then at %s", index, digestList(ds))
			if err != nil {
				why = fmt.Sprintf("the servers were at %d before their events were read, then %v", index, err)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("no applied index held on every server while their events were read within %s (last: %s)", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusAll reads every server's status at once: their applied index when
// all report the same one (0 when they differ), and their digests.
func statusAll(ctx context.Context, servers []*Server) (uint64, []ServerDigest, error) {
	out := make([]ServerDigest, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			st, err := s.Client().Status(rctx)
			if err != nil {
				errs[i] = fmt.Errorf("status of %s: %w", s.ID, err)
				return
			}
			out[i] = ServerDigest{ID: s.ID, AppliedIndex: st.AppliedIndex, Digest: st.Digest}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, out, err
		}
	}
	for _, d := range out[1:] {
		if d.AppliedIndex != out[0].AppliedIndex {
			return 0, out, nil
		}
	}
	return out[0].AppliedIndex, out, nil
}

func digestList(ds []ServerDigest) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%s at %d", d.ID, d.AppliedIndex))
	}
	return strings.Join(parts, ", ")
}

// digestAgreement returns the first server's digest and, when the servers'
// digests differ, which servers have which ("s1,s3 has 0a1b; s2 has ...",
// sorted); "" when they agree.
func digestAgreement(digests []ServerDigest) (first, differ string) {
	groups := map[string][]string{}
	for _, d := range digests {
		groups[d.Digest] = append(groups[d.Digest], d.ID)
		if first == "" {
			first = d.Digest
		}
	}
	if len(groups) < 2 {
		return first, ""
	}
	parts := make([]string, 0, len(groups))
	for d, ids := range groups {
		parts = append(parts, fmt.Sprintf("%s has %s", strings.Join(ids, ","), short(d)))
	}
	sort.Strings(parts)
	return first, strings.Join(parts, "; ")
}
