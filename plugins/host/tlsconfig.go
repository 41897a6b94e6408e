package host

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ice-run/ice/plugins"
)

// certPair is the TLS material of one launch: the host's certificate and
// key, and the ones the plugin serves with.
type certPair struct {
	clientCert, clientKey []byte // PEM
	serverCert, serverKey []byte // PEM
	serverDER             []byte
}

// newCertPair creates both sides' certificates for a launch. The plugin's
// goes to it in the environment with its key (plugins.EnvServerKey), so
// the host knows the certificate to expect before the plugin answers: the
// plugin does not have to create one (go-plugin's AutoMTLS has it create a
// P-521 key, about 20 ms of CPU per plugin process) and the host does not
// have to ask for it. The key is as safe there as the plugin's memory: the
// environment of a process is readable only by its user and root, who can
// read its memory too.
func newCertPair() (certPair, error) {
	var p certPair
	var err error
	if p.clientCert, p.clientKey, err = hostCert(); err != nil {
		return p, err
	}
	if p.serverCert, p.serverKey, p.serverDER, err = newCert("ICE plugin"); err != nil {
		return p, fmt.Errorf("create plugin server certificate: %w", err)
	}
	return p, nil
}

// hostCert returns the host's client certificate, made once per process:
// plugins only ever see its public half, so one serves every launch (and
// saves a key generation on each).
func hostCert() (certPEM, keyPEM []byte, err error) {
	c, err := hostCertOnce()
	return c[0], c[1], err
}

var hostCertOnce = sync.OnceValues(func() ([2][]byte, error) {
	certPEM, keyPEM, _, err := newCert("ICE agent")
	if err != nil {
		return [2][]byte{}, fmt.Errorf("create plugin client certificate: %w", err)
	}
	return [2][]byte{certPEM, keyPEM}, nil
})

// newCert returns a self-signed P-256 certificate (PEM and DER) and key
// (PEM) for one side of the mutual TLS, shaped as go-plugin's AutoMTLS
// expects.
func newCert(org string) (certPEM, keyPEM, der []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{org}},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), der, nil
}

// clientTLS builds the host's TLS config from its certificate and, once
// known, the plugin's.
func clientTLS(certPEM, keyPEM, serverDER []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load plugin client certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ServerName:   "localhost",
		// The connection is a Unix socket to the agent's own child: the
		// post-quantum hybrid key exchange Go offers by default only adds
		// CPU to every plugin start (about 0.5 ms a side).
		CurvePreferences: plugins.TLSCurves,
	}
	if serverDER != nil {
		srv, err := x509.ParseCertificate(serverDER)
		if err != nil {
			return nil, fmt.Errorf("parse plugin server certificate: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(srv)
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// peerCert records the certificate the plugin presented on a verified
// connection. A plugin built with an SDK that ignores plugins.EnvServerKey
// answers with a certificate of its own in the handshake, which go-plugin
// then expects instead (RootCAs); either way, this is the one it serves.
type peerCert struct {
	mu  sync.Mutex
	der []byte
}

// record is a tls.Config VerifyConnection callback.
func (p *peerCert) record(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("plugin presented no certificate")
	}
	p.mu.Lock()
	p.der = cs.PeerCertificates[0].Raw
	p.mu.Unlock()
	return nil
}

func (p *peerCert) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.der
}
