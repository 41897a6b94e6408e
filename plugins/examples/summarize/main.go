// Command summarize is a finite ICE component that reads memory: each run
// lists the ACTIVE records of a type (config read, default "fact"; the
// component's spec must list it in reads) through its agent and outputs a
// JSON summary of them, {"records", "words", "docs", "from"}, which the
// runtime promotes into a "summary" record whose inputs are exactly the
// versions it read. Invalidating one of those facts invalidates the
// summary. It reports one token per ten words read.
//
// Config: read (the record type to summarize).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type summarize struct{ read string }

func (s *summarize) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "summarize", Version: "1.0.0", Kind: plugins.KindFinite}, nil
}

func (s *summarize) Start(_ context.Context, req plugins.StartRequest) error {
	s.read = "fact"
	if v := req.Config["read"]; v != "" {
		s.read = v
	}
	return nil
}

func (s *summarize) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (s *summarize) Execute(ctx context.Context, _ string) (string, error) {
	records, err := sdk.ListMemory(ctx, s.read)
	if err != nil {
		return "", fmt.Errorf("read %s records: %w", s.read, err)
	}
	out, words, err := summarizeRecords(records)
	sdk.AddCost("tokens", uint64(words/10+1))
	return out, err
}

func (s *summarize) Stop(context.Context, time.Time) error { return nil }

// summary is summarize's output.
type summary struct {
	Records int      `json:"records"`
	Words   int      `json:"words"`
	Docs    []string `json:"docs"`
	// From names the record versions summarized ("fact/doc-1@2").
	From []string `json:"from"`
}

// summarizeRecords summarizes facts as extract writes them; a record of
// another shape counts without words.
func summarizeRecords(records []sdk.MemoryRecord) (string, int, error) {
	if len(records) == 0 {
		return "", 0, fmt.Errorf("no ACTIVE records to summarize")
	}
	s := summary{Records: len(records), Docs: []string{}, From: []string{}}
	for _, r := range records {
		var f struct {
			Doc   string `json:"doc"`
			Words int    `json:"words"`
		}
		if json.Unmarshal([]byte(r.Value), &f) == nil {
			s.Words += f.Words
			if f.Doc != "" {
				s.Docs = append(s.Docs, f.Doc)
			}
		}
		s.From = append(s.From, r.Ref())
	}
	sort.Strings(s.Docs)
	sort.Strings(s.From)
	b, err := json.Marshal(s)
	if err != nil {
		return "", s.Words, fmt.Errorf("encode the summary: %w", err)
	}
	return string(b), s.Words, nil
}

func main() { sdk.Serve(&summarize{}) }
