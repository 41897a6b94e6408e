// Package host is the agent's side of the plugin contract: it launches a
// component plugin as a go-plugin subprocess in its own process group,
// verifies the binary's sha256 before it runs, speaks gRPC to it over mutual
// TLS, sends its stdout and stderr to the run's log file, and reattaches to a
// plugin that outlived an agent restart.
//
// Mutual TLS: go-plugin's AutoMTLS keeps the client certificate only in the
// memory of the host that launched the plugin, so a restarted agent could not
// reattach to it. host therefore performs the exchange itself: it creates
// both certificates (P-256), hands the plugin its own client certificate in
// PLUGIN_CLIENT_CERT and the plugin's certificate and key in
// plugins.EnvServerCert and plugins.EnvServerKey (the SDK serves with them;
// a plugin that ignores them answers with a certificate of its own in the
// handshake, as with AutoMTLS), and returns the material in an Attachment
// that the agent persists with the rest of the reattach information.
//
// The sha256 of a binary is remembered by file identity, so that launching
// the same unchanged binary again does not hash it again (verify.go).
//
// It does not decide when to launch or stop anything: the agent does, on
// committed authority.
package host
