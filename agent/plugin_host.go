package agent

import (
	"context"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// pluginHost starts plugin processes and reattaches to running ones:
// plugins/host in production (processHost), a fake in tests.
type pluginHost interface {
	// Launch verifies a plugin binary, starts it and completes the
	// handshake.
	Launch(cfg host.Config) (pluginProcess, error)
	// Reattach connects to a plugin a previous agent started.
	Reattach(att host.Attachment, cfg host.Config) (pluginProcess, error)
	// Info launches a plugin binary, asks it for its Info and stops it, for
	// the catalogue.
	Info(ctx context.Context, cfg host.Config) (plugins.Info, error)
}

// pluginProcess is one running plugin. Its component may be called from
// any goroutine; ending it (Kill, KillNow, Detach) is decided by the
// supervisor alone.
type pluginProcess interface {
	// Component is the plugin's gRPC client.
	Component() plugins.Component
	// Attachment is what a restarted agent needs to reattach.
	Attachment() host.Attachment
	// Exited reports whether the process has exited.
	Exited() bool
	// Kill asks the plugin to shut down, and ends its process if it has not
	// after two seconds.
	Kill()
	// KillNow sends SIGKILL to the plugin's process group at once.
	KillNow()
	// Detach lets go of the plugin and leaves it running.
	Detach()
}

// processHost is the pluginHost of production.
type processHost struct{}

// Launch starts a plugin with plugins/host.
func (processHost) Launch(cfg host.Config) (pluginProcess, error) {
	inst, err := host.Launch(cfg)
	if err != nil {
		return nil, err
	}
	return hostProcess{inst: inst}, nil
}

// Info launches a plugin with plugins/host for its Info, and shuts it
// down gracefully (so that it removes its socket).
func (processHost) Info(ctx context.Context, cfg host.Config) (plugins.Info, error) {
	inst, err := host.Launch(cfg)
	if err != nil {
		return plugins.Info{}, err
	}
	defer inst.Kill()
	return inst.Component.Info(ctx)
}

// Reattach reattaches to a plugin with plugins/host.
func (processHost) Reattach(att host.Attachment, cfg host.Config) (pluginProcess, error) {
	inst, err := host.Reattach(att, cfg)
	if err != nil {
		return nil, err
	}
	return hostProcess{inst: inst}, nil
}

// hostProcess is a plugins/host Instance as a pluginProcess.
type hostProcess struct{ inst *host.Instance }

func (p hostProcess) Component() plugins.Component { return p.inst.Component }
func (p hostProcess) Attachment() host.Attachment  { return p.inst.Attachment }
func (p hostProcess) Exited() bool                 { return p.inst.Exited() }
func (p hostProcess) Kill()                        { p.inst.Kill() }
func (p hostProcess) KillNow()                     { p.inst.KillNow() }
func (p hostProcess) Detach()                      { p.inst.Detach() }
