package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Limits of blocking queries and leader waits.
const (
	// MaxWait caps ?wait= of a blocking query.
	MaxWait = 5 * time.Minute
	// DefaultWait is the wait of a blocking query without ?wait=.
	DefaultWait = 5 * time.Minute
	// leaderWait is how long a request waits for an election to finish
	// before it is refused with 503.
	leaderWait = 5 * time.Second
)

// Server serves the HTTP API of one ICE server.
type Server struct {
	b        Backend
	opts     Options
	logger   hclog.Logger
	mux      *http.ServeMux
	proxyMu  sync.Mutex
	proxies  map[string]*httputil.ReverseProxy
	policies policyCache
	lim      *limits
	// streamFwd carries forwarded writes to the leader over write
	// streams; streams bounds the write streams clients hold open here.
	streamFwd *api.StreamTransport
	streams   chan struct{}
	// closing is closed by Close: write streams say goaway.
	closing   chan struct{}
	closeOnce sync.Once
}

// Options are the security settings of the API.
type Options struct {
	// ACLs makes every request prove its authority: a token for operator
	// and ACL requests, an agent certificate or node token for agent ones.
	ACLs bool
	// ForwardTLS, when set, is the client TLS configuration (the server's
	// own certificate) for forwarding requests to the leader over HTTPS.
	ForwardTLS *tls.Config
	// TLS, when set, is the server's certificate store: the run log proxy
	// calls agents' log listeners with it (run_log.go). nil: plain HTTP.
	TLS *tlsutil.Store
	// Secure is reported by /v1/status: TLS, gossip encryption and ACLs on.
	Secure bool
	// BodyTimeout bounds how long a request body may take to arrive
	// (0: DefaultBodyTimeout). See limits.go.
	BodyTimeout time.Duration
	// MaxInflight caps ordinary requests handled at once; past it the
	// server answers 429 with Retry-After (0: DefaultMaxInflight).
	MaxInflight int
	// MaxBlocking caps blocking queries and event follows held at once;
	// past it the server answers 429 with Retry-After (0: DefaultMaxBlocking).
	MaxBlocking int
	// MaxStreams caps write streams held open at once (0:
	// DefaultMaxStreams); past it clients send plain requests.
	MaxStreams int
}

// NewServer returns the API handler for b. metricsHandler serves /metrics.
// Without options it runs with ACLs off (trusted networks and tests).
func NewServer(b Backend, metricsHandler http.Handler, logger hclog.Logger, opts ...Options) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{b: b, logger: logger, mux: http.NewServeMux(), proxies: map[string]*httputil.ReverseProxy{}, closing: make(chan struct{})}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	s.lim = newLimits(s.opts)
	maxStreams := s.opts.MaxStreams
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	s.streams = make(chan struct{}, maxStreams)
	s.streamFwd = api.NewStreamTransport(forwardTransport(s.opts.ForwardTLS))
	s.mux.HandleFunc("POST "+api.StreamPath, s.serveStream)
	s.handle("GET /v1/status", s.getStatus)
	s.handle("GET /v1/nodes", s.read(s.getNodes))
	s.handle("PUT /v1/nodes/{id}/drain", s.write(s.drainNode))
	s.handle("PUT /v1/nodes/{id}/eligibility", s.write(s.nodeEligibility))
	s.handle("GET /v1/components", s.read(s.getComponents))
	s.handle("GET /v1/components/{name}", s.read(s.getComponent))
	s.handle("PUT /v1/components/{name}", s.write(s.putComponent))
	s.handle("DELETE /v1/components/{name}", s.write(s.deleteComponent))
	s.handle("GET /v1/runs", s.read(s.getRuns))
	s.handle("GET /v1/runs/{id}", s.read(s.getRun))
	s.handle("GET /v1/events", s.getEvents)
	s.handle("GET /v1/operator/raft/peers", s.getPeers)
	s.handle("DELETE /v1/operator/raft/peers/{id}", s.write(s.removePeer))
	s.handle("POST /v1/operator/raft/transfer-leader", s.write(s.transferLeader))
	s.handle("POST /v1/operator/raft/check", s.write(s.checkCorruption))
	s.handle("GET /v1/operator/snapshot", s.getSnapshot)
	s.handle("PUT /v1/operator/snapshot", s.putSnapshot)
	s.handle("POST /v1/agent/register", s.write(s.agentRegister))
	s.handle("POST /v1/agent/heartbeat", s.write(s.agentHeartbeat))
	s.handle("POST /v1/agent/transitions", s.write(s.agentReport))
	s.handle("POST /v1/agent/leave", s.write(s.agentLeave))
	s.routeACL()
	s.routeKeyring()
	s.routeArchive()
	s.routeGrants()
	s.routeMemory()
	s.routeAgentMemory()
	s.routeUI()
	s.routeRunLog()
	s.routeNodeLeases()
	s.routeComponentHCL()
	if metricsHandler != nil {
		s.mux.Handle("GET /metrics", metricsHandler)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

// Close ends the server's write streams, both those clients opened here
// (each answers what it read and says goaway) and this server's own to the
// leader. Call it as the HTTP server shuts down (http.Server.RegisterOnShutdown):
// Shutdown waits for open streams.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.streamFwd.Close()
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(api.HeaderServer, s.b.ID())
	if c := s.b.Corruption(); c != nil && r.URL.Path != "/v1/status" && r.URL.Path != "/metrics" {
		// A halted server serves no state and takes no writes: its state
		// may lack an entry its peers applied.
		err := fmt.Errorf("server %s is halted: log entry %d is damaged (%s): %w", s.b.ID(), c.Index, c.Reason, fsm.ErrCorrupt)
		if c.Alarm {
			err = fmt.Errorf("server %s is halted: %s: %w", s.b.ID(), c.Reason, fsm.ErrCorrupt)
		}
		if r.URL.Path == api.StreamPath {
			refuseStream(w, http.StatusServiceUnavailable, err)
			return
		}
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.mux.ServeHTTP(w, r)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		release, admitted := s.lim.admit(w, r)
		if !admitted {
			metrics.IncrCounterWithLabels([]string{"ice", "http", "refused"}, 1, []metrics.Label{{Name: "route", Value: pattern}})
			return
		}
		defer release()
		if r.URL.Query().Has("pretty") {
			w = prettyWriter{w}
		}
		err := h(w, r)
		code := http.StatusOK
		if err != nil {
			code = statusFor(err)
			writeError(w, code, err)
			switch {
			case code >= 500:
				s.logger.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
			case code == http.StatusForbidden:
				s.logger.Info("request denied", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
			}
		}
		metrics.MeasureSinceWithLabels([]string{"ice", "http", "request"}, start, []metrics.Label{
			{Name: "route", Value: pattern}, {Name: "code", Value: strconv.Itoa(code / 100 * 100)},
		})
	})
}

// prettyWriter marks a response to be indented: the request asked with
// ?pretty (as Consul's and Nomad's APIs do). Responses are compact
// otherwise: indenting a list of 100,000 runs doubled the work and the
// memory of encoding it.
type prettyWriter struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the writer's other abilities.
func (p prettyWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// Flush forwards to the wrapped writer (event streams flush per event).
func (p prettyWriter) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, pretty := w.(prettyWriter)
	if rv := reflect.ValueOf(v); !pretty && rv.Kind() == reflect.Slice && rv.Len() > streamListMin {
		writeJSONList(w, rv)
		return
	}
	enc := json.NewEncoder(w)
	if pretty {
		enc.SetIndent("", "  ")
	}
	// Event payloads are hashed as stored; keep them byte for byte.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// streamListMin is the length from which a list response is written one
// element at a time: a list of 100,000 runs encoded whole was a 30 MB
// buffer per response, which set the server's memory high-water mark.
const streamListMin = 256

// writeJSONList writes a JSON array one element at a time through a small
// buffer.
func writeJSONList(w http.ResponseWriter, list reflect.Value) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	_ = bw.WriteByte('[')
	for i := 0; i < list.Len(); i++ {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		if err := enc.Encode(list.Index(i).Interface()); err != nil {
			return // the client went away; the status is already sent
		}
	}
	_, _ = bw.WriteString("]\n")
	_ = bw.Flush()
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.ErrorResponse{Error: err.Error()})
}

// write wraps a handler that proposes: followers forward it to the leader,
// which identifies the request (with its own clock, the one that stamps
// commands) and hands the identity to h.
func (s *Server) write(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if forwarded, err := s.forward(w, r, true); forwarded || err != nil {
			return err
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		var id *identity
		var err error
		s.b.Read(func(st *fsm.State) { id, err = s.identify(r, st, s.b.Now()) })
		if err != nil {
			return err
		}
		return h(w, withIdentity(r, id))
	}
}

// readOpts are the query parameters every read takes.
type readOpts struct {
	stale bool
	index uint64
	wait  time.Duration
}

func parseReadOpts(r *http.Request) (readOpts, error) {
	q := r.URL.Query()
	var o readOpts
	if v := q.Get("stale"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("stale=%q: want a boolean: %w", v, fsm.ErrBadRequest)
		}
		o.stale = b
	}
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("index=%q: want a log index: %w", v, fsm.ErrBadRequest)
		}
		o.index = n
		o.wait = DefaultWait
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return o, fmt.Errorf("wait=%q: want a duration like \"30s\": %w", v, fsm.ErrBadRequest)
		}
		o.wait = min(d, MaxWait)
	}
	return o, nil
}

// readFunc reads from the state and returns the value to encode; it checks
// (or filters by) what the request's identity may read.
type readFunc func(r *http.Request, st *fsm.State, id *identity) (any, error)

// read wraps a state read with consistency and blocking-query handling:
// consistent reads are forwarded to, and served by, the leader after it
// confirmed its leadership; ?stale=1 reads the local state.
func (s *Server) read(f readFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		o, err := parseReadOpts(r)
		if err != nil {
			return err
		}
		if !o.stale {
			if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
				return err
			}
		}
		if o.index > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), o.wait)
			_, err := s.b.WaitIndex(ctx, o.index)
			cancel()
			if r.Context().Err() != nil {
				return nil // the client went away
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("blocking query: %w", err)
			}
		}
		if !o.stale {
			if err := s.b.ConsistentRead(r.Context()); err != nil {
				return fmt.Errorf("consistent read: %w", err)
			}
		}
		var out any
		var idx uint64
		s.b.Read(func(st *fsm.State) {
			idx = st.Index()
			var id *identity
			if id, err = s.identify(r, st, s.b.Now()); err == nil {
				out, err = f(r, st, id)
			}
		})
		if err != nil {
			return err
		}
		if late, ok := out.(lateResult); ok {
			if out, err = late(); err != nil {
				return err
			}
		}
		w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// lateResult is what a readFunc returns for work that must not hold the
// state's lock (reading files): the read calls it after the lock is
// released, and answers what it returns.
type lateResult func() (any, error)

// digestlessStatus is the optional capability of a backend that answers
// its status without the digest of the live state (?digest=0).
type digestlessStatus interface {
	StatusWithoutDigest() (api.Status, error)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	status := s.b.Status
	if ds, ok := s.b.(digestlessStatus); ok && r.URL.Query().Get("digest") == "0" {
		status = ds.StatusWithoutDigest
	}
	st, err := status()
	if err != nil {
		return err
	}
	st.Secure, st.ACLs = s.opts.Secure, s.opts.ACLs
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(st.AppliedIndex, 10))
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) getPeers(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireLocal(r, acl.KindOperator, acl.Read); err != nil {
		return err
	}
	st, err := s.b.Status()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st.Servers)
	return nil
}

// getNodes lists the nodes the identity may read.
func (s *Server) getNodes(r *http.Request, st *fsm.State, id *identity) (any, error) {
	return filtered(st.Nodes(), acl.KindNode, id, func(n *fsm.Node) string { return n.ID })
}

// getComponents and getComponent (memory.go) answer api.ComponentInfo.

// getRuns lists runs, of a component and of a node if asked. An agent reads
// every run of its own node; others see the runs of components they may
// read.
func (s *Server) getRuns(r *http.Request, st *fsm.State, id *identity) (any, error) {
	q := r.URL.Query()
	component, node := q.Get("component"), q.Get("node")
	// live=1 leaves out TERMINATED runs: an agent's watch needs only the
	// runs it may still act on, and a node's finished runs (kept for the
	// run retention) made every answer to it grow with them.
	live, _ := strconv.ParseBool(q.Get("live"))
	var runs []*fsm.Run
	if node != "" && live {
		// The state indexes a node's live runs: the watch of each agent
		// does not scan every run kept.
		runs = slices.DeleteFunc(st.LiveRunsOnNode(node), func(run *fsm.Run) bool {
			return component != "" && run.Component != component
		})
	} else {
		runs = st.RunsWhere(func(run *fsm.Run) bool {
			return (component == "" || run.Component == component) && (node == "" || run.Node == node) &&
				(!live || run.State != fsm.StateTerminated)
		})
	}
	if node != "" && id.requireAgent(node) == nil {
		return runs, nil
	}
	return filtered(runs, acl.KindComponent, id, func(r *fsm.Run) string { return r.Component })
}

func (s *Server) getRun(r *http.Request, st *fsm.State, id *identity) (any, error) {
	runID := r.PathValue("id")
	run, ok := st.Run(runID)
	if !ok {
		return nil, fmt.Errorf("run %q: %w", runID, fsm.ErrNotFound)
	}
	if err := id.require(acl.KindComponent, run.Component, acl.Read); err != nil {
		return nil, err
	}
	return run, nil
}

// filtered keeps the items the identity may read; it refuses a request whose
// token may read none of the kind at all, so that a missing permission is a
// 403 rather than an empty list.
func filtered[T any](items []T, kind acl.Kind, id *identity, name func(T) string) ([]T, error) {
	if !id.acls {
		return items, nil
	}
	if !id.authz.AllowsAny(kind, acl.Read) {
		return nil, id.require(kind, "", acl.Read)
	}
	out := items[:0:0]
	for _, it := range items {
		if id.authz.Allows(kind, name(it), acl.Read) {
			out = append(out, it)
		}
	}
	return out, nil
}

// requireLocal identifies the request against this server's state and
// requires want on a single-resource kind (operator, acl).
func (s *Server) requireLocal(r *http.Request, kind acl.Kind, want acl.Level) error {
	var err error
	s.b.Read(func(st *fsm.State) {
		var id *identity
		if id, err = s.identify(r, st, s.b.Now()); err == nil {
			err = id.require(kind, "", want)
		}
	})
	return err
}

func parseCAS(r *http.Request) (*uint64, error) {
	v := r.URL.Query().Get("cas")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("cas=%q: want a generation number: %w", v, fsm.ErrBadRequest)
	}
	return &n, nil
}

// decodeBody reads the whole body and decodes it strictly into v (unknown
// fields and trailing data are refused). A type that decodes itself
// strictly (its UnmarshalJSON) gets the bytes directly, without a
// json.Decoder scanning them first: that scan was a twentieth of a busy
// leader's CPU.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("body over %d bytes: %w", MaxBodyBytes, fsm.ErrTooLarge)
		}
		return fmt.Errorf("decode JSON body: %v: %w", err, fsm.ErrBadRequest)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return fmt.Errorf("empty body, want a JSON component spec: %w", fsm.ErrBadRequest)
	}
	if u, ok := v.(json.Unmarshaler); ok {
		if err := u.UnmarshalJSON(b); err != nil {
			return fmt.Errorf("decode JSON body: %v: %w", err, fsm.ErrBadRequest)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON body: %v: %w", err, fsm.ErrBadRequest)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode JSON body: trailing data after the spec: %w", fsm.ErrBadRequest)
	}
	return nil
}

func (s *Server) putComponent(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	cas, err := parseCAS(r)
	if err != nil {
		return err
	}
	var spec api.ComponentSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	fs, err := spec.ToFSM(name)
	if err != nil {
		return fmt.Errorf("component %q: %w", name, err)
	}
	id := identityOf(r)
	if err := id.require(acl.KindComponent, name, acl.Write); err != nil {
		return err
	}
	if err := requireCapabilities(id, &fs); err != nil {
		return err
	}
	h, err := id.operatorHeader(r, "deploy "+name)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ComponentPutType, h, &fsm.ComponentPutRequest{Spec: fs, CAS: cas})
	if err != nil {
		return err
	}
	writeComponentResult(w, name, res)
	return nil
}

// propose applies a command on the leader and turns the state machine's
// rejection into the error.
func (s *Server) propose(r *http.Request, t fsm.MessageType, h fsm.Header, body any) (*fsm.Result, error) {
	res, err := s.b.Apply(r.Context(), t, h, body)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

func writeComponentResult(w http.ResponseWriter, name string, res *fsm.Result) {
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, api.PutComponentResponse{Name: name, Generation: res.Generation, Index: res.Index})
}

func (s *Server) deleteComponent(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	cas, err := parseCAS(r)
	if err != nil {
		return err
	}
	id := identityOf(r)
	if err := id.require(acl.KindComponent, name, acl.Write); err != nil {
		return err
	}
	h, err := id.operatorHeader(r, "stop "+name)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ComponentDeleteType, h, &fsm.ComponentDeleteRequest{Name: name, CAS: cas})
	if err != nil {
		return err
	}
	writeComponentResult(w, name, res)
	return nil
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) error {
	who := identityOf(r)
	if err := who.require(acl.KindOperator, "", acl.Write); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.b.RemovePeer(id); err != nil {
		return err
	}
	s.logger.Info("operator removed raft peer", "id", id, "by", who.principal())
	writeJSON(w, http.StatusOK, map[string]string{"removed": id})
	return nil
}

// checkCorruption runs a cross-server corruption check on the leader and
// answers its result; with async=1 it only asks for one soon (how a server
// that started asks, with its server certificate).
func (s *Server) checkCorruption(w http.ResponseWriter, r *http.Request) error {
	who := identityOf(r)
	// A server may ask directly (not through a forward, which carries the
	// forwarding server's certificate for any client).
	if who.cert.Role != tlsutil.RoleServer || r.Header.Get(api.HeaderForwarded) != "" {
		if err := who.require(acl.KindOperator, "", acl.Write); err != nil {
			return err
		}
	}
	if r.URL.Query().Get("async") != "" {
		s.b.RequestCorruptionCheck()
		writeJSON(w, http.StatusAccepted, map[string]string{"requested": "corruption check"})
		return nil
	}
	check, err := s.b.CheckCorruption(r.Context())
	if err != nil {
		return err
	}
	s.logger.Info("operator ran a corruption check", "index", check.Index, "raised", check.Raised, "by", who.principal())
	writeJSON(w, http.StatusOK, check)
	return nil
}

func (s *Server) transferLeader(w http.ResponseWriter, r *http.Request) error {
	who := identityOf(r)
	if err := who.require(acl.KindOperator, "", acl.Write); err != nil {
		return err
	}
	s.logger.Info("operator transfers leadership", "by", who.principal())
	if err := s.b.TransferLeadership(); err != nil {
		return err
	}
	id, _ := s.b.Leader()
	writeJSON(w, http.StatusOK, map[string]string{"leader": id})
	return nil
}
