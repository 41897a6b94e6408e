package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// StatusField returns the value of one field of /proc/PID/status ("Uid",
// "VmRSS", ...), blanks trimmed.
func StatusField(pid int, name string) (string, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read process status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("read process status: no %s in %s", name, path)
}

// StatusBytes returns a size field of /proc/PID/status ("VmRSS", "VmHWM",
// written in kB there) in bytes.
func StatusBytes(pid int, name string) (int64, error) {
	v, err := StatusField(pid, name)
	if err != nil {
		return 0, err
	}
	num, unit, _ := strings.Cut(v, " ")
	kb, err := strconv.ParseInt(num, 10, 64)
	if err != nil || strings.TrimSpace(unit) != "kB" {
		return 0, fmt.Errorf("read process status: %s of pid %d is %q, not a size in kB", name, pid, v)
	}
	return kb * 1024, nil
}

// RSS returns the resident set size of process pid in bytes.
func RSS(pid int) (int64, error) { return StatusBytes(pid, "VmRSS") }
