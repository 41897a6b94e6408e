package jepsen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// ValueKey is the config key that carries a register's (or ticker's) value.
const ValueKey = "v"

// opTimeout bounds one client operation.
const opTimeout = 3 * time.Second

// RegisterWorkload treats K components as compare-and-set registers: a
// write is PUT /v1/components/{name}?cas=GEN with the value in its config
// and count 0 (so no runs are made), a read is a consistent GET.
type RegisterWorkload struct {
	C       *Cluster
	Rec     *Recorder
	Keys    []string
	Clients int
	// Rate is the operations per second of each client.
	Rate float64
	Seed uint64

	values atomic.Int64
	counts sync.Map // "f type" -> *atomic.Int64
}

// RegisterKeys names k register components.
func RegisterKeys(k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("reg-%d", i)
	}
	return out
}

// Run drives the clients until ctx ends.
func (w *RegisterWorkload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.Clients {
		wg.Go(func() { w.client(ctx, i) })
	}
	wg.Wait()
}

func (w *RegisterWorkload) count(f, typ string) {
	v, _ := w.counts.LoadOrStore(f+" "+typ, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Counts returns operation counts by "f type".
func (w *RegisterWorkload) Counts() map[string]int64 {
	out := map[string]int64{}
	w.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (w *RegisterWorkload) client(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(w.Seed, uint64(id)+1))
	known := map[string]uint64{} // the generation this client last saw per key
	stale := map[string]bool{}   // keys whose last write met a conflict
	cur := id % len(w.C.Servers)
	interval := time.Duration(float64(time.Second) / w.Rate)
	next := time.Now().Add(time.Duration(rng.Int64N(int64(interval))))
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		next = next.Add(interval/2 + time.Duration(rng.Int64N(int64(interval))))
		if now := time.Now(); next.Before(now) {
			next = now // an op that took long does not cause a burst
		}
		// A client sticks to one server, as a real one would, moves on
		// when it gets no answer, and now and then hops at random so
		// that every server (a minority one too) keeps being asked.
		if n := len(w.C.Servers); n > 1 && rng.IntN(20) == 0 {
			cur = rng.IntN(n)
		}
		srv := w.C.Servers[cur]
		key := w.Keys[rng.IntN(len(w.Keys))]
		var e Entry
		if stale[key] || rng.IntN(2) == 0 {
			e = ReadRegister(ctx, w.Rec, id, srv, key)
			w.count(FRead, e.Type)
			if e.Type == TOK {
				known[key], stale[key] = e.Gen, false
			}
		} else {
			cas := known[key]
			e = WriteComponent(ctx, w.Rec, id, srv, FWrite, key, w.values.Add(1), &cas, registerSpec)
			w.count(FWrite, e.Type)
			switch {
			case e.Type == TOK:
				known[key] = e.Gen
			case e.Status == http.StatusConflict:
				// Stale: read the key before writing it again.
				stale[key] = true
			}
		}
		if n := len(w.C.Servers); n > 1 && e.Type != TOK && e.Status != http.StatusConflict {
			cur = (cur + 1 + rng.IntN(n-1)) % n
		}
	}
}

// registerSpec is the spec of a register component holding v.
func registerSpec(name string, v int64) *api.ComponentSpec {
	zero := 0
	return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &zero,
		Config: map[string]any{ValueKey: strconv.FormatInt(v, 10)}}
}

// ReadRegister records a consistent read of a component's generation and
// value.
func ReadRegister(ctx context.Context, rec *Recorder, process int, srv *Server, key string) Entry {
	inv := rec.Add(Entry{Type: TInvoke, Process: process, ID: rec.NewID(), F: FRead, Key: key, Server: srv.ID})
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	comp, err := srv.Client().Component(rctx, key)
	cancel()
	done := Entry{Process: process, ID: inv.ID, F: FRead, Key: key, Server: srv.ID}
	switch {
	case err == nil:
		done.Type, done.Found, done.Gen, done.Status = TOK, true, comp.Generation, http.StatusOK
		v, perr := strconv.ParseInt(comp.Config[ValueKey], 10, 64)
		if perr != nil {
			done.Error = fmt.Sprintf("value %q is not an integer", comp.Config[ValueKey])
		}
		done.Value = v
	case api.IsStatus(err, http.StatusNotFound):
		done.Type, done.Status = TOK, http.StatusNotFound
	default:
		// A read that failed changed nothing, whatever the reason.
		done.Type, done.Error = TFail, err.Error()
		var ae *api.APIError
		if errors.As(err, &ae) {
			done.Status = ae.Status
		}
	}
	return rec.Add(done)
}

// WriteComponent records a PUT of the spec for value v with an optional
// cas.
func WriteComponent(ctx context.Context, rec *Recorder, process int, srv *Server, f, key string, v int64, cas *uint64,
	spec func(string, int64) *api.ComponentSpec) Entry {
	inv := rec.Add(Entry{Type: TInvoke, Process: process, ID: rec.NewID(), F: f, Key: key, Value: v, CAS: cas, Server: srv.ID})
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := srv.Client().PutComponent(rctx, spec(key, v), cas)
	cancel()
	done := Entry{Process: process, ID: inv.ID, F: f, Key: key, Value: v, CAS: cas, Server: srv.ID}
	done.Type = classifyWrite(err)
	if err == nil {
		done.Gen, done.Status = resp.Generation, http.StatusOK
	} else {
		done.Error = err.Error()
		var ae *api.APIError
		if errors.As(err, &ae) {
			done.Status = ae.Status
		}
	}
	return rec.Add(done)
}

// classifyWrite says what a write's error means: "ok"; "fail" when it
// certainly did not take effect (a conflict, a refusal, or a connection
// that could not even be opened); otherwise "info": a timeout, a 5xx or a
// broken connection leave it unknown.
func classifyWrite(err error) string {
	if err == nil {
		return TOK
	}
	var ae *api.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusConflict, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			return TFail
		}
		return TInfo
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return TFail
	}
	return TInfo
}
