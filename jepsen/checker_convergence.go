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
	// Replays holds `ice replay --to-index Index` of each server's data
	// dir; ReplayUnavailable says why there are none.
	Replays           []ReplayResult
	ReplayUnavailable string
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
		groups := map[string][]string{}
		for _, d := range in.Digests {
			groups[d.Digest] = append(groups[d.Digest], d.ID)
			if digest == "" {
				digest = d.Digest
			}
		}
		if len(groups) > 1 {
			var parts []string
			for d, ids := range groups {
				parts = append(parts, fmt.Sprintf("%s has %s", strings.Join(ids, ","), short(d)))
			}
			sort.Strings(parts)
			v.violate("state digests differ at applied index %d: %s", in.Index, strings.Join(parts, "; "))
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
	// Offline replay.
	if in.ReplayUnavailable != "" {
		v.note("replay: %s", in.ReplayUnavailable)
	}
	for _, r := range in.Replays {
		switch {
		case r.Error != "":
			v.violate("replay of %s failed: %s", r.Server, r.Error)
		case !r.ChainVerified:
			v.violate("replay of %s: event chain not verified", r.Server)
		case digest != "" && r.Digest != digest:
			v.violate("replay of %s to index %d gives digest %s (applied index %d), the servers reported %s", r.Server, in.Index, short(r.Digest), r.AppliedIndex, short(digest))
		case in.Index > 0 && r.ChainHead != head.String():
			v.violate("replay of %s to index %d gives chain head %s, the log's head there is %s", r.Server, in.Index, short(r.ChainHead), short(head.String()))
		}
	}
	v.stat("replays", len(in.Replays))
	replay := fmt.Sprintf("; %d replays reproduce it", len(in.Replays))
	if in.ReplayUnavailable != "" {
		replay = "; replay: " + in.ReplayUnavailable
	}
	return v.finish(fmt.Sprintf("%d servers agree on digest %s at index %d; chain of %d events verifies on every server%s",
		len(in.Digests), short(digest), in.Index, len(in.Events), replay))
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
