package plugins

import (
	"crypto/tls"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the version of the plugin protocol this build speaks.
// A host and a plugin negotiate the highest version both support; a plugin
// that supports none of the host's versions is refused at the handshake.
const ProtocolVersion = 1

// PluginName is the name the component is dispensed under.
const PluginName = "component"

// Handshake is the go-plugin handshake: a plugin binary run by hand, without
// the magic cookie, exits with a message instead of waiting for a host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "ICE_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "b7a5c2f0-ice-component-plugin",
}

// VersionedPlugins returns the plugin sets by protocol version. impl is the
// implementation a plugin serves; hosts pass nil.
func VersionedPlugins(impl Component) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// ServedPlugins is VersionedPlugins for a plugin process that serves the
// host channel through link and reports the cost cost accumulates (either
// may be nil).
func ServedPlugins(impl Component, link *HostLink, cost *CostMeter) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl, Link: link, Cost: cost}},
	}
}

// The environment variables in which a host hands a plugin the certificate
// and key (PEM) to serve with. The host's own certificate goes in go-plugin's
// PLUGIN_CLIENT_CERT. A plugin that does not read them answers with a
// certificate of its own in the handshake (go-plugin's AutoMTLS).
const (
	EnvServerCert = "ICE_PLUGIN_SERVER_CERT"
	EnvServerKey  = "ICE_PLUGIN_SERVER_KEY"
)

// TLSCurves are the key exchanges the agent and plugins offer each other.
// Their connection is a socket on one machine between an agent and its own
// child process, so the post-quantum hybrid exchange Go offers by default
// buys nothing and costs about half a millisecond of CPU a side on every
// plugin start.
var TLSCurves = []tls.CurveID{tls.X25519, tls.CurveP256}
