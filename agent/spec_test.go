package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
)

// Runs of one component that start together share one read of its spec;
// a run that starts after that read finished makes a new one.
func TestSpecReadIsSharedWhileInFlight(t *testing.T) {
	var reads atomic.Int32
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/components/web") {
			http.NotFound(w, r)
			return
		}
		n := reads.Add(1)
		arrived <- struct{}{}
		if n == 1 {
			<-release
		}
		_ = json.NewEncoder(w).Encode(fsm.Component{Spec: fsm.Spec{Name: "web"}, Generation: uint64(n)})
	}))
	defer srv.Close()
	a := &Agent{
		logger:  hclog.NewNullLogger(),
		cfg:     Config{RequestTimeout: 10 * time.Second},
		servers: &serverPool{static: []string{strings.TrimPrefix(srv.URL, "http://")}, dial: dialHTTP},
		ctx:     context.Background(),
	}
	defer a.tasks.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first := a.joinSpecFetch("web")
	<-arrived // the read is in flight
	for range 4 {
		if f := a.joinSpecFetch("web"); f != first {
			t.Fatal("a run starting while the read is in flight started another one")
		}
	}
	close(release)
	comp, err := a.componentSpec(ctx, "web")
	if err != nil || comp.Name != "web" {
		t.Fatalf("spec = %+v, %v", comp, err)
	}
	<-first.done
	if first.err != nil || first.comp.Generation != 1 {
		t.Fatalf("shared read = %+v, %v", first.comp, first.err)
	}
	// Once done (it is forgotten before its waiters are woken), the read
	// is not reused: a later run reads again.
	if comp, err = a.componentSpec(ctx, "web"); err != nil || comp.Generation != 2 {
		t.Fatalf("later spec = %+v, %v, want a new read", comp, err)
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads, want 2", n)
	}
}
