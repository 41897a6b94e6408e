package jepsen

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ice-run/ice/api"
)

// RecoveryInput is what the recovery checker judges.
type RecoveryInput struct {
	Entries []Entry
	// Servers are the ids the cluster was configured with.
	Servers []string
	// Peers is the final Raft configuration; PeersError why it was not
	// read (or did not settle).
	Peers      []api.ServerInfo
	PeersError string
}

// recoveryKinds are the faults whose heal is a recovery ICE owes: a
// replacement becomes a voter and catches up, a server whose disk was full
// catches up once space returns, a server restarted without its clock
// offset comes back.
var recoveryKinds = []string{KindCorrupt, KindMembership, KindDiskFull, KindClockSkew}

// CheckRecovery checks that every server came back from its fault: the
// heals of corrupt, membership, disk-full and clock-skew faults succeeded,
// and the final configuration holds exactly the configured servers, all
// voters (replacing members left the cluster at its size). It also notes
// what clients saw from a server while its disk was full.
func CheckRecovery(in RecoveryInput) *Verdict {
	v := &Verdict{Checker: "recovery"}
	healed := map[string]int{}
	for _, e := range in.Entries {
		if e.Type != THeal || e.FaultID == 0 {
			continue
		}
		failed := strings.HasPrefix(e.Detail, "heal failed")
		switch {
		case failed && slices.Contains(recoveryKinds, e.F):
			v.violate("%s of %s (fault #%d) did not recover: %s", e.F, strings.Join(e.Target, ","), e.FaultID, truncate(e.Detail, 400))
		case failed:
			v.note("%s of %s (fault #%d): %s", e.F, strings.Join(e.Target, ","), e.FaultID, truncate(e.Detail, 300))
		default:
			healed[e.F]++
		}
	}
	want := append([]string(nil), in.Servers...)
	sort.Strings(want)
	switch {
	case in.PeersError != "":
		v.violate("the final configuration is not the %d configured servers as voters: %s", len(want), in.PeersError)
	case !slices.Equal(peerIDs(in.Peers), want) || len(in.Peers) != len(want):
		v.violate("the final configuration is %s, want the voters %v", describePeers(in.Peers), want)
	}
	diskFullNotes(v, in.Entries)
	v.stat("replacements", healed[KindCorrupt]+healed[KindMembership])
	v.stat("disk_full_recovered", healed[KindDiskFull])
	v.stat("clock_skew_recovered", healed[KindClockSkew])
	return v.finish(fmt.Sprintf("every server recovered (%d replacements became voters, %d full disks and %d clock offsets healed); the final configuration is the %d servers as voters",
		healed[KindCorrupt]+healed[KindMembership], healed[KindDiskFull], healed[KindClockSkew], len(want)))
}

// diskFullNotes says, for each disk-full fault, how the client requests
// sent to that server while its disk was full ended.
func diskFullNotes(v *Verdict, entries []Entry) {
	ops := Pair(entries)
	for _, f := range Faults(entries) {
		if f.Kind != KindDiskFull || len(f.Target) == 0 {
			continue
		}
		end := f.End
		if end == 0 {
			end = f.Start + 1<<62
		}
		outcomes := map[string]int{}
		var examples []string
		for _, op := range ops {
			inv, c := op.Invoke, op.Complete
			if inv.Server != f.Target[0] || inv.Mono < f.Start || inv.Mono >= end {
				continue
			}
			k := inv.F + " " + c.Type
			if c.Status != 0 && c.Type != TOK {
				k += fmt.Sprintf(" (HTTP %d)", c.Status)
			}
			outcomes[k]++
			if c.Type != TOK && c.Error != "" && len(examples) < 2 && !slices.Contains(examples, truncate(c.Error, 160)) {
				examples = append(examples, truncate(c.Error, 160))
			}
		}
		keys := make([]string, 0, len(outcomes))
		for k, n := range outcomes {
			keys = append(keys, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(keys)
		msg := fmt.Sprintf("disk-full #%d on %s (t=%.1fs–%.1fs): %s", f.ID, f.Target[0], secs(f.Start), secs(end), strings.Join(keys, ", "))
		if len(keys) == 0 {
			msg += "no client request was sent to it"
		}
		if len(examples) > 0 {
			msg += "; e.g. " + strings.Join(examples, " | ")
		}
		v.note("%s", msg)
	}
}
