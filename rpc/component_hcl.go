package rpc

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// routeComponentHCL registers GET /v1/components/{name}/hcl: the
// component's stored spec as the HCL `ice deploy -f` reads (text/plain),
// for a token that may read the component. Like every read it is served by
// the leader unless ?stale=1.
func (s *Server) routeComponentHCL() {
	s.handle("GET /v1/components/{name}/hcl", s.getComponentHCL)
}

func (s *Server) getComponentHCL(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	o, err := parseReadOpts(r)
	if err != nil {
		return err
	}
	if !o.stale {
		if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
			return err
		}
		if err := s.b.ConsistentRead(r.Context()); err != nil {
			return fmt.Errorf("consistent read: %w", err)
		}
	}
	var spec *api.ComponentSpec
	var idx uint64
	s.b.Read(func(st *fsm.State) {
		idx = st.Index()
		var id *identity
		if id, err = s.identify(r, st, s.b.Now()); err != nil {
			return
		}
		if err = id.require(acl.KindComponent, name, acl.Read); err != nil {
			return
		}
		c, ok := st.Component(name)
		if !ok {
			err = fmt.Errorf("component %q: %w", name, fsm.ErrNotFound)
			return
		}
		spec = api.SpecFromFSM(&c.Spec)
	})
	if err != nil {
		return err
	}
	src, err := api.FormatSpecHCL(spec)
	if err != nil {
		return fmt.Errorf("component %q as HCL: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(src)
	return nil
}
