package cluster

import (
	"context"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/randomid"
)

// ensureClusterID proposes the cluster's id once, when this leader finds the
// state without one and every server reads the command (a cluster that
// still has servers of an older build gets its id after the upgrade). Run
// ids hash the cluster id in, so runs of two clusters never share an id,
// and plugins receive it with their epoch to fence outside systems.
func (s *Server) ensureClusterID(ctx context.Context) {
	var id string
	s.sm.read(func(st *fsm.State) { id = st.ClusterID() })
	if id != "" || s.BodyVersion() < fsm.MinBodyVersion(fsm.ClusterInitType) {
		return
	}
	newID, err := randomid.UUID()
	if err != nil {
		s.logger.Error("cannot make a cluster id", "error", err)
		return
	}
	res, err := s.Apply(ctx, fsm.ClusterInitType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "cluster id"}, &fsm.ClusterInitRequest{ID: newID})
	if err == nil {
		err = res.FirstErr()
	}
	if err != nil {
		s.logger.Warn("cluster id not recorded", "error", err)
		return
	}
	s.logger.Info("cluster id recorded", "cluster_id", newID, "index", res.Index)
}
