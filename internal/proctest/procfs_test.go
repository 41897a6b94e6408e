package proctest

import (
	"os"
	"strings"
	"testing"
)

func TestStatusOfThisProcess(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("RSS = %d, %v", rss, err)
	}
	hwm, err := StatusBytes(os.Getpid(), "VmHWM")
	if err != nil || hwm < rss {
		t.Fatalf("VmHWM = %d, %v (RSS %d)", hwm, err, rss)
	}
	if _, err := StatusBytes(os.Getpid(), "Name"); err == nil || !strings.Contains(err.Error(), "not a size") {
		t.Fatalf("StatusBytes of Name: %v", err)
	}
	if _, err := StatusField(os.Getpid(), "NoSuchField"); err == nil || !strings.Contains(err.Error(), "no NoSuchField") {
		t.Fatalf("StatusField of a missing field: %v", err)
	}
	if _, err := RSS(-1); err == nil {
		t.Fatal("RSS of pid -1 succeeded")
	}
}
