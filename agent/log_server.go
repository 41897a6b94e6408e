package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/tlsutil"
)

// The agent's log listener serves the plugin logs of its runs
// (<data dir>/runs/<run id>.log) to the cluster's servers, which proxy them
// to clients (GET /v1/runs/{id}/log, rpc/run_log.go), as Nomad's clients
// serve `alloc logs`. With TLS it takes only clients that present a server
// certificate of this cluster (Config.LogTLS, made by LogServerTLS); ACLs
// are the server's to check. See docs/run-logs.md.

// LogRoute is the route of the agent's log listener.
const LogRoute = "GET /v1/agent/runs/{id}/log"

// logShutdownGrace bounds how long the listener waits for answers being
// sent when the agent stops.
const logShutdownGrace = 2 * time.Second

// maxRunIDLen bounds a run id the listener accepts (run ids are 36).
const maxRunIDLen = 128

// LogServerTLS is the TLS configuration of an agent's log listener: the
// agent's own certificate, and client certificates required, verified
// against the cluster's CAs and of the server role only.
func LogServerTLS(store *tlsutil.Store) *tls.Config {
	return store.ServerTLSConfig(true, tlsutil.VerifyRole(tlsutil.RoleServer))
}

// listenLogs opens the log listener of cfg.LogAddr ("": none) and sets
// cfg.LogAddr to the address it listens on, which gossip advertises.
func listenLogs(cfg *Config) (net.Listener, error) {
	if cfg.LogAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.LogAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for run logs on %s: %w", cfg.LogAddr, err)
	}
	cfg.LogAddr = ln.Addr().String()
	return ln, nil
}

// serveLogs serves the log listener, if there is one, until the agent
// stops; both its goroutines are tracked.
func (a *Agent) serveLogs() {
	ln := a.logLn
	if ln == nil {
		return
	}
	logger := a.logger.Named("logs")
	srv := &http.Server{
		Handler:           newLogHandler(filepath.Join(a.cfg.DataDir, "runs"), a.cfg.NodeID, a.cfg.LogTLS != nil, logger),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		TLSConfig:         a.cfg.LogTLS,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true, ForceLevel: hclog.Info}),
	}
	logger.Info("serving run logs", "addr", ln.Addr().String(), "mutual_tls", srv.TLSConfig != nil)
	a.tasks.Go(func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("run log listener failed", "addr", ln.Addr().String(), "error", err)
		}
	})
	a.tasks.Go(func() {
		<-a.ctx.Done()
		ctx, cancel := context.WithTimeout(context.Background(), logShutdownGrace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	})
}

// logHandler answers LogRoute from the files of dir.
type logHandler struct {
	dir    string
	node   string
	mtls   bool // the listener is TLS: check the client is a server
	logger hclog.Logger
	mux    *http.ServeMux
}

func newLogHandler(dir, node string, mtls bool, logger hclog.Logger) *logHandler {
	h := &logHandler{dir: dir, node: node, mtls: mtls, logger: logger, mux: http.NewServeMux()}
	h.mux.HandleFunc(LogRoute, h.serveLog)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		logError(w, http.StatusNotFound, fmt.Errorf("no route for %s %s on the agent's log listener (only %s)", r.Method, r.URL.Path, LogRoute))
	})
	return h
}

func (h *logHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *logHandler) serveLog(w http.ResponseWriter, r *http.Request) {
	code := h.answer(w, r)
	metrics.IncrCounterWithLabels([]string{"ice", "agent", "log", "request"}, 1, []metrics.Label{{Name: "code", Value: strconv.Itoa(code)}})
}

// answer writes the answer and returns its status code.
func (h *logHandler) answer(w http.ResponseWriter, r *http.Request) int {
	if h.mtls {
		// The TLS configuration already refused other clients; this holds
		// should the listener ever be set up without it.
		peer, err := tlsutil.PeerIdentity(r.TLS)
		if err != nil || peer.Role != tlsutil.RoleServer {
			h.logger.Warn("refused a run log request", "remote", r.RemoteAddr, "peer", peer.String(), "error", err)
			return logError(w, http.StatusForbidden, fmt.Errorf("run logs are served to the cluster's servers only; the client is %s", peer))
		}
	}
	id := r.PathValue("id")
	if err := checkRunID(id); err != nil {
		return logError(w, http.StatusBadRequest, err)
	}
	lr, err := parseLogRange(r.URL.Query())
	if err != nil {
		return logError(w, http.StatusBadRequest, err)
	}
	f, err := os.Open(filepath.Join(h.dir, id+".log"))
	if errors.Is(err, fs.ErrNotExist) {
		return logError(w, http.StatusNotFound, fmt.Errorf("run %s has no log on node %s", id, h.node))
	}
	if err != nil {
		h.logger.Error("open run log", "run", id, "error", err)
		return logError(w, http.StatusInternalServerError, fmt.Errorf("open the log of run %s on node %s: %w", id, h.node, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return logError(w, http.StatusInternalServerError, fmt.Errorf("stat the log of run %s on node %s: %w", id, h.node, err))
	}
	start, n := logWindow(lr, st.Size())
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set(api.HeaderLogSize, strconv.FormatInt(st.Size(), 10))
	hd.Set(api.HeaderLogOffset, strconv.FormatInt(start, 10))
	hd.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, io.NewSectionReader(f, start, n)); err != nil {
		h.logger.Debug("send run log", "run", id, "error", err)
	}
	return http.StatusOK
}

// checkRunID accepts a plain run id: 1 to 128 letters, digits, '-' and
// '_', starting with a letter or digit. No '/', '.' or '\': a request
// names a file of the runs directory and nothing else.
func checkRunID(id string) error {
	if id == "" || len(id) > maxRunIDLen {
		return fmt.Errorf("run id %.40q: want 1 to %d characters", id, maxRunIDLen)
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '-' || c == '_')) {
			continue
		}
		return fmt.Errorf("run id %.40q: character %q at %d is not allowed in a run id", id, c, i)
	}
	return nil
}

// parseLogRange reads ?offset, ?limit and ?tail (bytes; tail excludes the
// other two). Limit and tail are at most api.MaxLogChunk.
func parseLogRange(q url.Values) (api.LogRange, error) {
	var lr api.LogRange
	for _, p := range []struct {
		name string
		v    *int64
		max  int64
	}{{"offset", &lr.Offset, -1}, {"limit", &lr.Limit, api.MaxLogChunk}, {"tail", &lr.Tail, api.MaxLogChunk}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || (p.max > 0 && n > p.max) {
			if p.max > 0 {
				return lr, fmt.Errorf("%s=%q: want a number of bytes from 0 to %d", p.name, s, p.max)
			}
			return lr, fmt.Errorf("%s=%q: want a number of bytes, 0 or more", p.name, s)
		}
		*p.v = n
	}
	if lr.Tail > 0 && (q.Has("offset") || q.Has("limit")) {
		return lr, errors.New("tail= reads the end of the log: give it alone, or offset= and limit=")
	}
	return lr, nil
}

// logWindow returns where lr starts in a log of size bytes and how many
// bytes of it it holds: the last Tail bytes, or Limit (default
// api.DefaultLogChunk) from Offset; an offset past the end holds none.
func logWindow(lr api.LogRange, size int64) (start, n int64) {
	if lr.Tail > 0 {
		start = max(0, size-lr.Tail)
		return start, size - start
	}
	limit := lr.Limit
	if limit <= 0 {
		limit = api.DefaultLogChunk
	}
	start = min(lr.Offset, size)
	return start, min(limit, size-start)
}

// logError writes a JSON error answer, as the servers' API does, and
// returns its status code.
func logError(w http.ResponseWriter, code int, err error) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.ErrorResponse{Error: err.Error()})
	return code
}
