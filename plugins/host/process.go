package host

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// processStart returns the start time of a process in clock ticks since
// boot (field 22 of /proc/PID/stat), which with the pid identifies the
// process across pid reuse.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat of pid %d: no command field", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(fields)+2)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse start time of pid %d: %w", pid, err)
	}
	return start, nil
}

// processExe returns the binary a process runs.
func processExe(pid int) (string, error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return "", fmt.Errorf("read exe of pid %d: %w", pid, err)
	}
	return exe, nil
}

// sameProcess checks that pid is still the process that was started from
// exe at start ticks.
func sameProcess(pid int, exe string, start uint64) error {
	got, err := processStart(pid)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	if got != start {
		return fmt.Errorf("pid %d was reused (started at %d, plugin at %d): %w", pid, got, start, ErrGone)
	}
	path, err := processExe(pid)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	if path != exe {
		return fmt.Errorf("pid %d runs %s, not %s: %w", pid, path, exe, ErrGone)
	}
	return nil
}
