// Command extract is a finite ICE component for dispatch: each run takes
// one document as its input (ice dispatch extract --input-file doc.txt
// --meta doc=NAME) and outputs a JSON fact about it, {"doc", "text",
// "words"}, which the runtime promotes into a "fact" memory record when it
// commits the run (the component's spec declares memory "fact"). It
// reports its cost as a model would: one token per word, one request.
//
// Config: max_words (outputs at most that many words of text, default 50).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type extract struct{ maxWords int }

func (e *extract) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "extract", Version: "1.0.0", Kind: plugins.KindFinite}, nil
}

func (e *extract) Start(_ context.Context, req plugins.StartRequest) error {
	e.maxWords = 50
	if v, ok := req.Config["max_words"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("config max_words %q: want a positive integer", v)
		}
		e.maxWords = n
	}
	return nil
}

func (e *extract) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (e *extract) Execute(ctx context.Context, input string) (string, error) {
	out, words, err := extractFact(sdk.RunMeta(ctx)["doc"], input, e.maxWords)
	sdk.AddCost("tokens", uint64(words))
	sdk.AddCost("requests", 1)
	return out, err
}

func (e *extract) Stop(context.Context, time.Time) error { return nil }

// fact is extract's output.
type fact struct {
	Doc   string `json:"doc"`
	Text  string `json:"text"`
	Words int    `json:"words"`
}

// extractFact is the fact about one document and the words it read.
func extractFact(doc, input string, maxWords int) (string, int, error) {
	words := strings.Fields(input)
	if len(words) == 0 {
		return "", 0, fmt.Errorf("document %q is empty: nothing to extract", doc)
	}
	text := words[:min(len(words), maxWords)]
	b, err := json.Marshal(fact{Doc: doc, Text: strings.Join(text, " "), Words: len(words)})
	if err != nil {
		return "", len(words), fmt.Errorf("encode the fact: %w", err)
	}
	return string(b), len(words), nil
}

func main() { sdk.Serve(&extract{}) }
