package jepsen

import (
	"reflect"
	"testing"
)

// The data dirs of the seed 1 flake: s2 snapshotted at 5066, one entry
// after the digests' index 5065, and compacted its log to start at 5003;
// its previous snapshot, 4756, does not meet it.
var seed1Reach = map[string]*DataDirReach{
	"s1": {Snapshots: []uint64{4810}, First: 4747, Last: 5066},
	"s2": {Snapshots: []uint64{4756, 5066}, First: 5003, Last: 5066},
	"s3": {Snapshots: []uint64{4990}, First: 4927, Last: 5066},
}

func TestDataDirReaches(t *testing.T) {
	d := seed1Reach["s2"]
	for i, want := range map[uint64]bool{4755: false, 4756: true, 4757: false, 5002: false, 5065: false, 5066: true, 5067: false} {
		if got := d.Reaches(i); got != want {
			t.Errorf("%s reaches %d: %v, want %v", d, i, got, want)
		}
	}
	empty := DataDirReach{Snapshots: []uint64{9}} // restored, log empty
	if empty.Reaches(9) {
		t.Errorf("%s reaches 9: replay stops at the log's last entry", empty)
	}
	fresh := DataDirReach{First: 1, Last: 20}
	if !fresh.Reaches(1) || !fresh.Reaches(20) || fresh.Reaches(0) {
		t.Errorf("%s: reaches 1..20 from the empty state", fresh)
	}
}

func TestPlanReplays(t *testing.T) {
	ids := []string{"s1", "s2", "s3"}
	// The final read at 5066 (agents stopped) is reached by every data dir.
	plan, skipped := PlanReplays(ids, seed1Reach, []uint64{5065, 5066})
	want := []PlannedReplay{{"s1", 5066}, {"s2", 5066}, {"s3", 5066}}
	if !reflect.DeepEqual(plan, want) || len(skipped) != 0 {
		t.Fatalf("plan %v, skipped %v; want %v", plan, skipped, want)
	}
	// Only the digests' index: s2 is replayed to its snapshot at 5066 and
	// so are the others, to be compared with it; they are compared with the
	// live state at 5065.
	plan, skipped = PlanReplays(ids, seed1Reach, []uint64{5065})
	want = []PlannedReplay{{"s1", 5065}, {"s2", 5066}, {"s3", 5065}, {"s1", 5066}, {"s3", 5066}}
	if !reflect.DeepEqual(plan, want) || len(skipped) != 0 {
		t.Fatalf("plan %v, skipped %v; want %v", plan, skipped, want)
	}
	// A data dir not read is replayed to the newest index, and one reaching
	// nothing is skipped (the checker then cannot decide).
	reach := map[string]*DataDirReach{"s1": seed1Reach["s1"], "s3": {Snapshots: []uint64{9}}}
	plan, skipped = PlanReplays(ids, reach, []uint64{5065, 5066})
	want = []PlannedReplay{{"s1", 5066}, {"s2", 5066}}
	if !reflect.DeepEqual(plan, want) || skipped["s3"] == "" {
		t.Fatalf("plan %v, skipped %v; want %v and s3 skipped", plan, skipped, want)
	}
}

func TestReadReach(t *testing.T) {
	d, err := ReadReach(dataDir(t, 20, 9))
	if err != nil {
		t.Fatal(err)
	}
	if want := (DataDirReach{Snapshots: []uint64{9}, First: 1, Last: 20}); !reflect.DeepEqual(d, want) {
		t.Fatalf("reach %+v, want %+v", d, want)
	}
}
