package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ice-run/ice/bench"
)

// runFloor measures the floor: three `icebench floor-node` processes
// (hashicorp/raft + raft-boltdb/v2 behind one HTTPS handler), secure like
// ICE, every client on the leader.
func runFloor(o *options, tmp string, sys *bench.System, acc *bench.Access) {
	sys.How = bench.FloorHow(acc)
	self, err := os.Executable()
	if err != nil {
		sys.Reason = fmt.Sprintf("find the icebench binary to start floor nodes: %v", err)
		logf("floor: %s", sys.Reason)
		return
	}
	logf("floor: starting 3 %s processes", bench.FloorNodeCommand)
	c, err := bench.StartFloorCluster(self, filepath.Join(tmp, "floor"), 3, acc)
	if err != nil {
		sys.Reason = err.Error()
		logf("floor: %v", err)
		return
	}
	defer c.Stop()
	leader, err := c.WaitLeader(60 * time.Second)
	if err != nil {
		sys.Reason = err.Error()
		logf("floor: %v", err)
		return
	}
	sys.Available = true
	logf("floor: leader %s (https %s)", leader.ID, leader.HTTP)
	for _, n := range o.clients {
		w := c.Writer(leader, n, o.payload)
		lv := bench.RunLoad(context.Background(), o.load(n, c.Procs...), w.Op)
		w.HTTP.CloseIdleConnections()
		lv.Target = "leader"
		sys.Levels = append(sys.Levels, lv)
		levelLine(sys.Label, lv)
	}
}
