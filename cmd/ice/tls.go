package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/internal/tlsutil"
)

// Default validities and file names of `ice tls`.
const (
	defaultCADays   = 5 * 365
	defaultCertDays = 365
	caCertFile      = "ice-ca.pem"
	caKeyFile       = "ice-ca-key.pem"
)

// newTLSCmd is `ice tls`: a cluster's certificate authority and the
// certificates of its servers, agents and clients.
func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Create a cluster's CA and the certificates of its servers, agents and CLI clients",
		Args:  cobra.NoArgs,
	}
	ca := &cobra.Command{Use: "ca", Short: "Manage the cluster's certificate authority", Args: cobra.NoArgs}
	ca.AddCommand(newTLSCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Manage server, agent and CLI certificates", Args: cobra.NoArgs}
	cert.AddCommand(newTLSCertCreateCmd())
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd() *cobra.Command {
	var cluster, dir string
	var days int
	cmd := &cobra.Command{
		Use:   "create [--cluster NAME] [--dir D] [--days N]",
		Short: "Create a CA: ice-ca.pem and ice-ca-key.pem",
		Long: `Create a cluster's certificate authority: an ECDSA P-256 key and a self-signed
certificate naming the cluster, written to DIR/ice-ca.pem (mode 0644) and
DIR/ice-ca-key.pem (mode 0600). Existing files are never overwritten. Keep the
key offline: it is needed only to create certificates.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days <= 0 {
				return fmt.Errorf("--days %d: must be positive", days)
			}
			certPEM, keyPEM, err := tlsutil.GenerateCA(cluster, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			if err := ensureDir(dir); err != nil {
				return err
			}
			certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
			if err := tlsutil.WriteFiles(certPath, certPEM, keyPath, keyPEM); err != nil {
				return fmt.Errorf("write the CA: %w", err)
			}
			certs, err := tlsutil.ParseCertificates(certPEM)
			if err != nil {
				return err
			}
			c := certs[0]
			fmt.Fprintf(cmd.OutOrStdout(), "Created CA %q for cluster %s, expires %s\n", c.Subject.CommonName, orDefault(cluster), c.NotAfter.UTC().Format(time.RFC3339))
			printWritten(cmd.OutOrStdout(), certPath, keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", tlsutil.DefaultCluster, "cluster name (lowercase letters, digits, '-')")
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write the files to (created with mode 0700 if missing)")
	cmd.Flags().IntVar(&days, "days", defaultCADays, "validity in days")
	return cmd
}

// certCreateOpts are the flags of `ice tls cert create`.
type certCreateOpts struct {
	server, agent, cli bool
	nodeID, cluster    string
	hosts              []string
	caFile, caKeyFile  string
	dir, name          string
	days               int
}

func newTLSCertCreateCmd() *cobra.Command {
	o := &certCreateOpts{}
	cmd := &cobra.Command{
		Use:   "create --server|--agent|--cli [--node-id ID] [--host H ...] [--cluster NAME] [--ca FILE --ca-key FILE] [--dir D] [--name N]",
		Short: "Create a certificate signed by the CA for a server, an agent or a CLI client",
		Long: `Create a certificate and its key, signed by the CA, for one role:

  --server  SANs server.<cluster>.ice, localhost, 127.0.0.1, ::1 and every --host;
            URI ice://<cluster>/server/<node-id> when --node-id is given.
  --agent   URI ice://<cluster>/agent/<node-id> (--node-id required) and every --host.
  --cli     URI ice://<cluster>/cli/<name>: --node-id names the client (default "cli").

Every certificate allows both server and client authentication. The files are
DIR/<name>.pem (mode 0644) and DIR/<name>-key.pem (mode 0600), <name> being
<role>-<node-id> (or <role> without a node id) unless --name is given; existing
files are never overwritten. The cluster is the CA's unless --cluster says
otherwise (it must then match the CA's). A certificate never outlives its CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.server, "server", false, "a server certificate")
	f.BoolVar(&o.agent, "agent", false, "an agent certificate (needs --node-id)")
	f.BoolVar(&o.cli, "cli", false, "a CLI client certificate")
	f.StringVar(&o.nodeID, "node-id", "", "the server's or agent's node id; the CLI client's name")
	f.StringSliceVar(&o.hosts, "host", nil, "a DNS name or IP address to add to the certificate (repeat or separate with commas)")
	f.StringVar(&o.cluster, "cluster", "", "cluster name (default: the CA's)")
	f.StringVar(&o.caFile, "ca", "", "CA certificate file (default: DIR/"+caCertFile+")")
	f.StringVar(&o.caKeyFile, "ca-key", "", "CA key file (default: DIR/"+caKeyFile+")")
	f.StringVar(&o.dir, "dir", ".", "directory to write the files to (created with mode 0700 if missing)")
	f.StringVar(&o.name, "name", "", "base name of the files (default <role>-<node-id>)")
	f.IntVar(&o.days, "days", defaultCertDays, "validity in days")
	return cmd
}

// role checks that exactly one role flag was given and returns it.
func (o *certCreateOpts) role() (tlsutil.Role, error) {
	var roles []tlsutil.Role
	for _, r := range []struct {
		set  bool
		role tlsutil.Role
	}{{o.server, tlsutil.RoleServer}, {o.agent, tlsutil.RoleAgent}, {o.cli, tlsutil.RoleCLI}} {
		if r.set {
			roles = append(roles, r.role)
		}
	}
	if len(roles) != 1 {
		return "", fmt.Errorf("give exactly one of --server, --agent and --cli (got %d)", len(roles))
	}
	return roles[0], nil
}

func (o *certCreateOpts) run(out io.Writer) error {
	role, err := o.role()
	if err != nil {
		return err
	}
	nodeID := o.nodeID
	switch {
	case role == tlsutil.RoleAgent && nodeID == "":
		return errors.New("--agent needs --node-id: an agent certificate names the one node it may act for")
	case role == tlsutil.RoleCLI && nodeID == "":
		nodeID = "cli"
	}
	if o.days <= 0 {
		return fmt.Errorf("--days %d: must be positive", o.days)
	}
	ca, err := o.loadCA()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsutil.GenerateCert(ca, role, o.cluster, nodeID, o.hosts, time.Duration(o.days)*24*time.Hour)
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = string(role)
		if o.nodeID != "" {
			name += "-" + o.nodeID
		}
	}
	if name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("--name %q: give a file name, not a path (use --dir for the directory)", name)
	}
	if err := ensureDir(o.dir); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(o.dir, name+".pem"), filepath.Join(o.dir, name+"-key.pem")
	if err := tlsutil.WriteFiles(certPath, certPEM, keyPath, keyPEM); err != nil {
		return fmt.Errorf("write the %s certificate: %w", role, err)
	}
	certs, err := tlsutil.ParseCertificates(certPEM)
	if err != nil {
		return err
	}
	id, err := tlsutil.IdentityOf(certs[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Created a certificate for %s, expires %s\n", id, certs[0].NotAfter.UTC().Format(time.RFC3339))
	printWritten(out, certPath, keyPath)
	return nil
}

// loadCA reads the CA named by --ca and --ca-key, by default the files of
// `ice tls ca create` in --dir.
func (o *certCreateOpts) loadCA() (*tlsutil.CA, error) {
	certFile, keyFile := o.caFile, o.caKeyFile
	if certFile == "" {
		certFile = filepath.Join(o.dir, caCertFile)
	}
	if keyFile == "" {
		keyFile = filepath.Join(o.dir, caKeyFile)
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("CA file %s not found: create a CA with `ice tls ca create`, or give --ca and --ca-key", f)
		}
	}
	return tlsutil.LoadCA(certFile, keyFile)
}

// ensureDir creates dir (mode 0700) if it does not exist.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}

func printWritten(out io.Writer, certPath, keyPath string) {
	fmt.Fprintf(out, "  certificate: %s\n  private key: %s\n", certPath, keyPath)
}

func orDefault(cluster string) string {
	if cluster == "" {
		return tlsutil.DefaultCluster
	}
	return cluster
}
