package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Role is what a certificate allows its holder to be in a cluster.
type Role string

// The roles a certificate can name.
const (
	// RoleServer is a Raft server: it may join Raft and serve the API.
	RoleServer Role = "server"
	// RoleAgent is an agent: it runs components for one node id.
	RoleAgent Role = "agent"
	// RoleCLI is an operator's or a tool's client of the API.
	RoleCLI Role = "cli"
)

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "default"

// URIScheme is the scheme of the URI SAN that names a certificate's
// identity: ice://<cluster>/<role>/<node-id>.
const URIScheme = "ice"

// maxClusterLen keeps server.<cluster>.ice within the 64 characters a
// certificate's common name may hold.
const maxClusterLen = 40

// maxNodeIDLen matches the limit the state machine puts on node ids.
const maxNodeIDLen = 128

// ErrNoIdentity is returned by IdentityOf and PeerIdentity for a
// certificate (or connection) that names no ICE identity.
var ErrNoIdentity = errors.New("no ICE identity")

// Roles lists every role, in the order the CLI documents them.
func Roles() []Role { return []Role{RoleServer, RoleAgent, RoleCLI} }

// ParseRole returns the role named s ("server", "agent" or "cli").
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want server, agent or cli)", s)
}

// Identity is who a certificate says its holder is.
type Identity struct {
	Role    Role
	Cluster string
	// NodeID is the server's or agent's node id, or the CLI client's name.
	// It is empty for a server certificate made without a node id.
	NodeID string
}

// String names the identity for logs and errors, e.g. "agent n1 of
// cluster prod".
func (id Identity) String() string {
	if id.Role == "" {
		return "no identity"
	}
	if id.NodeID == "" {
		return fmt.Sprintf("%s of cluster %s", id.Role, id.Cluster)
	}
	return fmt.Sprintf("%s %s of cluster %s", id.Role, id.NodeID, id.Cluster)
}

// URI returns the identity's URI SAN, ice://<cluster>/<role>/<node-id>, or
// nil for a server identity without a node id (named by its DNS SAN only).
func (id Identity) URI() *url.URL {
	if id.NodeID == "" {
		return nil
	}
	return &url.URL{Scheme: URIScheme, Host: id.Cluster, Path: "/" + string(id.Role) + "/" + id.NodeID}
}

// Validate checks the identity's parts: a known role, a valid cluster name
// and a valid node id, which only a server may leave out.
func (id Identity) Validate() error {
	if _, err := ParseRole(string(id.Role)); err != nil {
		return err
	}
	if err := ValidateCluster(id.Cluster); err != nil {
		return err
	}
	if id.NodeID == "" {
		if id.Role != RoleServer {
			return fmt.Errorf("node id is empty (required for role %s)", id.Role)
		}
		return nil
	}
	return ValidateNodeID(id.NodeID)
}

// ServerName is the DNS SAN every server certificate of cluster holds:
// server.<cluster>.ice. Clients verify servers against it.
func ServerName(cluster string) string { return "server." + cluster + ".ice" }

// ValidateCluster checks a cluster name: 1 to 40 lowercase letters, digits
// and '-', starting and ending with a letter or digit (a DNS label).
func ValidateCluster(name string) error {
	if name == "" {
		return errors.New("cluster name is empty")
	}
	if len(name) > maxClusterLen {
		return fmt.Errorf("cluster name %q is longer than %d characters", name, maxClusterLen)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' && i > 0 && i < len(name)-1)
		if !ok {
			return fmt.Errorf("cluster name %q: character %q at %d not allowed (use lowercase letters, digits and '-' inside)", name, c, i)
		}
	}
	return nil
}

// ValidateNodeID checks a node id as the state machine does: 1 to 128
// characters from [A-Za-z0-9_.-], starting with a letter or digit.
func ValidateNodeID(id string) error {
	if id == "" {
		return errors.New("node id is empty")
	}
	if len(id) > maxNodeIDLen {
		return fmt.Errorf("node id %.32q... is longer than %d characters", id, maxNodeIDLen)
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '-' || c == '_' || c == '.')) {
			continue
		}
		return fmt.Errorf("node id %q: character %q at %d not allowed (use letters, digits, '-', '_', '.'; start with a letter or digit)", id, c, i)
	}
	return nil
}

// IdentityOf reads the identity a certificate names: its ice:// URI SAN or,
// without one, the server.<cluster>.ice DNS SAN of a server certificate.
// It checks only what the certificate says, not who signed it: use it on
// certificates the TLS handshake verified (see PeerIdentity). A
// certificate with two identities, or whose URI and DNS names disagree, is
// refused.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("no certificate: %w", ErrNoIdentity)
	}
	var fromURI *Identity
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, URIScheme) {
			continue
		}
		id, err := parseIdentityURI(u)
		if err != nil {
			return Identity{}, err
		}
		if fromURI != nil {
			return Identity{}, fmt.Errorf("certificate names two identities, %s and %s", fromURI, id)
		}
		fromURI = &id
	}
	clusters, err := serverDNSClusters(cert.DNSNames)
	if err != nil {
		return Identity{}, err
	}
	if fromURI != nil {
		for _, c := range clusters {
			if fromURI.Role != RoleServer || c != fromURI.Cluster {
				return Identity{}, fmt.Errorf("certificate names %s in its URI but holds DNS name %s", fromURI, ServerName(c))
			}
		}
		return *fromURI, nil
	}
	switch len(clusters) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q has neither an %s:// URI nor a server.<cluster>.ice name: %w", cert.Subject.CommonName, URIScheme, ErrNoIdentity)
	case 1:
		return Identity{Role: RoleServer, Cluster: clusters[0]}, nil
	default:
		return Identity{}, fmt.Errorf("certificate names servers of several clusters %q", clusters)
	}
}

// parseIdentityURI reads ice://<cluster>/<role>/<node-id>.
func parseIdentityURI(u *url.URL) (Identity, error) {
	if u.Opaque != "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" {
		return Identity{}, fmt.Errorf("identity URI %q: want %s://<cluster>/<role>/<node-id> and nothing else", u, URIScheme)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 2 {
		return Identity{}, fmt.Errorf("identity URI %q: want %s://<cluster>/<role>/<node-id>", u, URIScheme)
	}
	role, err := ParseRole(parts[0])
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	id := Identity{Role: role, Cluster: u.Hostname(), NodeID: parts[1]}
	if id.NodeID == "" {
		return Identity{}, fmt.Errorf("identity URI %q: node id is empty", u)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	return id, nil
}

// serverDNSClusters returns the clusters of the server.<cluster>.ice names
// among names, each once.
func serverDNSClusters(names []string) ([]string, error) {
	var clusters []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !strings.HasSuffix(n, ".ice") {
			continue
		}
		rest, ok := strings.CutPrefix(strings.TrimSuffix(n, ".ice"), "server.")
		if !ok {
			return nil, fmt.Errorf("certificate holds DNS name %q in the reserved .ice namespace", n)
		}
		if err := ValidateCluster(rest); err != nil {
			return nil, fmt.Errorf("certificate DNS name %q: %w", n, err)
		}
		if !slices.Contains(clusters, rest) {
			clusters = append(clusters, rest)
		}
	}
	return clusters, nil
}
