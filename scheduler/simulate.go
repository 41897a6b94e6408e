package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/ice-run/ice/fsm"
)

// PlacementStats reports a simulated placement.
type PlacementStats struct {
	Nodes, Runs int
	// Entries is the number of log entries the runtime proposed.
	Entries  int
	Duration time.Duration
	// MinPerNode and MaxPerNode show the spread.
	MinPerNode, MaxPerNode int
}

// SimulatePlacement measures the scheduler without Raft or processes: it
// registers nodes simulated ready nodes that carry a "sim" plugin, deploys
// one component of runs runs, and applies what Reconcile proposes, through
// the real encoding and state machine, as the leader would, until every run
// is placed. progress, if set, is told how many runs are placed.
func SimulatePlacement(nodes, runs int, progress func(placed, total int)) (PlacementStats, error) {
	_, stats, err := simulatePlacement(nodes, runs, progress)
	return stats, err
}

// simulatePlacement is SimulatePlacement that also returns the state it
// built.
func simulatePlacement(nodes, runs int, progress func(placed, total int)) (*fsm.State, PlacementStats, error) {
	st := fsm.New()
	var index uint64
	apply := func(t fsm.MessageType, actor, node string, body any) (*fsm.Result, error) {
		index++
		data, err := fsm.Encode(t, fsm.Header{Actor: actor, Node: node, Time: time.Now().UnixNano()}, body)
		if err != nil {
			return nil, err
		}
		res := st.Apply(index, 1, data)
		if err := res.FirstErr(); err != nil {
			return nil, fmt.Errorf("simulate: apply %s at %d: %w", t, index, err)
		}
		return res, nil
	}
	sha := strings.Repeat("5", 64)
	for i := 0; i < nodes; i++ {
		id := fmt.Sprintf("sim-%04d", i)
		if _, err := apply(fsm.NodeRegisterType, fsm.AgentActor(id), id, &fsm.NodeRegisterRequest{Node: fsm.Node{
			ID: id, Plugins: []fsm.PluginInfo{{Name: "sim", SHA256: sha}},
		}}); err != nil {
			return nil, PlacementStats{}, err
		}
	}
	if _, err := apply(fsm.ComponentPutType, "operator:bench", "", &fsm.ComponentPutRequest{Spec: fsm.Spec{
		Name: "sim", Plugin: fsm.PluginRef{Name: "sim"}, Count: runs,
	}}); err != nil {
		return nil, PlacementStats{}, err
	}
	stats := PlacementStats{Nodes: nodes, Runs: runs}
	start := time.Now()
	placed := 0
	for placed < runs {
		plan := Reconcile(st, time.Now().UnixNano(), MaxBatch)
		if plan.Empty() {
			return nil, stats, fmt.Errorf("simulate: the scheduler stopped with %d of %d runs placed", placed, runs)
		}
		for _, b := range plan.Creates {
			if _, err := apply(fsm.RunsCreateType, fsm.RuntimeActor, "", &fsm.RunsCreateRequest{Runs: b}); err != nil {
				return nil, stats, err
			}
			stats.Entries++
		}
		for _, b := range plan.Placements {
			if _, err := apply(fsm.RunTransitionType, fsm.RuntimeActor, "", &fsm.RunTransitionRequest{Transitions: b}); err != nil {
				return nil, stats, err
			}
			stats.Entries++
			placed += len(b)
			if progress != nil {
				progress(placed, runs)
			}
		}
	}
	stats.Duration = time.Since(start)
	per := map[string]int{}
	for _, r := range st.Runs("sim") {
		per[r.Node]++
	}
	stats.MinPerNode, stats.MaxPerNode = runs, 0
	for i := 0; i < nodes; i++ {
		n := per[fmt.Sprintf("sim-%04d", i)]
		stats.MinPerNode, stats.MaxPerNode = min(stats.MinPerNode, n), max(stats.MaxPerNode, n)
	}
	return st, stats, nil
}
