package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ice-run/ice/internal/proctest"
)

// started is every process this package started, for KillAll.
var started struct {
	sync.Mutex
	procs []*proctest.Process
}

// KillAll kills every process this package started that is still running
// (for an interrupted benchmark).
func KillAll() {
	started.Lock()
	ps := append([]*proctest.Process(nil), started.procs...)
	started.Unlock()
	for _, p := range ps {
		_ = p.Kill()
	}
}

// StartProcess starts bin with args, its output appended to dir/name.log.
// The process runs in a process group of its own, so that a Ctrl-C of the
// benchmark does not reach it before the benchmark has stopped it in
// order.
func StartProcess(bin, dir, name string, args ...string) (*proctest.Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := proctest.New(proctest.Spec{Name: name, Bin: bin, Args: args, LogPath: filepath.Join(dir, name+".log")})
	started.Lock()
	started.procs = append(started.procs, p)
	started.Unlock()
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// FreeAddrs returns n distinct loopback addresses free for TCP and UDP.
func FreeAddrs(n int) ([]string, error) { return proctest.FreeAddrs("127.0.0.1", n) }
