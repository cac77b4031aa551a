package keysvc_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// TestCheckpointRecorded: a checkpoint the leader signs is on its disk
// (DataDir/signed-checkpoint) by the time the caller has it, and a node
// added later still catches up from a snapshot past it.
func TestCheckpointRecorded(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{Configure: func(cfg *keysvc.Config) {
		cfg.Raft.TrailingLogs = 4
		cfg.Raft.SnapshotThreshold = 1 << 20
		cfg.GroupCommit.MaxEntries = 4
	}})
	appendAll(t, c.Running(), ids("a", 20))
	l := c.Leader()
	note, err := l.Checkpoint(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := verifyCheckpoint(t, l, note)
	b, err := os.ReadFile(filepath.Join(c.Config(l.Info().ID).DataDir, "signed-checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := ledger.ParseCheckpoint(b); err != nil || rec != cp {
		t.Fatalf("recorded %+v (%v), signed %+v", rec, err, cp)
	}

	for _, n := range c.Running() {
		if err := n.Snapshot(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got := appendAll(t, c.Running(), ids("b", 10))
	n4 := c.Join("n4")
	c.WaitConverged()
	checkLogged(t, n4, got)
	for _, n := range c.Running() {
		if m := n.Metrics(); m.SnapshotsRefused != 0 {
			t.Fatalf("%s refused %d snapshots", n.Info().ID, m.SnapshotsRefused)
		}
	}
	if r := n4.Metrics().Restores; r != 1 {
		t.Fatalf("new node restored %d snapshots, want 1", r)
	}
}
