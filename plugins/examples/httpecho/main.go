// Command httpecho is a long-running ICE component that serves HTTP on the
// configured port and echoes each request's path and body; its health check
// is a real HTTP request to itself.
//
// Config: port (required), host (default 127.0.0.1). With require_scope it
// serves only callers that present a valid grant token of that scope
// (ice_addr, ca_file, ice_token_file: see auth.go); /healthz stays open.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type echo struct {
	addr string
	srv  *http.Server
	req  plugins.StartRequest
}

func (e *echo) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "httpecho", Version: "1.0.0", Kind: plugins.KindService}, nil
}

func (e *echo) Start(_ context.Context, req plugins.StartRequest) error {
	port := req.Config["port"]
	if port == "" {
		return fmt.Errorf("config: port is required")
	}
	host := req.Config["host"]
	if host == "" {
		host = "127.0.0.1"
	}
	guard, err := authFromConfig(req.Config, sdk.Logger())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("listen on %s:%s: %w", host, port, err)
	}
	e.addr, e.req = ln.Addr().String(), req
	e.srv = &http.Server{Handler: newHandler(req, guard), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sdk.Logger().Error("serve http failed", "error", err)
		}
	}()
	if guard != nil {
		sdk.Logger().Info("serving http", "addr", e.addr, "require_scope", guard.scope, "check_live", guard.checkLive != nil)
	} else {
		sdk.Logger().Info("serving http", "addr", e.addr)
	}
	return nil
}

// newHandler echoes every request but /healthz; with guard, only those it
// lets through.
func newHandler(req plugins.StartRequest, guard *auth) http.Handler {
	var echo http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("X-Ice-Run", req.RunID)
		w.Header().Set("X-Ice-Epoch", fmt.Sprint(req.Epoch))
		fmt.Fprintf(w, "%s %s\n%s", r.Method, r.URL.Path, body)
	})
	if guard != nil {
		echo = guard.wrap(echo)
	}
	mux := http.NewServeMux()
	mux.Handle("/", echo)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func (e *echo) Health(ctx context.Context) (plugins.Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.addr+"/healthz", nil)
	if err != nil {
		return plugins.Health{Message: err.Error()}, nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return plugins.Health{Message: err.Error()}, nil
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return plugins.Health{Message: "healthz: " + resp.Status}, nil
	}
	return plugins.Health{Healthy: true}, nil
}

func (e *echo) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }

func (e *echo) Stop(ctx context.Context, deadline time.Time) error {
	if e.srv == nil {
		return nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return e.srv.Shutdown(ctx)
}

func main() { sdk.Serve(&echo{}) }
