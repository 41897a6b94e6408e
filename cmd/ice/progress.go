package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressBar draws "label [#####.....] 52% 104000/200000 (45000/s)" on one
// terminal line, at most every 100ms, and finishes the line on Done.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now()}
}

func (p *progressBar) Update(done, total uint64) {
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = now
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	n := int(frac * width)
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d/%d (%.0f/s)", p.label,
		strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, done, total, rate)
}

func (p *progressBar) Done() {
	if !p.last.IsZero() {
		fmt.Fprintln(p.w)
	}
}
