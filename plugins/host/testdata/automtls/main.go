// Command automtls is a plugin that serves with go-plugin's AutoMTLS, as a
// plugin built without the SDK's use of the agent's server certificate
// does: it creates its own certificate and announces it in the handshake.
package main

import (
	"context"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

type component struct{}

func (component) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "automtls", Version: "1.0.0", Kind: plugins.KindService}, nil
}
func (component) Start(context.Context, plugins.StartRequest) error { return nil }
func (component) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}
func (component) Execute(context.Context, string) (string, error) { return "", nil }
func (component) Stop(context.Context, time.Time) error           { return nil }

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugins.Handshake,
		VersionedPlugins: plugins.VersionedPlugins(component{}),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
