package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// MinVersion is the lowest TLS version ICE speaks (see the package doc).
const MinVersion = tls.VersionTLS13

// ErrNoCertificate is the handshake error of a listener whose Store holds
// no certificate.
var ErrNoCertificate = errors.New("tlsutil: the store holds no certificate to serve with")

// PeerCheck is an extra condition on a peer whose certificate the handshake
// verified (it chains to a trusted CA and names an identity of this
// cluster). Returning an error fails the handshake.
type PeerCheck func(peer Identity) error

// VerifyRole is a PeerCheck that accepts only peers whose certificate names
// one of roles: VerifyRole(RoleServer) on the Raft port keeps agent and CLI
// certificates out of Raft.
func VerifyRole(roles ...Role) PeerCheck {
	roles = slices.Clone(roles)
	return func(peer Identity) error {
		if slices.Contains(roles, peer.Role) {
			return nil
		}
		return fmt.Errorf("tlsutil: peer is %s; only %s certificates are accepted here", peer, joinRoles(roles))
	}
}

func joinRoles(roles []Role) string {
	if len(roles) == 0 {
		return "no"
	}
	s := string(roles[0])
	for i, r := range roles[1:] {
		if i == len(roles)-2 {
			s += " or " + string(r)
		} else {
			s += ", " + string(r)
		}
	}
	return s
}

// ServerTLSConfig is the configuration of a listener: TLS 1.3, this
// Store's current certificate, and client certificates verified against
// the currently trusted CAs. With requireClientCert a client without a
// certificate is refused; without it such a client is let in (the HTTP API
// then relies on tokens), but a certificate it does present must verify.
// A verified client must name an identity of this Store's cluster and pass
// every check. Each handshake reads the Store, so a Reload applies to new
// connections at once.
//
// The configuration works through GetConfigForClient: set any other field
// (NextProtos, say, or a VerifyConnection of your own, called after the
// Store's checks) on the returned value before using it; the
// per-connection configuration copies it at each handshake. Copies of it
// made by its user (http.Server clones it and adds NextProtos to the
// clone) do not: an http.Server serving it speaks HTTP/1.1 unless
// NextProtos is set on the returned value.
func (s *Store) ServerTLSConfig(requireClientCert bool, checks ...PeerCheck) *tls.Config {
	checks = slices.Clone(checks)
	clientAuth := tls.VerifyClientCertIfGiven
	if requireClientCert {
		clientAuth = tls.RequireAndVerifyClientCert
	}
	base := &tls.Config{MinVersion: MinVersion, SessionTicketsDisabled: true, ClientAuth: clientAuth}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.current()
		if m.cert == nil {
			return nil, ErrNoCertificate
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*m.cert}
		c.ClientCAs = m.roots
		c.ClientAuth = clientAuth
		c.MinVersion = max(c.MinVersion, MinVersion)
		c.SessionTicketsDisabled = true
		extra := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
					return errors.New("tlsutil: client certificate was not verified")
				}
				if err := m.checkPeer(cs.VerifiedChains[0][0], checks); err != nil {
					return err
				}
			}
			if extra != nil {
				return extra(cs)
			}
			return nil
		}
		return c, nil
	}
	return base
}

// ClientTLSConfig is the configuration of a client of a server of this
// cluster (an agent, the CLI, or a server dialling a peer): TLS 1.3, this
// Store's current certificate when the server asks for one, and the
// server's certificate verified against the currently trusted CAs. The
// server must hold a server certificate of this cluster and pass every
// check.
//
// serverName is the name the server's certificate must be valid for and the
// name sent as SNI. "" means server.<cluster>.ice, which every server
// certificate of the cluster holds, so any server is accepted whatever
// address was dialled; for a Store that knows no cluster, "" means the
// dialled host name (not checked when an IP address was dialled: the chain
// and the server role still are).
//
// Go's own verification is switched off (InsecureSkipVerify) because it
// would use the CAs trusted when the configuration was built;
// VerifyConnection does the same verification with the current ones.
func (s *Store) ClientTLSConfig(serverName string, checks ...PeerCheck) *tls.Config {
	checks = append([]PeerCheck{VerifyRole(RoleServer)}, checks...)
	if serverName == "" && s.Cluster() != "" {
		serverName = ServerName(s.Cluster())
	}
	return &tls.Config{
		MinVersion: MinVersion,
		ServerName: serverName,
		// Verification is done by VerifyConnection, against the current CAs.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := s.current(); m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // no certificate: the server decides
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := serverName
			if name == "" {
				name = cs.ServerName
			}
			return s.current().verifyServer(cs.PeerCertificates, name, checks)
		},
	}
}

// verifyServer verifies a server's certificate chain as crypto/tls would,
// with this material's CAs, then its identity.
func (m *material) verifyServer(certs []*x509.Certificate, name string, checks []PeerCheck) error {
	if len(certs) == 0 {
		return errors.New("tlsutil: server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         m.roots,
		Intermediates: inter,
		DNSName:       name,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return m.checkPeer(certs[0], checks)
}

// checkPeer checks a verified peer certificate's identity: it must name
// one, of this material's cluster (when known), and pass every check.
func (m *material) checkPeer(leaf *x509.Certificate, checks []PeerCheck) error {
	id, err := IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("tlsutil: peer certificate: %w", err)
	}
	if m.cluster != "" && id.Cluster != m.cluster {
		return fmt.Errorf("tlsutil: peer is %s, not a member of cluster %s", id, m.cluster)
	}
	for _, check := range checks {
		if err := check(id); err != nil {
			return err
		}
	}
	return nil
}

// PeerIdentity is the identity of the client of a connection accepted with
// ServerTLSConfig (in an HTTP handler: PeerIdentity(r.TLS)). It reads only
// certificates the handshake verified, and returns an error wrapping
// ErrNoIdentity when there is none: not a TLS connection, or a client that
// presented no certificate.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, fmt.Errorf("not a TLS connection: %w", ErrNoIdentity)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("the peer presented no verified certificate: %w", ErrNoIdentity)
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}
