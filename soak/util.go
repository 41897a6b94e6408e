package soak

import (
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func pluginRef(name string) fsm.PluginRef { return fsm.PluginRef{Name: name} }

func withName(s *api.ComponentSpec, name string) *api.ComponentSpec {
	s.Name = name
	return s
}
