package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/internal/tlsutil"
)

// defaultHandshakeTimeout bounds a Raft TLS handshake, each way, when the
// caller gives no timeout.
const defaultHandshakeTimeout = 10 * time.Second

// maxPendingHandshakes bounds the inbound handshakes in progress; a
// connection beyond it is closed at once, so that clients that never finish
// their handshake cannot hold the listener's memory or starve real peers.
const maxPendingHandshakes = 64

// TLSStreamLayer is a hashicorp/raft StreamLayer over mutual TLS. Its
// listener requires a client certificate that chains to a CA the Store
// trusts and names a server of the Store's cluster; its Dial presents the
// Store's certificate and accepts only a server of the same cluster. A
// connection is handed to Raft only after its handshake succeeded, within
// a deadline: a plaintext client, an agent or CLI certificate, or a
// certificate of another CA is refused (and logged) before Raft reads a
// byte. Handshakes run concurrently, apart from Accept, so a slow client
// delays no one else. Material reloaded in the Store applies to the next
// connection.
type TLSStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	serverCfg *tls.Config
	clientCfg *tls.Config
	logger    hclog.Logger
	// handshakeTimeout bounds inbound handshakes (Dial uses its timeout).
	handshakeTimeout time.Duration

	conns   chan net.Conn // handshaken connections for Accept
	pending chan struct{} // one token per handshake in progress
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	refused atomic.Uint64
}

// NewTLSStreamLayer listens on bindAddr (host:port) for Raft over mutual
// TLS with store's material, which must be a server certificate.
// advertise is the address peers dial (default: the listener's); it must
// be a TCP address with a specified IP, as for raft.NewTCPTransport.
func NewTLSStreamLayer(bindAddr string, advertise net.Addr, store *tlsutil.Store, logger hclog.Logger) (*TLSStreamLayer, error) {
	return newTLSStreamLayer(bindAddr, advertise, store, logger, defaultHandshakeTimeout)
}

func newTLSStreamLayer(bindAddr string, advertise net.Addr, store *tlsutil.Store, logger hclog.Logger, handshakeTimeout time.Duration) (*TLSStreamLayer, error) {
	if store == nil {
		return nil, errors.New("raft TLS: no TLS material")
	}
	if id := store.Identity(); id.Role != tlsutil.RoleServer {
		return nil, fmt.Errorf("raft TLS: the certificate names %s; Raft needs a server certificate", id)
	}
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "raft-tls"})
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: listen on %s: %w", bindAddr, err)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if addr, ok := advertise.(*net.TCPAddr); !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raft TLS: address %v is not advertisable: give a TCP address with a specified IP", advertise)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &TLSStreamLayer{
		ln:               ln,
		advertise:        advertise,
		serverCfg:        store.ServerTLSConfig(true, tlsutil.VerifyRole(tlsutil.RoleServer)),
		clientCfg:        store.ClientTLSConfig(""),
		logger:           logger,
		handshakeTimeout: handshakeTimeout,
		conns:            make(chan net.Conn),
		pending:          make(chan struct{}, maxPendingHandshakes),
		ctx:              ctx,
		cancel:           cancel,
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// NewTLSTransport is raft.NewTCPTransportWithLogger over mutual TLS: a
// NetworkTransport on a TLSStreamLayer (see NewTLSStreamLayer for the
// arguments; maxPool and timeout are the NetworkTransport's).
func NewTLSTransport(bindAddr string, advertise net.Addr, store *tlsutil.Store, maxPool int, timeout time.Duration, logger hclog.Logger) (*raft.NetworkTransport, error) {
	stream, err := NewTLSStreamLayer(bindAddr, advertise, store, logger)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: maxPool,
		Timeout: timeout,
		Logger:  logger,
	}), nil
}

// Accept returns the next inbound connection whose handshake succeeded.
func (s *TLSStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops listening, aborts handshakes in progress and waits for the
// goroutines that ran them. Connections already accepted stay open.
func (s *TLSStreamLayer) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("raft TLS: close listener: %w", err)
	}
	return nil
}

// Addr is the advertised address.
func (s *TLSStreamLayer) Addr() net.Addr { return s.advertise }

// Refused counts the inbound connections refused so far: failed or timed
// out handshakes, and connections dropped while too many were pending.
func (s *TLSStreamLayer) Refused() uint64 { return s.refused.Load() }

// Dial connects to a Raft peer and completes the TLS handshake within
// timeout (which also bounds the TCP connect; 0 means 10s): the peer must
// hold a server certificate of this cluster.
func (s *TLSStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS: dial %s: %w", address, err)
	}
	conn := tls.Client(raw, s.clientCfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raft TLS: handshake with %s: %w", address, err)
	}
	return conn, nil
}

// acceptLoop accepts TCP connections and starts a handshake for each.
func (s *TLSStreamLayer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Error("raft TLS: accept failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		delay = 0
		select {
		case s.pending <- struct{}{}:
		default:
			s.refused.Add(1)
			metrics.IncrCounter([]string{"ice", "raft", "tls", "refused"}, 1)
			s.logger.Warn("raft TLS: refused connection: too many handshakes in progress", "remote", raw.RemoteAddr().String(), "limit", maxPendingHandshakes)
			_ = raw.Close()
			continue
		}
		s.wg.Add(1)
		go s.handshake(raw)
	}
}

// handshake completes an inbound handshake within handshakeTimeout and
// hands the connection to Accept, or refuses it.
func (s *TLSStreamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.pending }()
	ctx, cancel := context.WithTimeout(s.ctx, s.handshakeTimeout)
	defer cancel()
	conn := tls.Server(raw, s.serverCfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		if s.ctx.Err() != nil {
			return // closing
		}
		s.refused.Add(1)
		metrics.IncrCounter([]string{"ice", "raft", "tls", "refused"}, 1)
		s.logger.Warn("raft TLS: refused connection", "remote", raw.RemoteAddr().String(), "error", err)
		return
	}
	if s.logger.IsDebug() {
		cs := conn.ConnectionState()
		peer, _ := tlsutil.PeerIdentity(&cs)
		s.logger.Debug("raft TLS: accepted connection", "remote", raw.RemoteAddr().String(), "peer", peer.String())
	}
	select {
	case s.conns <- conn:
	case <-s.ctx.Done():
		_ = conn.Close()
	}
}
