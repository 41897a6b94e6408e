// Package plugins is ICE's component plugin contract over hashicorp/go-plugin
// (gRPC): the Component interface a plugin implements and the agent calls,
// the handshake and protocol versions, and the gRPC adapters between the
// interface and the generated service in plugins/proto.
//
// Plugin authors import plugins/sdk, which wraps this package in one Serve
// call. Agents use plugins/host to launch, verify and reattach plugin
// processes. This package itself starts no process and holds no state: it
// only translates between Go calls and the wire.
package plugins
