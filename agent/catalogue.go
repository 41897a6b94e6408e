package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins/host"
)

// The plugin catalogue: the plugins this node offers, with each binary's
// sha256 and the version its Info reports.
//
// The agent scans its plugin directory when it starts, then again every
// PluginScanInterval, on RescanPlugins (SIGHUP in `ice agent` and `ice
// dev`) and when a launch finds a binary changed on disk. A scan costs a
// ReadDir and a stat per file while nothing changed: a file is hashed again
// only when its identity (device, inode, size, mode, mtime, ctime) changed,
// and launched for its Info only when its sha256 is one the agent has not
// asked yet. A rescan leaves a file that changed less than PluginSettle ago
// for later (it may be half written: `go build -o` and `cp` write in place),
// keeping what the catalogue said of it until then. When the catalogue
// changes the agent registers its node again, so the runtime places by the
// new one.
//
// A binary whose Info cannot be learnt (it does not start, does not answer
// within InfoTimeout) is listed without a version, and its failure logged
// with the end of its output: the node still offers it by name and sha256
// as before versions were learnt, a spec pinning a version does not place
// here, and a run of it fails its launch with a reason that says why, where
// an operator sees it, instead of the plugin vanishing from placement
// ("no ready node has plugin x") with the cause only in this node's log. The
// failure is remembered by sha256, so a broken binary is not launched on
// every scan; RescanPlugins tries it again.

// catalogue is the set of plugins this node offers. Its methods may be
// called from any goroutine.
type catalogue struct {
	dir string

	mu      sync.RWMutex
	plugins []fsm.PluginInfo // sorted by name
	// gen counts changes of plugins.
	gen uint64
	// files is what the last scan learnt of each file, by name.
	files map[string]catFile
	// infos caches what Info said of a binary, by sha256.
	infos map[string]infoResult
	// scans counts the scans made.
	scans atomic.Uint64
}

// catFile is one plugin file as the last scan saw it.
type catFile struct {
	id   fileIdent // zero: look at the file again on the next scan
	info fsm.PluginInfo
}

// fileIdent is what must stay the same for a file to be taken as unchanged.
type fileIdent struct {
	dev, ino     uint64
	size         int64
	mode         os.FileMode
	mtime, ctime int64 // unix nanos
}

// changedAt is when the file last changed.
func (id fileIdent) changedAt() time.Time { return time.Unix(0, max(id.mtime, id.ctime)) }

// infoResult is what launching a binary for its Info gave.
type infoResult struct {
	version string
	err     string // why Info failed, "" if it did not
}

// maxCachedInfos bounds the Info cache; it is emptied when full.
const maxCachedInfos = 1024

func newCatalogue(dir string) *catalogue {
	return &catalogue{dir: dir, files: map[string]catFile{}, infos: map[string]infoResult{}}
}

// pluginEntry is a catalogue entry and the path of its binary.
type pluginEntry struct {
	fsm.PluginInfo
	path string
}

// lookup returns the catalogue's entry of a plugin.
func (c *catalogue) lookup(name string) (pluginEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range c.plugins {
		if p.Name == name {
			return pluginEntry{PluginInfo: p, path: filepath.Join(c.dir, name)}, true
		}
	}
	return pluginEntry{}, false
}

// snapshot returns the catalogue (not to be modified) and its generation.
func (c *catalogue) snapshot() ([]fsm.PluginInfo, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.plugins, c.gen
}

// scanOptions say how a scan treats files.
type scanOptions struct {
	// settle: files changed less than this ago are left for a later scan
	// (0: take every file as it is, as at start).
	settle time.Duration
	// retryFailed: launch again binaries whose Info failed before.
	retryFailed bool
}

// scanResult is what one scan found.
type scanResult struct {
	// changes describe how the catalogue changed ("+name@v sha256:…",
	// "-name", "~name sha256:a→b"); none if it did not.
	changes []string
	// deferred are the files left for later, with when they settle.
	deferred map[string]time.Time
}

// settledAt is when the last deferred file settles (zero if none).
func (r scanResult) settledAt() time.Time {
	var t time.Time
	for _, at := range r.deferred {
		if at.After(t) {
			t = at
		}
	}
	return t
}

// scan reads the plugin directory and updates the catalogue. info launches
// a binary for its Info; the caller serialises scans.
func (c *catalogue) scan(ctx context.Context, opts scanOptions, info func(ctx context.Context, name, path, sha string) (string, error)) (scanResult, error) {
	res := scanResult{deferred: map[string]time.Time{}}
	c.scans.Add(1)
	if c.dir == "" {
		return res, nil
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return res, fmt.Errorf("read plugin dir %s: %w", c.dir, err)
	}
	c.mu.RLock()
	old := c.files
	c.mu.RUnlock()
	now := time.Now()
	files := map[string]catFile{}
	var todo []string // files to hash and maybe ask for Info
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		if fsm.ValidateSpec(&fsm.Spec{Name: "x", Plugin: fsm.PluginRef{Name: e.Name()}}) != nil {
			continue // not a usable plugin name
		}
		id := identOf(fi)
		prev, known := old[e.Name()]
		switch {
		case known && prev.id == id && id != (fileIdent{}):
			files[e.Name()] = prev
		case opts.settle > 0 && now.Sub(id.changedAt()) < opts.settle:
			res.deferred[e.Name()] = id.changedAt().Add(opts.settle)
			if known {
				prev.id = fileIdent{} // changed: look again once settled
				files[e.Name()] = prev
			}
		default:
			todo = append(todo, e.Name())
			files[e.Name()] = catFile{id: id}
		}
	}
	for _, name := range todo {
		if err := c.learn(ctx, name, files, old, now, opts, info); err != nil {
			// Changed while it was hashed: as good as not settled.
			res.deferred[name] = now.Add(max(opts.settle, time.Second))
			if prev, known := old[name]; known {
				prev.id = fileIdent{}
				files[name] = prev
			} else {
				delete(files, name)
			}
		}
	}
	plugins := make([]fsm.PluginInfo, 0, len(files))
	for _, f := range files {
		plugins = append(plugins, f.info)
	}
	sort.Slice(plugins, func(i, j int) bool { return plugins[i].Name < plugins[j].Name })
	c.mu.Lock()
	defer c.mu.Unlock()
	res.changes = diffCatalogues(c.plugins, plugins)
	c.files = files
	if len(res.changes) > 0 || c.plugins == nil {
		c.plugins = plugins
		c.gen++
	}
	return res, nil
}

// learn hashes one file and finds its version, in files[name].
func (c *catalogue) learn(ctx context.Context, name string, files, old map[string]catFile, now time.Time, opts scanOptions, info func(ctx context.Context, name, path, sha string) (string, error)) error {
	path := filepath.Join(c.dir, name)
	sum, err := host.FileSHA256(path)
	if err != nil {
		return err
	}
	f := files[name]
	if now.Sub(f.id.changedAt()) < racyWindow {
		// Changed too recently for its timestamps to tell a later change
		// apart: hash it again next time (its Info is cached by sha256).
		f.id = fileIdent{}
	}
	f.info = fsm.PluginInfo{Name: name, SHA256: sum}
	if prev, ok := old[name]; ok && prev.info.SHA256 == sum {
		f.info.Version = prev.info.Version
		files[name] = f
		return nil
	}
	c.mu.RLock()
	r, cached := c.infos[sum]
	c.mu.RUnlock()
	if !cached || (r.err != "" && opts.retryFailed) {
		r = infoResult{}
		r.version, err = info(ctx, name, path, sum)
		if err != nil {
			r.err = err.Error()
		}
		if ctx.Err() == nil {
			c.mu.Lock()
			if len(c.infos) >= maxCachedInfos {
				clear(c.infos)
			}
			c.infos[sum] = r
			c.mu.Unlock()
		}
	}
	f.info.Version = r.version
	files[name] = f
	return nil
}

// racyWindow: a file changed less than this before it was hashed is hashed
// again on the next scan (as plugins/host does not cache its sum).
const racyWindow = 2 * time.Second

func identOf(fi os.FileInfo) fileIdent {
	id := fileIdent{size: fi.Size(), mode: fi.Mode(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino, id.ctime = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	return id
}

// diffCatalogues describes how the catalogue changed from old to new.
func diffCatalogues(old, new []fsm.PluginInfo) []string {
	was := map[string]fsm.PluginInfo{}
	for _, p := range old {
		was[p.Name] = p
	}
	var out []string
	for _, p := range new {
		o, ok := was[p.Name]
		delete(was, p.Name)
		switch {
		case !ok:
			out = append(out, "+"+pluginText(p))
		case o != p:
			out = append(out, "~"+pluginText(o)+" → "+pluginText(p))
		}
	}
	for _, p := range old {
		if _, gone := was[p.Name]; gone {
			out = append(out, "-"+p.Name)
		}
	}
	return out
}

// pluginText formats a catalogue entry as name@version sha256:prefix.
func pluginText(p fsm.PluginInfo) string {
	return fsm.PluginLabel(fsm.PluginRef(p))
}

// cleanVersion is the version an Info reported, if the catalogue can list
// it: printable, without spaces, at most 64 bytes.
func cleanVersion(v string) (string, error) {
	if len(v) > 64 || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", fmt.Errorf("version %q is not up to 64 printable characters without spaces", v)
	}
	return v, nil
}

// probeInfo launches a plugin binary for its Info and stops it again,
// within InfoTimeout, and returns the version it reports. Its output goes
// to DATA_DIR/catalogue/NAME.log (truncated first), which a failure quotes.
func (a *Agent) probeInfo(ctx context.Context, name, path, sha string) (string, error) {
	start := time.Now()
	logPath := filepath.Join(a.cfg.DataDir, "catalogue", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err == nil {
		_ = os.Truncate(logPath, 0)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.InfoTimeout)
	defer cancel()
	info, err := a.host.Info(ctx, host.Config{
		Path: path, SHA256: sha, LogPath: logPath,
		Logger:       a.logger.Named("plugin").With("probe", name),
		StartTimeout: a.cfg.InfoTimeout,
	})
	metrics.MeasureSince([]string{"ice", "agent", "catalogue", "probe"}, start)
	if err == nil {
		a.warm.learn(sha, info)
		info.Version, err = cleanVersion(info.Version)
	}
	if err != nil {
		metrics.IncrCounter([]string{"ice", "agent", "catalogue", "probe_failed"}, 1)
		if !strings.Contains(err.Error(), logPath) {
			err = fmt.Errorf("%w; %s", err, host.LogNote(logPath, 0))
		}
		a.logger.Warn("plugin did not report its Info; listed without a version", "plugin", name, "sha256", sha, "error", err)
		return "", err
	}
	if info.Name != "" && info.Name != name {
		a.logger.Info("plugin file name and Info name differ; the file name is the plugin name", "plugin", name, "info_name", info.Name)
	}
	a.logger.Debug("plugin info", "plugin", name, "version", info.Version, "duration", time.Since(start))
	return info.Version, nil
}

// scanPlugins lists the executable files of dir with their sha256, without
// launching any (no versions).
func scanPlugins(dir string) (*catalogue, error) {
	c := newCatalogue(dir)
	_, err := c.scan(context.Background(), scanOptions{}, func(context.Context, string, string, string) (string, error) { return "", nil })
	if err != nil {
		return nil, err
	}
	return c, nil
}
