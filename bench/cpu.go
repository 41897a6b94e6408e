package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTicks = 100

// CPUSeconds returns the user plus system CPU time a process has used, from
// /proc/PID/stat (pid 0: this process).
func CPUSeconds(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis are plain. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read cpu time: %s: no command name", path)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu time: %s: %d fields", path, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read cpu time: %s: bad utime or stime", path)
	}
	return float64(utime+stime) / clockTicks, nil
}

// cpuMeter sums the CPU time of some processes between two readings.
type cpuMeter struct {
	pids  []int
	start []float64
}

func newCPUMeter(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: make([]float64, len(pids))}
	for i, p := range pids {
		m.start[i], _ = CPUSeconds(p)
	}
	return m
}

// seconds returns the CPU time used since newCPUMeter, or -1 when a
// process could not be read (it exited, for example).
func (m *cpuMeter) seconds() float64 {
	total := 0.0
	for i, p := range m.pids {
		now, err := CPUSeconds(p)
		if err != nil {
			return -1
		}
		total += now - m.start[i]
	}
	return total
}
