package fsm

import (
	"errors"
	"strings"
	"testing"
)

// casHarness puts and stops the component web, checking the outcome of
// each command.
type casHarness struct {
	t *testing.T
	h *harness
}

func (c casHarness) put(sp Spec, cas *uint64) *Result {
	return c.h.apply(ComponentPutType, c.h.opHdr(), &ComponentPutRequest{Spec: sp, CAS: cas})
}

func (c casHarness) stop(cas *uint64) *Result {
	return c.h.apply(ComponentDeleteType, c.h.opHdr(), &ComponentDeleteRequest{Name: "web", CAS: cas})
}

// rejected checks apply is refused with want and changes nothing.
func (c casHarness) rejected(what string, want error, apply func() *Result) {
	c.t.Helper()
	before := fingerprintOf(c.h.st)
	if res := apply(); !errors.Is(res.Err, want) {
		c.t.Fatalf("%s: got %v, want %v", what, res.Err, want)
	}
	checkUnchanged(c.t, what, before, c.h.st)
}

// noop checks apply is accepted as a no-op at generation wantGen.
func (c casHarness) noop(what string, wantGen uint64, apply func() *Result) {
	c.t.Helper()
	before := fingerprintOf(c.h.st)
	res := apply()
	if res.Err != nil || res.Events != 0 || res.Generation != wantGen {
		c.t.Fatalf("%s: err %v, %d events, generation %d (want a no-op at %d)", what, res.Err, res.Events, res.Generation, wantGen)
	}
	checkUnchanged(c.t, what, before, c.h.st)
}

func (c casHarness) comp() *Component {
	c.t.Helper()
	comp, ok := c.h.st.Component("web")
	if !ok {
		c.t.Fatal("no component web")
	}
	return comp
}

// TestComponentCAS takes the component web through create-only and CAS
// puts, no-op puts, stops and a revival, checking generations and events.
func TestComponentCAS(t *testing.T) {
	h := newHarness(t)
	web := casHarness{t: t, h: h}
	sp := testSpec("web", 1)

	web.rejected("stop of a missing component", ErrNotFound, func() *Result { return web.stop(nil) })
	web.rejected("create with cas=3", ErrConflict, func() *Result { return web.put(sp, u64(3)) })
	if res := h.mustOK(web.put(sp, u64(0))); res.Generation != 1 || res.Events != 1 {
		t.Fatalf("create-only put: %+v", res)
	}
	created := web.comp()
	if created.Generation != 1 || created.RunGeneration != 1 || created.Status != ComponentRunning ||
		created.CreateIndex != h.index || created.ModifyIndex != h.index || created.ModifyTime != baseTime+int64(h.index)*1000 {
		t.Fatalf("created %+v", created)
	}
	web.rejected("second create-only put", ErrConflict, func() *Result { return web.put(testSpec("web", 2), u64(0)) })
	web.rejected("stale cas", ErrConflict, func() *Result { return web.put(testSpec("web", 2), u64(2)) })
	web.noop("identical put", 1, func() *Result { return web.put(sp, nil) })
	web.noop("identical put with matching cas", 1, func() *Result { return web.put(sp, u64(1)) })
	web.rejected("identical put with stale cas", ErrConflict, func() *Result { return web.put(sp, u64(0)) })

	// A change of count alone keeps the run generation.
	h.mustOK(web.put(testSpec("web", 2), u64(1)))
	if c := web.comp(); c.Generation != 2 || c.RunGeneration != 1 || c.CreateIndex != created.CreateIndex {
		t.Fatalf("after count change: %+v", c)
	}
	// A change of what runs execute moves the run generation.
	sp2 := testSpec("web", 2)
	sp2.Config = map[string]string{"interval": "5s"}
	h.mustOK(web.put(sp2, nil))
	if c := web.comp(); c.Generation != 3 || c.RunGeneration != 3 {
		t.Fatalf("after config change: %+v", c)
	}
	// A map spelled differently but equal is the same spec.
	sp3 := testSpec("web", 2)
	sp3.Config = map[string]string{"interval": "5s"}
	web.noop("equal spec", 3, func() *Result { return web.put(sp3, nil) })

	web.rejected("stop with stale cas", ErrConflict, func() *Result { return web.stop(u64(2)) })
	if res := h.mustOK(web.stop(u64(3))); res.Generation != 4 || res.Events != 1 {
		t.Fatalf("stop: %+v", res)
	}
	if c := web.comp(); c.Status != ComponentStopped || c.Generation != 4 {
		t.Fatalf("stopped: %+v", c)
	}
	web.noop("second stop", 4, func() *Result { return web.stop(nil) })
	web.rejected("second stop with stale cas", ErrConflict, func() *Result { return web.stop(u64(3)) })
	web.rejected("runs of a stopped component", ErrConflict, func() *Result {
		res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: 4, Slot: 0}}})
		if res.Err == nil {
			res.Err = res.Items[0]
		}
		return res
	})

	// A put after a stop — even of the same spec — revives the component
	// with the next generation, and its runs are current from there.
	if res := h.mustOK(web.put(sp3, u64(4))); res.Generation != 5 || res.Events != 1 {
		t.Fatalf("revive: %+v", res)
	}
	if c := web.comp(); c.Status != ComponentRunning || c.Generation != 5 || c.RunGeneration != 5 || c.CreateIndex != created.CreateIndex {
		t.Fatalf("revived: %+v", c)
	}
	evs := h.st.Events(0, "web", 0)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := "component.put component.put component.put component.stop component.put"; strings.Join(types, " ") != want {
		t.Errorf("events of web: %s, want %s", strings.Join(types, " "), want)
	}
}

func TestComponentFail(t *testing.T) {
	h := newHarness(t)
	gen := h.putComponent(testSpec("web", 1))
	fail := func(hdr Header, req ComponentFailRequest) *Result { return h.apply(ComponentFailType, hdr, &req) }
	for _, c := range []struct {
		name string
		hdr  Header
		req  ComponentFailRequest
		want error
	}{
		{"operator", h.opHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "x"}, ErrNotAuthorized},
		{"missing", h.rtHdr(), ComponentFailRequest{Name: "nope", Generation: gen, Reason: "x"}, ErrNotFound},
		{"stale generation", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen + 1, Reason: "x"}, ErrConflict},
		{"no reason", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen}, ErrInvalid},
		{"reason too long", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: strings.Repeat("r", maxReasonLen+1)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := fail(c.hdr, c.req); !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}
	h.mustOK(fail(h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "crash loop"}))
	if c, _ := h.st.Component("web"); c.Status != ComponentFailed || c.Reason != "crash loop" {
		t.Fatalf("failed component: %+v", c)
	}
	before := fingerprintOf(h.st)
	if res := fail(h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "again"}); !errors.Is(res.Err, ErrConflict) {
		t.Errorf("failing a failed component: %v", res.Err)
	}
	checkUnchanged(t, "fail twice", before, h.st)
	c, _ := h.st.Component("web")
	if err := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: c.Generation}}}).FirstErr(); !errors.Is(err, ErrConflict) {
		t.Errorf("runs of a failed component: %v", err)
	}
	// Deploying again revives it.
	h.mustOK(h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: testSpec("web", 1)}))
	if c, _ := h.st.Component("web"); c.Status != ComponentRunning || c.Generation <= gen {
		t.Fatalf("revived component: %+v", c)
	}
}

func TestValidateSpec(t *testing.T) {
	ok := testSpec("web", 1)
	if err := ValidateSpec(&ok); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Spec)) Spec { s := testSpec("web", 1); f(&s); return s }
	bad := map[string]Spec{
		"empty name":          mod(func(s *Spec) { s.Name = "" }),
		"name with slash":     mod(func(s *Spec) { s.Name = "a/b" }),
		"name starting dash":  mod(func(s *Spec) { s.Name = "-a" }),
		"name too long":       mod(func(s *Spec) { s.Name = strings.Repeat("a", maxNameLen+1) }),
		"no plugin":           mod(func(s *Spec) { s.Plugin.Name = "" }),
		"bad plugin name":     mod(func(s *Spec) { s.Plugin.Name = "a b" }),
		"bad sha256":          mod(func(s *Spec) { s.Plugin.SHA256 = "xyz" }),
		"negative count":      mod(func(s *Spec) { s.Count = -1 }),
		"count too big":       mod(func(s *Spec) { s.Count = MaxCount + 1 }),
		"empty config key":    mod(func(s *Spec) { s.Config = map[string]string{"": "v"} }),
		"config value big":    mod(func(s *Spec) { s.Config = map[string]string{"k": strings.Repeat("v", maxValueLen+1)} }),
		"constraint no label": mod(func(s *Spec) { s.Constraints = []Constraint{{Op: "="}} }),
		"constraint bad op":   mod(func(s *Spec) { s.Constraints = []Constraint{{Label: "z", Op: "~"}} }),
		"negative attempts":   mod(func(s *Spec) { s.Restart.Attempts = -1 }),
		"negative delay":      mod(func(s *Spec) { s.Restart.DelayNanos = -1 }),
		"delay over max":      mod(func(s *Spec) { s.Restart = RestartPolicy{DelayNanos: 10, MaxDelayNanos: 5} }),
		"bad output pattern":  mod(func(s *Spec) { s.OutputPattern = "([" }),
		"long output pattern": mod(func(s *Spec) { s.OutputPattern = strings.Repeat("a", 8*maxNameLen+1) }),
	}
	for name, sp := range bad {
		if err := ValidateSpec(&sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		h := newHarness(t)
		if res := h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: sp}); !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("%s: Apply %v, want ErrInvalid", name, res.Err)
		}
	}
	good := map[string]Spec{
		"max count":      mod(func(s *Spec) { s.Count = MaxCount }),
		"zero count":     mod(func(s *Spec) { s.Count = 0 }),
		"name with dots": mod(func(s *Spec) { s.Name = "a.b-c_d9" }),
		"upper sha":      mod(func(s *Spec) { s.Plugin.SHA256 = strings.Repeat("AB", 32) }),
		"max name":       mod(func(s *Spec) { s.Name = strings.Repeat("a", maxNameLen) }),
		"pattern":        mod(func(s *Spec) { s.OutputPattern = `^\d+$` }),
	}
	for name, sp := range good {
		if err := ValidateSpec(&sp); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
