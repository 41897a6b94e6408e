package jepsen

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// crashMarkers begin the lines a Go program prints when it dies of a bug.
var crashMarkers = []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"}

// CheckProcesses reports every process that exited without the harness
// asking it to (a "crash" entry of the history) and every panic, fatal
// error or data race printed in the logs (name → content).
func CheckProcesses(entries []Entry, logs map[string][]byte) *Verdict {
	v := &Verdict{Checker: "processes"}
	crashes := 0
	for _, e := range entries {
		if e.Type == TCrash {
			crashes++
			v.violate("%s exited on its own at t=%.3fs: %s", strings.Join(e.Target, ","), float64(e.Mono)/1e9, e.Detail)
		}
	}
	names := make([]string, 0, len(logs))
	for n := range logs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sc := bufio.NewScanner(bytes.NewReader(logs[n]))
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for line := 1; sc.Scan(); line++ {
			text := sc.Text()
			for _, m := range crashMarkers {
				if strings.HasPrefix(strings.TrimSpace(text), m) {
					v.violate("%s line %d: %s", n, line, truncate(text, 300))
				}
			}
		}
	}
	v.stat("unexpected_exits", crashes)
	v.stat("logs_scanned", len(logs))
	return v.finish(fmt.Sprintf("no process exited on its own; no panic, fatal error or data race in %d logs", len(logs)))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
