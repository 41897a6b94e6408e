// Package ui is the operator web UI that every ICE server serves at /ui/ on
// its API listener: server-rendered pages (html/template) with a little
// plain JavaScript that reads the HTTP API with the token the operator
// signed in with (sessionStorage "ice-token", sent as X-Ice-Token). The UI
// holds no authority of its own: what the token may not read or do, the API
// refuses, and the page shows the API's error.
//
// Everything is embedded in the binary: no build step, no outside URL.
package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is one page of the UI.
type Page struct {
	// Name is the page's path under /ui/ and its template's name.
	Name string
	// Title is the page's heading.
	Title string
	// Nav is the nav link the page highlights ("" on the login page).
	Nav string
}

// Pages are the UI's pages, in nav order (login and run have no nav link
// of their own).
var Pages = []Page{
	{Name: "login", Title: "Sign in"},
	{Name: "cluster", Title: "Cluster", Nav: "cluster"},
	{Name: "nodes", Title: "Nodes", Nav: "nodes"},
	{Name: "components", Title: "Components", Nav: "components"},
	{Name: "component", Title: "Component", Nav: "components"},
	{Name: "run", Title: "Run", Nav: "components"},
	{Name: "events", Title: "Events", Nav: "events"},
	{Name: "grants", Title: "Grants", Nav: "grants"},
	{Name: "memory", Title: "Memory", Nav: "memory"},
	{Name: "record", Title: "Memory record", Nav: "memory"},
}

// detailPages are the pages of one thing, named by the path's rest:
// /ui/components/{name}, /ui/runs/{id}, /ui/memory/{type}/{key}.
var detailPages = map[string]string{
	"GET /ui/components/{arg}":    "component",
	"GET /ui/runs/{arg}":          "run",
	"GET /ui/memory/{type}/{key}": "record",
}

// navLinks are the nav's links: id suffix, label.
var navLinks = [][2]string{
	{"cluster", "Cluster"}, {"nodes", "Nodes"}, {"components", "Components"},
	{"events", "Events"}, {"grants", "Grants"}, {"memory", "Memory"},
}

type pageData struct {
	Page
	// Arg is the path argument of a detail page (the run id of
	// /ui/runs/{id}, TYPE/KEY of /ui/memory/{type}/{key}).
	Arg  string
	Nav  [][2]string
	Self string
}

// Handler serves the UI under /ui/. Mount it at "GET /ui/".
func Handler() http.Handler {
	h := &handler{pages: map[string]*template.Template{}, started: time.Now()}
	for _, p := range Pages {
		h.pages[p.Name] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+p.Name+".html"))
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	h.static = static
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/cluster", http.StatusFound)
	})
	mux.HandleFunc("GET /ui/favicon.ico", h.favicon)
	mux.HandleFunc("GET /ui/static/{file}", h.serveStatic)
	for pattern, name := range detailPages {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			arg := r.PathValue("arg")
			if name == "record" {
				arg = r.PathValue("type") + "/" + r.PathValue("key")
			}
			h.render(w, name, arg)
		})
	}
	for _, p := range Pages {
		if isDetail(p.Name) {
			continue
		}
		name := p.Name
		mux.HandleFunc("GET /ui/"+name, func(w http.ResponseWriter, r *http.Request) { h.render(w, name, "") })
	}
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("no UI page %s %s", r.Method, r.URL.Path), http.StatusNotFound)
	})
	return mux
}

func isDetail(name string) bool {
	for _, n := range detailPages {
		if n == name {
			return true
		}
	}
	return false
}

type handler struct {
	pages   map[string]*template.Template
	static  fs.FS
	started time.Time
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	// Everything comes from this server; nothing may be framed.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (h *handler) render(w http.ResponseWriter, name, arg string) {
	p := Page{}
	for _, q := range Pages {
		if q.Name == name {
			p = q
		}
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", pageData{Page: p, Arg: arg, Nav: navLinks, Self: name}); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// contentTypes are the static files' types, set explicitly (the system's
// MIME table may lack them).
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	ct, ok := contentTypes[path.Ext(file)]
	if !ok || strings.Contains(file, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(h.static, file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, file, h.started, bytes.NewReader(b))
}

// favicon answers a browser that asks for /ui/favicon.ico anyway (the
// pages declare an empty icon, so none should): no content, no 404.
func (h *handler) favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}
