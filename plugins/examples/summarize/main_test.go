package main

import (
	"testing"

	"github.com/ice-run/ice/plugins/sdk"
)

func TestSummarizeRecords(t *testing.T) {
	out, words, err := summarizeRecords([]sdk.MemoryRecord{
		{Type: "fact", Key: "doc-b", Version: 2, Value: `{"doc":"b","words":7}`},
		{Type: "fact", Key: "doc-a", Version: 1, Value: `{"doc":"a","words":5}`},
		{Type: "fact", Key: "odd", Version: 1, Value: `not json`},
	})
	want := `{"records":3,"words":12,"docs":["a","b"],"from":["fact/doc-a@1","fact/doc-b@2","fact/odd@1"]}`
	if err != nil || words != 12 || out != want {
		t.Errorf("summary %s (%d words, %v), want %s", out, words, err, want)
	}
	if _, _, err := summarizeRecords(nil); err == nil {
		t.Error("a summary of nothing")
	}
}
