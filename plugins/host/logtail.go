package host

import (
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// What a failure's reason quotes of a plugin's log: a few lines, so that
// the reason (which is committed and shown by `ice runs`) says why the
// plugin died without carrying its whole stack.
const (
	tailLines = 5
	tailBytes = 500
	// tailRead is how much of the end of the log is read to find them.
	tailRead = 64 << 10
)

// LogSize returns the size of the log at path (0 if it does not exist), for
// LogNote to quote only what was written after it.
func LogSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogNote describes what a plugin wrote to its log at path after offset
// from, for the reason of a run whose plugin failed: "its log PATH ends: L1
// | L2 | ...", from the last line that starts a Go panic or fatal error if
// there is one (the panic message and the top of its stack), else the last
// lines; at most 5 non-blank lines and about 500 bytes. With nothing
// written: "it wrote nothing to its log PATH".
func LogNote(path string, from int64) string {
	if path == "" {
		return "it has no log"
	}
	tail := LogTail(path, from)
	if tail == "" {
		return "it wrote nothing to its log " + path
	}
	return "its log " + path + " ends: " + tail
}

// LogTail returns the lines LogNote quotes, joined by " | " ("" if none).
func LogTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(from, fi.Size()-tailRead, 0)
	if start >= fi.Size() {
		return ""
	}
	b, err := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	if err != nil {
		return ""
	}
	return tailOf(string(b))
}

// tailOf picks the lines of a log's end that LogTail returns.
func tailOf(text string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	first := max(len(lines)-tailLines, 0)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "panic: ") || strings.HasPrefix(lines[i], "fatal error: ") {
			first = i
			break
		}
	}
	lines = lines[first:min(first+tailLines, len(lines))]
	s := strings.Join(lines, " | ")
	if len(s) > tailBytes {
		cut := tailBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
