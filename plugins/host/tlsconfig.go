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
	"net"
	"time"
)

// newClientCert returns a self-signed certificate and key (PEM) for the
// host's side of the mutual TLS, shaped as go-plugin's AutoMTLS expects.
func newClientCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate plugin client key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"ICE agent"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create plugin client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode plugin client key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
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

// serverCertificate connects to the plugin once more over TLS and returns
// the certificate it presents, after checking that it is the one the
// handshake announced (cfg.RootCAs).
func serverCertificate(addr net.Addr, cfg *tls.Config) ([]byte, error) {
	if cfg.RootCAs == nil {
		return nil, errors.New("plugin sent no certificate in its handshake")
	}
	var der []byte
	probe := &tls.Config{
		Certificates:       cfg.Certificates,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // verified below against the handshake's certificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("plugin presented no certificate")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: "localhost"}); err != nil {
				return fmt.Errorf("plugin certificate differs from its handshake: %w", err)
			}
			der = raw[0]
			return nil
		},
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, addr.Network(), addr.String(), probe)
	if err != nil {
		return nil, fmt.Errorf("read plugin certificate at %s: %w", addr, err)
	}
	_ = conn.Close()
	return der, nil
}
