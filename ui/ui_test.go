package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

var outsideURL = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`)

// TestUIPagesRender renders every page and checks its DOM contract's
// anchors are there and that it refers to nothing outside this server.
func TestUIPagesRender(t *testing.T) {
	h := Handler()
	want := map[string][]string{
		"/ui/login":             {`id="token" name="token" type="password"`, `id="signin"`},
		"/ui/cluster":           {`id="leader"`, `id="secure"`, `id="servers"`, `id="digests"`},
		"/ui/nodes":             {`id="nodes"`},
		"/ui/components":        {`id="components"`, `id="deploy-spec"`, `id="deploy"`, `<template id="deploy-template">`},
		"/ui/runs/abc-1":        {`id="timeline"`, `id="grants"`, `id="memory"`, `<code>abc-1</code>`},
		"/ui/events":            {`id="events"`, `id="filter-component"`, `id="chain-head"`, `id="chain-status"`},
		"/ui/grants":            {`id="grants"`},
		"/ui/memory":            {`id="memory"`},
		"/ui/components/ticker": {`<code>ticker</code>`, `id="component-status"`},
		"/ui/memory/fact/k-1":   {`<code>fact/k-1</code>`, `id="versions"`},
	}
	nav := []string{`id="nav-cluster"`, `id="nav-nodes"`, `id="nav-components"`, `id="nav-events"`, `id="nav-grants"`, `id="nav-memory"`, `id="signout"`}
	for path, anchors := range want {
		res := get(t, h, path)
		b, _ := io.ReadAll(res.Body)
		body := string(b)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: content type %q", path, ct)
		}
		if path != "/ui/login" {
			anchors = append(anchors, nav...)
		}
		for _, a := range anchors {
			if !strings.Contains(body, a) {
				t.Errorf("GET %s: no %s in\n%s", path, a, body)
			}
		}
		if m := outsideURL.FindString(body); m != "" {
			t.Errorf("GET %s refers to an outside URL %q", path, m)
		}
		for _, must := range []string{`<link rel="icon" href="data:,">`, `src="/ui/static/ice.js"`, `href="/ui/static/ice.css"`, `class="error"`} {
			if !strings.Contains(body, must) {
				t.Errorf("GET %s: no %s", path, must)
			}
		}
	}
}

func TestUIStaticFiles(t *testing.T) {
	h := Handler()
	files := map[string]string{
		"/ui/static/ice.js":  "text/javascript; charset=utf-8",
		"/ui/static/ice.css": "text/css; charset=utf-8",
	}
	// Every page loads its own script and styles after the shared ones.
	for _, p := range Pages {
		files["/ui/static/"+p.Name+".js"] = "text/javascript; charset=utf-8"
		files["/ui/static/"+p.Name+".css"] = "text/css; charset=utf-8"
	}
	for path, ct := range files {
		res := get(t, h, path)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ct || len(b) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, res.StatusCode, res.Header.Get("Content-Type"), len(b), ct)
		}
		if m := outsideURL.FindString(string(b)); m != "" {
			t.Errorf("GET %s refers to an outside URL %q", path, m)
		}
	}
	for path, code := range map[string]int{
		"/ui/static/nope.js": 404,
		"/ui/nope":           404,
		"/ui/favicon.ico":    204,
	} {
		if res := get(t, h, path); res.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, code)
		}
	}
	if res := get(t, h, "/ui/static/../ui.go"); res.StatusCode == 200 {
		t.Errorf("GET /ui/static/../ui.go: 200, want no file outside static")
	}
	if res := get(t, h, "/ui/"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/cluster" {
		t.Errorf("GET /ui/: %d %q, want a redirect to /ui/cluster", res.StatusCode, res.Header.Get("Location"))
	}
}
