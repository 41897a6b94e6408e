package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/internal/tlsutil"
)

// admissionTimeout bounds the handshake with a server before it is added
// as a voter.
const admissionTimeout = 3 * time.Second

// admit checks, before the leader adds a server seen in gossip as a voter,
// that the server proves who it says it is: a mutual TLS handshake with its
// Raft address succeeds, and its certificate is a server certificate of
// this cluster naming the node id it uses in gossip. Gossip membership only
// proves the gossip key; without this check a process holding the key but
// not a certificate of the cluster's CA would become a voter (and enough of
// them would stall the quorum). Without TLS (--insecure) every member is
// admitted, as before.
func (s *Server) admit(m Member) error {
	if s.cfg.TLS == nil {
		return nil
	}
	sameNode := func(peer tlsutil.Identity) error {
		if peer.NodeID != m.ID {
			return fmt.Errorf("certificate names node %q, the member calls itself %q", peer.NodeID, m.ID)
		}
		return nil
	}
	cfg := s.cfg.TLS.ClientTLSConfig("", tlsutil.VerifyRole(tlsutil.RoleServer), sameNode)
	ctx, cancel := context.WithTimeout(context.Background(), admissionTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", m.RaftAddr)
	if err != nil {
		return fmt.Errorf("dial raft address %s: %w", m.RaftAddr, err)
	}
	defer raw.Close()
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		metrics.IncrCounter([]string{"ice", "autopilot", "refused"}, 1)
		return fmt.Errorf("TLS handshake with %s: %w", m.RaftAddr, err)
	}
	return nil
}

// admitHealthy refuses to add back a server that says it halted (at a
// damaged entry, or because an alarm named it): once removed with
// remove-peer, such a server must start again from a reset data dir
// before it may rejoin. A server whose status cannot be read is not
// refused here: if it rejoins halted, the next corruption check names it
// again.
func (s *Server) admitHealthy(m Member) error {
	ctx, cancel := context.WithTimeout(context.Background(), admissionTimeout)
	defer cancel()
	st, err := s.fetchStatus(ctx, m.ID, m.HTTPAddr)
	if err != nil || st.Corrupt == nil {
		return nil
	}
	metrics.IncrCounter([]string{"ice", "autopilot", "refused"}, 1)
	return fmt.Errorf("server %s is halted at index %d: %s", m.ID, st.Corrupt.Index, st.Corrupt.Reason)
}
