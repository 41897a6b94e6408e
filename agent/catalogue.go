package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins/host"
)

// catalogue is the set of plugins this node offers.
type catalogue struct {
	dir     string
	plugins []fsm.PluginInfo // sorted by name
}

// scanPlugins lists the executable files of dir with their sha256.
func scanPlugins(dir string) (*catalogue, error) {
	c := &catalogue{dir: dir}
	if dir == "" {
		return c, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read plugin dir %s: %w", dir, err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		if fsm.ValidateSpec(&fsm.Spec{Name: "x", Plugin: fsm.PluginRef{Name: e.Name()}}) != nil {
			continue // not a usable plugin name
		}
		sum, err := host.FileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("scan plugin dir: %w", err)
		}
		c.plugins = append(c.plugins, fsm.PluginInfo{Name: e.Name(), SHA256: sum})
	}
	sort.Slice(c.plugins, func(i, j int) bool { return c.plugins[i].Name < c.plugins[j].Name })
	return c, nil
}

// lookup returns the path and catalogue sha256 of a plugin.
func (c *catalogue) lookup(name string) (path, sha string, ok bool) {
	for _, p := range c.plugins {
		if p.Name == name {
			return filepath.Join(c.dir, name), p.SHA256, true
		}
	}
	return "", "", false
}
