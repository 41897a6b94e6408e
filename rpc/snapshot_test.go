package rpc_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestSnapshotSaveRestoreOnAnotherCluster saves an archive on one cluster,
// refuses a corrupted copy on another, restores the good one there, and
// finds the same state digest on every server of the second cluster.
func TestSnapshotSaveRestoreOnAnotherCluster(t *testing.T) {
	a := testcluster.New(t, 3)
	la := a.WaitLeader(t)
	for i := 0; i < 10; i++ {
		sp := &api.ComponentSpec{Name: fmt.Sprintf("c%d", i), Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(0)}
		if _, err := a.Client(la).PutComponent(tctx(t), sp, nil); err != nil {
			t.Fatal(err)
		}
	}
	a.WaitConverged(t)
	_, want := la.Server.Digest()
	var archive bytes.Buffer
	if err := a.Client(a.Follower(t)).SaveSnapshot(tctx(t), &archive); err != nil {
		t.Fatalf("save through a follower: %v", err)
	}
	meta, _, _, err := cluster.ReadArchive(bytes.NewReader(archive.Bytes()), cluster.MaxSnapshotBytes)
	if err != nil {
		t.Fatalf("saved archive does not verify: %v", err)
	}
	if meta.Digest != want.String() || meta.Components != 10 {
		t.Fatalf("archive meta %+v, want digest %s and 10 components", meta, want)
	}

	b := testcluster.New(t, 3)
	lb := b.WaitLeader(t)
	if _, err := b.Client(lb).PutComponent(tctx(t), &api.ComponentSpec{Name: "old", Plugin: fsm.PluginRef{Name: "x"}, Count: intp(0)}, nil); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(archive.Bytes())
	corrupt[len(corrupt)/2] ^= 0xff
	if _, err := b.Client(lb).RestoreSnapshot(tctx(t), bytes.NewReader(corrupt)); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("restore of a corrupted archive: %v, want 400", err)
	}
	if _, err := b.Client(lb).Component(tctx(t), "old"); err != nil {
		t.Fatalf("state changed by a refused restore: %v", err)
	}
	if _, err := b.Client(b.Follower(t)).RestoreSnapshot(tctx(t), bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatalf("restore through a follower: %v", err)
	}
	b.WaitConverged(t)
	for _, n := range b.Nodes {
		if _, got := n.Server.Digest(); got != want {
			t.Fatalf("server %s digest %s after restore, want %s", n.ID, got, want)
		}
	}
	if _, err := b.Client(lb).Component(tctx(t), "old"); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("component of the replaced state still there: %v", err)
	}
}
