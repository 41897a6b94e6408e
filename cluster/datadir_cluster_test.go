package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataDirOfAnotherClusterIsRefused: the first secure start records the
// cluster its certificate names; a start with another cluster's
// certificate is refused with a DataDirError naming the file and both
// clusters.
func TestDataDirOfAnotherClusterIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := recordFormat(dir); err != nil {
		t.Fatal(err)
	}
	if err := checkTLSCluster(dir, "prod"); err != nil {
		t.Fatalf("first secure start: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if err != nil || !strings.Contains(string(b), `"tls_cluster":"prod"`) {
		t.Fatalf("format file after the first start: %s (%v)", b, err)
	}
	if err := checkTLSCluster(dir, "prod"); err != nil {
		t.Fatalf("same cluster again: %v", err)
	}
	err = checkTLSCluster(dir, "staging")
	var dd *DataDirError
	if !errors.As(err, &dd) || dd.File != filepath.Join(dir, formatFile) ||
		!strings.Contains(err.Error(), `"prod"`) || !strings.Contains(err.Error(), `"staging"`) || !strings.Contains(err.Error(), "new, empty data dir") {
		t.Fatalf("start with another cluster's certificate: %v", err)
	}
	if err := checkFormat(dir); err != nil {
		t.Fatalf("the format file with a cluster name no longer reads: %v", err)
	}
}
