package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// clockSkew backdates NotBefore so that a certificate made on one machine
// is already valid on a peer whose clock is a little behind.
const clockSkew = time.Minute

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// CA is a certificate authority that can sign certificates.
type CA struct {
	// Cert is the CA's certificate, CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the CA's private key; its public half is Cert's.
	Key crypto.Signer
	// Cluster is the cluster the CA was made for (GenerateCA records it as
	// the URI SAN ice://<cluster>), or "" for a CA made by other tools.
	Cluster string
}

// GenerateCA makes a self-signed CA for cluster (DefaultCluster if empty),
// valid for validity from now: an ECDSA P-256 key, a random 128-bit serial,
// key usage CertSign and CRLSign, no intermediates below it. Its name holds
// the cluster. It returns the PEM certificate and PKCS #8 key.
func GenerateCA(cluster string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if cluster == "" {
		cluster = DefaultCluster
	}
	if err := ValidateCluster(cluster); err != nil {
		return nil, nil, fmt.Errorf("generate CA: %w", err)
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("generate CA: validity %v is not positive", validity)
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA: %w", err)
	}
	keyID, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA: %w", err)
	}
	short := serial.Text(16)
	if len(short) > 8 {
		short = short[:8]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"ICE"},
			CommonName:   fmt.Sprintf("ICE CA %s %s", cluster, short),
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID,
		URIs:                  []*url.URL{{Scheme: URIScheme, Host: cluster}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA: sign the certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// LoadCA reads a CA's certificate and key from PEM files. certFile may hold
// several certificates (a bundle of trusted CAs): the one whose public key
// is keyFile's is used.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %s, %s: %w", certFile, keyFile, err)
	}
	return ca, nil
}

// ParseCA parses a CA's PEM certificate (or a bundle holding it) and key,
// and checks that they belong together and can sign certificates.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	for _, c := range certs {
		if !samePublicKey(c.PublicKey, key.Public()) {
			continue
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("certificate %q is not a CA certificate", c.Subject.CommonName)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("CA certificate %q may not sign certificates (no CertSign key usage)", c.Subject.CommonName)
		}
		return &CA{
			Cert:    c,
			CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: c.Raw}),
			Key:     key,
			Cluster: caCluster(c),
		}, nil
	}
	return nil, errors.New("the key does not belong to any certificate in the CA file")
}

// caCluster reads the ice://<cluster> URI SAN GenerateCA puts in a CA.
func caCluster(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, URIScheme) && strings.Trim(u.Path, "/") == "" && ValidateCluster(u.Host) == nil {
			return u.Host
		}
	}
	return ""
}

// GenerateCert makes a certificate for role signed by ca, valid for
// validity from now or until the CA expires, whichever comes first: an
// ECDSA P-256 key,
// a random 128-bit serial, key usage DigitalSignature, extended key usages
// ServerAuth and ClientAuth. cluster defaults to the CA's cluster (then
// DefaultCluster) and must match it when both are known.
//
//   - RoleServer: DNS SAN server.<cluster>.ice, localhost, 127.0.0.1, ::1
//     and hosts; URI SAN ice://<cluster>/server/<nodeID> if nodeID is set.
//   - RoleAgent: URI SAN ice://<cluster>/agent/<nodeID> (nodeID required)
//     and hosts.
//   - RoleCLI: URI SAN ice://<cluster>/cli/<nodeID> (nodeID is the client's
//     name, required) and hosts.
//
// hosts are IP addresses (IP SANs) or DNS names (DNS SANs); wildcards and
// the reserved .ice namespace are refused. It returns the PEM certificate
// and PKCS #8 key.
func GenerateCert(ca *CA, role Role, cluster, nodeID string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	tmpl, err := leafTemplate(ca, role, cluster, nodeID, hosts, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s certificate: %w", role, err)
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s certificate: %w", role, err)
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return nil, nil, fmt.Errorf("generate %s certificate: %w", role, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s certificate: sign: %w", role, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// leafTemplate checks GenerateCert's arguments and fills in everything but
// the key.
func leafTemplate(ca *CA, role Role, cluster, nodeID string, hosts []string, validity time.Duration) (*x509.Certificate, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("no CA to sign with")
	}
	if cluster == "" {
		cluster = ca.Cluster
	}
	if cluster == "" {
		cluster = DefaultCluster
	}
	if ca.Cluster != "" && cluster != ca.Cluster {
		return nil, fmt.Errorf("cluster %q, but the CA %q was made for cluster %q", cluster, ca.Cert.Subject.CommonName, ca.Cluster)
	}
	id := Identity{Role: role, Cluster: cluster, NodeID: nodeID}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if validity <= 0 {
		return nil, fmt.Errorf("validity %v is not positive", validity)
	}
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("the CA %q expired at %s", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter // a certificate cannot outlive its CA
	}
	dns, ips, err := splitHosts(hosts)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	cn := ServerName(cluster)
	if role == RoleServer {
		dns = dedupe(append([]string{cn, "localhost"}, dns...))
		ips = dedupeIPs(append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...))
	} else {
		cn = fmt.Sprintf("%s %s", role, nodeID)
	}
	if len(cn) > 64 {
		cn = cn[:64]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"ICE"}, CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	if u := id.URI(); u != nil {
		tmpl.URIs = []*url.URL{u}
	}
	return tmpl, nil
}

// splitHosts sorts hosts into DNS names and IP addresses, checking each.
func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			ips = append(ips, ip)
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := validateDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("host %q: %w", h, err)
		}
		dns = append(dns, name)
	}
	return dedupe(dns), dedupeIPs(ips), nil
}

// validateDNSName accepts host names of letters, digits, '-' and '_' in
// labels of 1 to 63 characters, 253 in all, outside the .ice namespace.
func validateDNSName(name string) error {
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	if name == "ice" || strings.HasSuffix(name, ".ice") {
		return errors.New("the .ice namespace is reserved for role names (server.<cluster>.ice is added to server certificates)")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q must have 1 to 63 characters", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name (no wildcards)", c)
			}
		}
	}
	return nil
}

func dedupe(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func dedupeIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		dup := false
		for _, o := range out {
			dup = dup || o.Equal(ip)
		}
		if !dup {
			out = append(out, ip)
		}
	}
	return out
}

// newKey makes an ECDSA P-256 key and its PKCS #8 PEM encoding.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// newSerial returns a random, positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		s, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if s.Sign() > 0 {
			return s, nil
		}
	}
}

// subjectKeyID is the first 160 bits of the SHA-256 of the public key.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
