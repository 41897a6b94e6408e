package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PlacementResult is what a cluster placement benchmark reported.
type PlacementResult struct {
	Benchmark string             `json:"benchmark"`
	Seconds   float64            `json:"seconds_per_op"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Line      string             `json:"line"`
}

// FindPlacementBenchmark reports whether the scheduler package (under repo)
// declares BenchmarkPlacement.
func FindPlacementBenchmark(repo string) (string, bool) {
	files, _ := filepath.Glob(filepath.Join(repo, "scheduler", "*_test.go"))
	re := regexp.MustCompile(`(?m)^func (BenchmarkPlacement\w*)\(b \*testing\.B\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1]), true
		}
	}
	return "", false
}

// RunPlacementBenchmark runs the named benchmark once (-benchtime 1x) with
// go test in repo and parses its result lines.
func RunPlacementBenchmark(goBin, repo, name string, timeout time.Duration) ([]PlacementResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := execCommand(ctx, goBin, "test", "-run", "^$", "-bench", "^"+name+"$", "-benchtime", "1x", "-count", "1", "-benchmem", "./scheduler/")
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench %s: %v: %s", name, err, tailString(string(out), 800))
	}
	var res []PlacementResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		r := PlacementResult{Benchmark: f[0], Line: line, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if f[i+1] == "ns/op" {
				r.Seconds = v / 1e9
			} else {
				r.Metrics[f[i+1]] = v
			}
		}
		res = append(res, r)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s printed no result: %s", name, tailString(string(out), 600))
	}
	return res, nil
}
