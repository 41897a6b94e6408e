package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

// FloorNodeCommand is the hidden icebench subcommand that runs one node of
// the floor (FloorNodeMain).
const FloorNodeCommand = "floor-node"

// floorLogCacheSize is the Raft log cache in front of raft-boltdb, the size
// ICE's servers use (cluster/raft.go), so that the leader does not read
// every entry back from bolt to replicate it.
const floorLogCacheSize = 128

// floorMaxBody bounds a PUT /apply body.
const floorMaxBody = 1 << 20

// FloorPeer is one member of the floor cluster as its nodes are told:
// id=raftaddr=httpaddr on the command line.
type FloorPeer struct {
	ID, Raft, HTTP string
}

func (p FloorPeer) String() string { return p.ID + "=" + p.Raft + "=" + p.HTTP }

// ParseFloorPeers parses a comma-separated list of id=raftaddr=httpaddr.
func ParseFloorPeers(s string) ([]FloorPeer, error) {
	var out []FloorPeer
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		parts := strings.Split(f, "=")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("parse floor peer %q: want id=raftaddr=httpaddr", f)
		}
		out = append(out, FloorPeer{ID: parts[0], Raft: parts[1], HTTP: parts[2]})
	}
	if len(out) == 0 {
		return nil, errors.New("parse floor peers: none given")
	}
	return out, nil
}

// floorNode is one running node: Raft with a counter FSM and its HTTP
// front.
type floorNode struct {
	id    string
	raft  *raft.Raft
	peers map[raft.ServerID]FloorPeer
	// scheme is "https" or "http", for the redirect to the leader.
	scheme string
}

// FloorStatus is GET /status of a floor node.
type FloorStatus struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Leader string `json:"leader"`
}

// ServeHTTP serves PUT /apply (the workload: the body becomes one Raft
// entry, answered once applied on the leader; a follower answers 307 to
// the leader's /apply) and GET /status (for the benchmark's wait for a
// leader).
func (n *floorNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/apply" && r.Method == http.MethodPut:
		n.apply(w, r)
	case r.URL.Path == "/status" && r.Method == http.MethodGet:
		_, id := n.raft.LeaderWithID()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(FloorStatus{ID: n.id, State: n.raft.State().String(), Leader: string(id)})
	default:
		http.Error(w, "floor node: only PUT /apply and GET /status", http.StatusNotFound)
	}
}

func (n *floorNode) apply(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, floorMaxBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
		return
	}
	f := n.raft.Apply(body, 10*time.Second)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			_, id := n.raft.LeaderWithID()
			if p, ok := n.peers[id]; ok {
				w.Header().Set("Location", n.scheme+"://"+p.HTTP+"/apply")
				w.WriteHeader(http.StatusTemporaryRedirect)
				return
			}
			http.Error(w, "not the leader, and no leader known", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, fmt.Sprintf("raft apply: %v", err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(strconv.AppendUint(nil, f.Index(), 10))
}

// FloorNodeMain runs `icebench floor-node`: one hashicorp/raft node with
// raft-boltdb/v2 (NoFreelistSync, as ICE opens it) and a log cache of
// ICE's size, the library's default Raft configuration, a counter FSM,
// Raft over mutual TLS with cluster.NewTLSTransport (ICE's transport) and
// an HTTPS front with the same kind of server certificate ICE's API uses
// (or plain TCP and HTTP with --insecure). It serves until SIGTERM or
// SIGINT and returns the exit code.
func FloorNodeMain(args []string) int {
	if err := floorNodeRun(args); err != nil {
		fmt.Fprintf(os.Stderr, "icebench floor-node: %v\n", err)
		return 1
	}
	return 0
}

type floorFlags struct {
	id, raftAddr, httpAddr, dir, peers string
	ca, cert, key                      string
	insecure                           bool
}

func parseFloorFlags(args []string) (*floorFlags, error) {
	f := &floorFlags{}
	fs := flag.NewFlagSet(FloorNodeCommand, flag.ContinueOnError)
	fs.StringVar(&f.id, "id", "", "node id")
	fs.StringVar(&f.raftAddr, "raft", "", "Raft address (host:port)")
	fs.StringVar(&f.httpAddr, "http", "", "HTTP(S) address of PUT /apply (host:port)")
	fs.StringVar(&f.dir, "dir", "", "data dir")
	fs.StringVar(&f.peers, "peers", "", "every member, this one included: id=raftaddr=httpaddr,...")
	fs.StringVar(&f.ca, "tls-ca", "", "CA certificate")
	fs.StringVar(&f.cert, "tls-cert", "", "server certificate")
	fs.StringVar(&f.key, "tls-key", "", "server key")
	fs.BoolVar(&f.insecure, "insecure", false, "plain TCP Raft and plain HTTP")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	if f.id == "" || f.raftAddr == "" || f.httpAddr == "" || f.dir == "" || f.peers == "" {
		return nil, errors.New("--id, --raft, --http, --dir and --peers are required")
	}
	if !f.insecure && (f.ca == "" || f.cert == "" || f.key == "") {
		return nil, errors.New("--tls-ca, --tls-cert and --tls-key are required unless --insecure")
	}
	return f, nil
}

func floorNodeRun(args []string) error {
	f, err := parseFloorFlags(args)
	if err != nil {
		return err
	}
	peers, err := ParseFloorPeers(f.peers)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "floor-" + f.id, Level: hclog.Warn, Output: os.Stderr})
	var store *tlsutil.Store
	if !f.insecure {
		if store, err = tlsutil.NewStore(tlsutil.Config{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key}); err != nil {
			return fmt.Errorf("load TLS material: %w", err)
		}
	}
	r, closeStores, err := startFloorRaft(f, peers, store, logger)
	if err != nil {
		return err
	}
	defer closeStores()
	n := &floorNode{id: f.id, raft: r, peers: map[raft.ServerID]FloorPeer{}, scheme: "http"}
	for _, p := range peers {
		n.peers[raft.ServerID(p.ID)] = p
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen http on %s: %w", f.httpAddr, err)
	}
	srv := &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger.StandardLogger(&hclog.StandardLoggerOptions{})}
	if store != nil {
		// ICE's API configuration: TLS 1.3, HTTP/1.1 (no NextProtos).
		srv.TLSConfig = store.ServerTLSConfig(false)
		n.scheme = "https"
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", f.httpAddr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if err := r.Shutdown().Error(); err != nil {
		return fmt.Errorf("raft shutdown: %w", err)
	}
	return nil
}

// startFloorRaft opens the stores and transport and starts Raft,
// bootstrapping it with every peer (each node does, with the same
// configuration, which hashicorp/raft allows). The returned func closes
// the stores.
func startFloorRaft(f *floorFlags, peers []FloorPeer, store *tlsutil.Store, logger hclog.Logger) (*raft.Raft, func(), error) {
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("create data dir %s: %w", f.dir, err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(f.dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open boltdb: %w", err)
	}
	cache, err := raft.NewLogCache(floorLogCacheSize, bolt)
	if err != nil {
		_ = bolt.Close()
		return nil, nil, fmt.Errorf("open log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(f.dir, 1, io.Discard)
	if err != nil {
		_ = bolt.Close()
		return nil, nil, fmt.Errorf("open snapshot store: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", f.raftAddr)
	if err != nil {
		_ = bolt.Close()
		return nil, nil, fmt.Errorf("resolve raft address %s: %w", f.raftAddr, err)
	}
	var tr *raft.NetworkTransport
	if store != nil {
		tr, err = cluster.NewTLSTransport(f.raftAddr, addr, store, 2, 10*time.Second, logger.Named("transport"))
	} else {
		tr, err = raft.NewTCPTransportWithLogger(f.raftAddr, addr, 2, 10*time.Second, logger.Named("transport"))
	}
	if err != nil {
		_ = bolt.Close()
		return nil, nil, fmt.Errorf("listen raft on %s: %w", f.raftAddr, err)
	}
	closeAll := func() { _ = tr.Close(); _ = bolt.Close() }
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(f.id)
	cfg.Logger = logger.Named("raft")
	r, err := raft.NewRaft(cfg, &counterFSM{}, cache, bolt, snaps, tr)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("start raft: %w", err)
	}
	var servers []raft.Server
	for _, p := range peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft)})
	}
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		_ = r.Shutdown().Error()
		closeAll()
		return nil, nil, fmt.Errorf("bootstrap raft: %w", err)
	}
	return r, closeAll, nil
}
