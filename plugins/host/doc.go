// Package host is the agent's side of the plugin contract: it launches a
// component plugin as a go-plugin subprocess in its own process group,
// verifies the binary's sha256 before it runs, speaks gRPC to it over mutual
// TLS, sends its stdout and stderr to the run's log file, and reattaches to a
// plugin that outlived an agent restart.
//
// Mutual TLS: go-plugin's AutoMTLS keeps the client certificate only in the
// memory of the host that launched the plugin, so a restarted agent could not
// reattach to it. host therefore performs the same exchange itself (the
// client certificate goes to the plugin in PLUGIN_CLIENT_CERT, the plugin
// answers with its own in the handshake), and returns both in an Attachment
// that the agent persists with the rest of the reattach information.
//
// It does not decide when to launch or stop anything: the agent does, on
// committed authority.
package host
