package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/ice-run/ice/internal/gossip"
	"github.com/ice-run/ice/internal/tlsutil"
)

// securityFlags are the flags every long-running process (server, agent)
// takes to be secure: TLS material, the gossip key, and --insecure to run
// without any of it.
type securityFlags struct {
	tlsCA, tlsCert, tlsKey string
	gossipKey              string
	gossipKeyFile          string
	insecure               bool
}

func (f *securityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.tlsCA, "tls-ca", f.tlsCA, "PEM file of the CA (or CAs, during a rotation) whose certificates this process trusts")
	fl.StringVar(&f.tlsCert, "tls-cert", f.tlsCert, "PEM file of this process's certificate (ice tls cert create); reloaded on SIGHUP")
	fl.StringVar(&f.tlsKey, "tls-key", f.tlsKey, "PEM file of this process's private key; reloaded on SIGHUP")
	fl.StringVar(&f.gossipKey, "gossip-key", f.gossipKey, "base64 32-byte key that encrypts gossip (ice operator gossip keyring rotates it)")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", f.gossipKeyFile, "file holding the gossip key (keeps it out of the process's command line)")
	fl.BoolVar(&f.insecure, "insecure", false, "run without TLS, gossip encryption or ACLs: for trusted labs and tests only")
}

// errInsecureMaterial explains what a secure start needs.
var errInsecureMaterial = errors.New("ICE is secure by default: give --tls-ca, --tls-cert, --tls-key and --gossip-key (see README, \"Securing a cluster\"), or --insecure to run without TLS, gossip encryption and ACLs")

// check refuses a start that is neither secure nor explicitly insecure.
func (f *securityFlags) check() error {
	if f.insecure {
		return nil
	}
	var missing []string
	for _, m := range []struct{ flag, v string }{{"--tls-ca", f.tlsCA}, {"--tls-cert", f.tlsCert}, {"--tls-key", f.tlsKey}, {"--gossip-key", f.gossipKey + f.gossipKeyFile}} {
		if m.v == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v: %w", missing, errInsecureMaterial)
	}
	return nil
}

// security is the loaded TLS material and gossip key of a process (nil
// store and key: insecure).
type security struct {
	store     *tlsutil.Store
	gossipKey []byte
	stop      func()
}

// load reads the TLS material, checks the certificate has the role this
// process needs, and reloads it on SIGHUP until ctx ends. With --insecure it
// logs a warning and returns no material.
func (f *securityFlags) load(ctx context.Context, role tlsutil.Role, logger hclog.Logger) (*security, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.insecure {
		logger.Warn("running INSECURE: plain HTTP, plaintext Raft and gossip, no ACLs; anyone who reaches a port can write the log")
		return &security{stop: func() {}}, nil
	}
	keyText := f.gossipKey
	if f.gossipKeyFile != "" {
		if keyText != "" {
			return nil, fmt.Errorf("give --gossip-key or --gossip-key-file, not both")
		}
		b, err := os.ReadFile(f.gossipKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read --gossip-key-file: %w", err)
		}
		keyText = string(b)
	}
	key, err := gossip.ParseKey(keyText)
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	store, err := tlsutil.NewStore(tlsutil.Config{CAFile: f.tlsCA, CertFile: f.tlsCert, KeyFile: f.tlsKey})
	if err != nil {
		return nil, fmt.Errorf("load TLS material: %w", err)
	}
	if id := store.Identity(); id.Role != role {
		return nil, fmt.Errorf("certificate %s is for %s, this process needs a %s certificate (ice tls cert create --%s)", f.tlsCert, id, role, role)
	}
	logger.Info("TLS material loaded", "identity", store.Identity().String(), "cluster", store.Cluster())
	return &security{store: store, gossipKey: key, stop: store.WatchSIGHUP(ctx, logger.Named("tls"))}, nil
}

// serverTLS is the HTTPS configuration of the API: clients may come
// without a certificate (their token decides), and one that is presented
// must verify.
func (s *security) serverTLS() *tls.Config {
	if s.store == nil {
		return nil
	}
	return s.store.ServerTLSConfig(false)
}

// clientTLS is the configuration for calling servers of the cluster.
func (s *security) clientTLS() *tls.Config {
	if s.store == nil {
		return nil
	}
	return s.store.ClientTLSConfig("")
}

// identity is the certificate's identity (zero when insecure).
func (s *security) identity() tlsutil.Identity {
	if s.store == nil {
		return tlsutil.Identity{}
	}
	return s.store.Identity()
}
