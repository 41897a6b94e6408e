package main

import (
	"encoding/json"
	"testing"
)

func TestExtractFact(t *testing.T) {
	out, words, err := extractFact("d1", "  the quick brown\nfox  ", 3)
	if err != nil || words != 4 {
		t.Fatalf("extract: %v, %d words", err, words)
	}
	var f fact
	if err := json.Unmarshal([]byte(out), &f); err != nil || f != (fact{Doc: "d1", Text: "the quick brown", Words: 4}) {
		t.Errorf("fact %s (%v)", out, err)
	}
	if _, _, err := extractFact("d2", " \n", 3); err == nil {
		t.Error("an empty document made a fact")
	}
}
