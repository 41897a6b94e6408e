package jepsen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fault kinds.
const (
	KindKill          = "kill"               // SIGKILL a random server, restart it from its data dir
	KindKillLeader    = "kill-leader"        // SIGKILL the leader, restart it
	KindKillAgent     = "kill-agent"         // SIGKILL an agent (its plugins live on), restart it
	KindPause         = "pause"              // SIGSTOP a server (the leader half of the time), SIGCONT
	KindPauseAgent    = "pause-agent"        // SIGSTOP an agent (its plugins run on), SIGCONT
	KindPartMajority  = "partition-majority" // a random minority of servers cut from the majority
	KindPartLeader    = "partition-leader"   // the leader cut from every other server
	KindPartBridge    = "partition-bridge"   // two sides that cannot see each other, one server sees both
	KindPartAgent     = "partition-agent"    // one agent cut from every server
	partitionShortcut = "partition"          // all four partition kinds
	allShortcut       = "all"                // every kind

	// KindCorrupt stops a server, flips a byte inside a committed log entry
	// after its newest snapshot, starts it (it must halt there and be
	// alarmed); the heal removes it with remove-peer, wipes its data dir
	// and starts it fresh.
	KindCorrupt = "corrupt"
	// KindDiskFull fills a server's data dir (a tmpfs of its own) with a
	// file; the heal deletes the file.
	KindDiskFull = "disk-full"
	// KindClockSkew restarts a server (every other time the leader, made
	// leader again) with its wall clock offset back or forward (the two
	// alternating); the heal restarts it without.
	KindClockSkew = "clock-skew"
	// KindMembership stops a server, removes it with `ice operator raft
	// remove-peer` and wipes its data dir; the heal starts a replacement
	// (same id, fresh data dir, no --bootstrap-expect) and waits until it
	// is a voter again.
	KindMembership = "membership"
)

// AllKinds lists every fault kind in a fixed order.
var AllKinds = []string{KindKill, KindKillLeader, KindKillAgent, KindPause, KindPauseAgent,
	KindPartMajority, KindPartLeader, KindPartBridge, KindPartAgent,
	KindCorrupt, KindDiskFull, KindClockSkew, KindMembership}

// backgroundKinds run on a track of their own, overlapping the other
// faults: the cluster must stay correct while a member is replaced, a disk
// is full or a clock is off, whatever else happens.
var backgroundKinds = []string{KindDiskFull, KindClockSkew, KindMembership}

// IsBackground says whether a kind runs on the background track.
func IsBackground(kind string) bool { return slices.Contains(backgroundKinds, kind) }

// ExpandKinds parses a --faults list: kind names, "partition" for every
// partition kind and "all" for every kind. It returns them deduplicated in
// AllKinds order.
func ExpandKinds(list []string) ([]string, error) {
	want := map[string]bool{}
	for _, k := range list {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case k == allShortcut:
			for _, p := range AllKinds {
				want[p] = true
			}
		case k == partitionShortcut:
			for _, p := range AllKinds {
				if isPartition(p) {
					want[p] = true
				}
			}
		case slices.Contains(AllKinds, k):
			want[k] = true
		default:
			return nil, fmt.Errorf("unknown fault %q (known: %s, partition, all)", k, strings.Join(AllKinds, ", "))
		}
	}
	var out []string
	for _, k := range AllKinds {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func isPartition(kind string) bool { return strings.HasPrefix(kind, "partition-") }

func isAgentKind(kind string) bool {
	return kind == KindKillAgent || kind == KindPartAgent || kind == KindPauseAgent
}

// Overhead is the time a fault of kind takes beyond its hold, to inject
// and to heal (restarts, remove-peer, a replacement catching up), which
// the plan leaves free before the next fault of its track.
func Overhead(kind string) time.Duration {
	switch kind {
	case KindCorrupt, KindMembership:
		return 8 * time.Second
	case KindClockSkew:
		return 4 * time.Second
	case KindDiskFull:
		return 2 * time.Second
	}
	return 0
}

// PlanParams shape a fault schedule.
type PlanParams struct {
	// Gap is the quiet time before each fault, Hold how long it lasts.
	GapMin, GapMax   time.Duration
	HoldMin, HoldMax time.Duration
	// AgentHoldMin is the shortest hold of an agent fault: longer than the
	// lease TTL plus margin, so that the agent's runs are replaced.
	AgentHoldMin time.Duration
	// CorruptHoldMin is the shortest hold of a corrupt fault: two
	// corruption check intervals and a margin, the time the cluster has
	// to alarm it.
	CorruptHoldMin time.Duration
	// BackgroundGapMin and BackgroundGapMax are the gaps of the
	// background track (IsBackground); zero: twice the foreground's.
	BackgroundGapMin, BackgroundGapMax time.Duration
	// Tail is the quiet time left at the end of the run.
	Tail time.Duration
	// Overlap: each gap counts from the start of the previous fault, not
	// its end, so faults overlap (a kill during a partition, ...).
	Overlap bool
}

// PlannedFault is one fault of the schedule. Every random choice is made
// when planning, so that a seed gives the same schedule; which process is
// the leader is the only thing decided at run time.
type PlannedFault struct {
	Seq  int           `json:"seq"`
	Kind string        `json:"kind"`
	At   time.Duration `json:"at_ns"` // planned start, from the start of the workload
	Gap  time.Duration `json:"gap_ns"`
	Hold time.Duration `json:"hold_ns"`
	// Pick chooses a target among candidates (Pick mod len).
	Pick uint64 `json:"pick"`
	// Perm is a random order of the servers, for partitions.
	Perm []int `json:"perm"`
	// Background: the fault is on the background track.
	Background bool `json:"background,omitempty"`
	// Skew is the clock offset of a clock-skew fault; Leader says it acts
	// on the leader rather than a random server.
	Skew   time.Duration `json:"skew_ns,omitempty"`
	Leader bool          `json:"leader,omitempty"`
}

// PlanFaults makes the fault schedule of a seed. The foreground kinds come
// in rounds, each round in a fresh random order, one after another (or
// overlapping with p.Overlap), until duration minus the tail is used up;
// the background kinds (IsBackground) likewise on a track of their own,
// drawn from a stream of their own (so that they leave the foreground plan
// of a seed as it was), overlapping the foreground, except that a
// membership fault is moved past any corrupt fault it would overlap (both
// change the voters; the nemesis also runs them one at a time). The
// faults are returned in start order, numbered from 1.
func PlanFaults(seed uint64, kinds []string, duration time.Duration, servers int, p PlanParams) []PlannedFault {
	var fg, bg []string
	for _, k := range kinds {
		if IsBackground(k) {
			bg = append(bg, k)
		} else {
			fg = append(fg, k)
		}
	}
	out := planTrack(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), fg, duration, servers, p, p.GapMin, p.GapMax, nil)
	var busy [][2]time.Duration
	for _, f := range out {
		if f.Kind == KindCorrupt {
			busy = append(busy, [2]time.Duration{f.At, f.At + f.Hold + Overhead(f.Kind)})
		}
	}
	gapMin, gapMax := p.BackgroundGapMin, p.BackgroundGapMax
	if gapMin <= 0 || gapMax <= 0 {
		gapMin, gapMax = 2*p.GapMin, 2*p.GapMax
	}
	bp := p
	bp.Overlap = false
	back := planTrack(rand.New(rand.NewPCG(seed^0xbf58476d1ce4e5b9, seed+1)), bg, duration, servers, bp, gapMin, gapMax, busy)
	for i := range back {
		back[i].Background = true
	}
	out = append(out, back...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	for i := range out {
		out[i].Seq = i + 1
	}
	return out
}

// planTrack plans one track; a membership fault that would overlap one of
// the busy windows starts after it instead (with the gap it drew), or,
// when that is past the end, is left out for the next kind of the round.
func planTrack(rng *rand.Rand, kinds []string, duration time.Duration, servers int, p PlanParams, gapMin, gapMax time.Duration, busy [][2]time.Duration) []PlannedFault {
	if len(kinds) == 0 {
		return nil
	}
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	var out []PlannedFault
	var round []string
	at := time.Duration(0)
	dropped := 0
	skews, lastBack := 0, false
	for {
		if len(round) == 0 {
			round = append([]string(nil), kinds...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		round = round[1:]
		f := PlannedFault{Kind: kind, Gap: between(gapMin, gapMax), Pick: rng.Uint64(), Perm: rng.Perm(servers)}
		switch {
		case isAgentKind(kind):
			lo := max(p.AgentHoldMin, p.HoldMin)
			f.Hold = between(lo, lo+p.HoldMax-p.HoldMin)
		case kind == KindCorrupt:
			lo := max(p.CorruptHoldMin, p.HoldMin)
			f.Hold = between(lo, lo+p.HoldMax-p.HoldMin)
		default:
			f.Hold = between(p.HoldMin, p.HoldMax)
		}
		if kind == KindClockSkew {
			// 20s to 2m, back or forward: the first way drawn, then
			// alternating; the first, third, ... skew the leader.
			f.Skew = (20*time.Second + time.Duration(rng.Int64N(int64(100*time.Second)))).Round(time.Second)
			back := rng.IntN(2) == 0
			if skews > 0 {
				back = !lastBack
			}
			if back {
				f.Skew = -f.Skew
			}
			f.Leader, lastBack = skews%2 == 0, back
			skews++
		}
		f.At = at + f.Gap
		moved := false
		if kind == KindMembership {
			start := pastBusy(f.At, f.Hold+Overhead(kind), f.Gap, busy)
			f.At, moved = start, start != f.At
		}
		if f.At+f.Hold+Overhead(kind) > duration-p.Tail {
			if moved && dropped < len(kinds) {
				// Moved past the end by a busy window: the next kind
				// may still fit where this one would have gone.
				dropped++
				continue
			}
			return out
		}
		dropped = 0
		at = f.At + f.Hold + Overhead(kind)
		if p.Overlap {
			at = f.At
		}
		out = append(out, f)
	}
}

// pastBusy returns the first start at or after at such that [start,
// start+length] overlaps no busy window (each followed by gap).
func pastBusy(at, length, gap time.Duration, busy [][2]time.Duration) time.Duration {
	for moved := true; moved; {
		moved = false
		for _, w := range busy {
			if at < w[1]+gap && at+length > w[0]-gap {
				at, moved = w[1]+gap, true
			}
		}
	}
	return at
}
