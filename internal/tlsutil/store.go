package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Config names the files a Store loads.
type Config struct {
	// CAFile holds the PEM certificates of the trusted CAs: one, or several
	// while a CA is rotated. Required.
	CAFile string
	// CertFile holds this process's PEM certificate (intermediates may
	// follow it), KeyFile its private key. Give both or neither: without
	// them the Store only verifies servers, as a client that presents no
	// certificate.
	CertFile string
	KeyFile  string
	// Cluster, if set, is the cluster the certificate must belong to.
	// Default: the certificate's. Peers of another cluster are refused.
	Cluster string
}

// Store holds the trusted CAs and this process's certificate and key, and
// reloads them from their files. Make one with NewStore (the zero Store
// is not usable). It is safe for concurrent use; the tls.Config values it
// builds read its current material on every handshake.
type Store struct {
	cfg    Config
	mu     sync.Mutex // serialises Reload
	cur    atomic.Pointer[material]
	loaded atomic.Uint64
}

// material is one consistent load of a Store's files.
type material struct {
	roots *x509.CertPool
	cas   []*x509.Certificate
	// cert and id are nil and zero for a Store without a certificate.
	cert    *tls.Certificate
	id      Identity
	cluster string
}

// NewStore loads cfg's files and checks them: every certificate in CAFile
// is a CA, the certificate matches its key, chains to one of the CAs, is
// valid now and names an ICE identity (of cfg.Cluster, if set).
func NewStore(cfg Config) (*Store, error) {
	m, err := load(cfg)
	if err != nil {
		return nil, fmt.Errorf("load TLS material: %w", err)
	}
	s := &Store{cfg: cfg}
	s.cur.Store(m)
	s.loaded.Add(1)
	return s, nil
}

// Reload reads the files again and, if they pass NewStore's checks, makes
// them the material for new connections. If they do not, or if they name
// another role, cluster or node id than the current certificate, it keeps
// the current material and returns the error.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := load(s.cfg)
	if err != nil {
		return fmt.Errorf("reload TLS material (keeping the current one): %w", err)
	}
	old := s.cur.Load()
	if err := sameIdentity(old, m); err != nil {
		return fmt.Errorf("reload TLS material (keeping the current one): %w", err)
	}
	s.cur.Store(m)
	s.loaded.Add(1)
	return nil
}

// Loads counts the successful loads: 1 after NewStore, one more for every
// Reload that took effect.
func (s *Store) Loads() uint64 { return s.loaded.Load() }

// Identity is the identity the current certificate names, or the zero
// Identity for a Store without a certificate.
func (s *Store) Identity() Identity { return s.cur.Load().id }

// Cluster is the Store's cluster: Config.Cluster, else its certificate's;
// "" for a Store with neither.
func (s *Store) Cluster() string { return s.cur.Load().cluster }

// Leaf is the current certificate, or nil for a Store without one. The
// caller must not modify it.
func (s *Store) Leaf() *x509.Certificate {
	if c := s.cur.Load().cert; c != nil {
		return c.Leaf
	}
	return nil
}

// CAs are the currently trusted CA certificates. The caller must not
// modify them.
func (s *Store) CAs() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.cur.Load().cas...)
}

func (s *Store) current() *material { return s.cur.Load() }

// sameIdentity refuses a reload that would change who this process is.
func sameIdentity(old, m *material) error {
	switch {
	case (old.cert == nil) != (m.cert == nil):
		return errors.New("a reload may not add or remove the certificate")
	case old.cert == nil:
		return nil
	case old.id.Role != m.id.Role || old.id.Cluster != m.id.Cluster:
		return fmt.Errorf("the new certificate names %s, the current one %s: a reload may not change the role or cluster", m.id, old.id)
	case old.id.NodeID != "" && m.id.NodeID != old.id.NodeID:
		return fmt.Errorf("the new certificate names %s, the current one %s: a reload may not change the node id", m.id, old.id)
	}
	return nil
}

func load(cfg Config) (*material, error) {
	if cfg.CAFile == "" {
		return nil, errors.New("no CA file given")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("give both a certificate and its key, or neither")
	}
	if cfg.Cluster != "" {
		if err := ValidateCluster(cfg.Cluster); err != nil {
			return nil, err
		}
	}
	m, err := loadCAs(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	m.cluster = cfg.Cluster
	if cfg.CertFile == "" {
		return m, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", cfg.CertFile, err)
		}
	}
	if err := verifyOwn(&cert, m.roots); err != nil {
		return nil, fmt.Errorf("certificate %s against CA file %s: %w", cfg.CertFile, cfg.CAFile, err)
	}
	if m.id, err = IdentityOf(cert.Leaf); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", cfg.CertFile, err)
	}
	if cfg.Cluster != "" && m.id.Cluster != cfg.Cluster {
		return nil, fmt.Errorf("certificate %s names %s, not cluster %s", cfg.CertFile, m.id, cfg.Cluster)
	}
	m.cluster = m.id.Cluster
	m.cert = &cert
	return m, nil
}

// loadCAs reads a CA file of one or more CA certificates.
func loadCAs(path string) (*material, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	cas, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for i, c := range cas {
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("CA file %s: certificate %d (%q) is not a CA certificate", path, i+1, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return &material{roots: pool, cas: cas}, nil
}

// verifyOwn checks that a process's own certificate chains to a trusted CA
// and is valid now, so that a wrong CA file or an expired certificate is
// reported at load, not as handshake failures on every peer.
func verifyOwn(cert *tls.Certificate, roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parse intermediate certificate: %w", err)
		}
		inter.AddCert(c)
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}
