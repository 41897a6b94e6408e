package rpc

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// routeNodeLeases registers GET /v1/nodes/leases: the leader's lease table
// (when each node's agent last renewed), which is in the leader's memory
// only, not in the replicated state. A follower forwards the request to the
// leader whatever ?stale says: its own table is empty.
func (s *Server) routeNodeLeases() {
	s.handle("GET /v1/nodes/leases", s.getNodeLeases)
}

func (s *Server) getNodeLeases(w http.ResponseWriter, r *http.Request) error {
	if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
		if err != nil {
			return fmt.Errorf("node leases: %w", err)
		}
		return nil
	}
	seen, err := s.b.Leases()
	if err != nil {
		return fmt.Errorf("node leases: %w", err)
	}
	now := s.b.Now()
	ttl := s.b.LeaseTTL()
	var nodes []*fsm.Node
	var idx uint64
	s.b.Read(func(st *fsm.State) {
		idx = st.Index()
		var id *identity
		if id, err = s.identify(r, st, now); err == nil {
			nodes, err = filtered(st.Nodes(), acl.KindNode, id, func(n *fsm.Node) string { return n.ID })
		}
	})
	if err != nil {
		return err
	}
	out := api.NodeLeases{Leader: s.b.ID(), TTLMillis: ttl.Milliseconds(), Leases: make([]api.NodeLease, 0, len(nodes))}
	for _, n := range nodes {
		l := api.NodeLease{Node: n.ID, Status: string(n.Status), TTLMillis: ttl.Milliseconds()}
		if t, ok := seen[n.ID]; ok {
			age := max(time.Since(t), 0) // monotonic, as the leader's lease check measures
			l.Known, l.AgeMillis, l.Expired = true, age.Milliseconds(), age > ttl
		}
		out.Leases = append(out.Leases, l)
	}
	sort.Slice(out.Leases, func(i, j int) bool { return out.Leases[i].Node < out.Leases[j].Node })
	metrics.IncrCounter([]string{"ice", "lease", "table_read"}, 1)
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}
