package keysvc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/state"
)

// head returns the tree head of s's log, as Node.Checkpoint signs it.
func head(t *testing.T, s *stateDB) ledger.Checkpoint {
	t.Helper()
	var h ledger.Checkpoint
	if err := s.view(func(tx *bbolt.Tx) (err error) { h, err = ledgerdb.TreeHead(tx, ledger.Origin("test")); return err }); err != nil {
		t.Fatal(err)
	}
	return h
}

// editSnapshot returns snap (a state database) changed by fn.
func editSnapshot(t *testing.T, snap []byte, fn func(tx *bbolt.Tx) error) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(path, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fingerprint is what a refused snapshot must not change: the replicated
// state, the applied index and the bytes of state.db.
type fingerprint struct {
	state   [32]byte
	applied uint64
	file    [32]byte
}

func fingerprintOf(t *testing.T, s *stateDB) fingerprint {
	t.Helper()
	b, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	return fingerprint{state: digest(t, s), applied: s.applied.Load(), file: sha256.Sum256(b)}
}

// mustRefuse restores snap into s and checks it is refused with a reason
// containing why, and that s is unchanged.
func mustRefuse(t *testing.T, s *stateDB, snap []byte, why string) {
	t.Helper()
	before, refused := fingerprintOf(t, s), s.m.snapshotsRefused.Load()
	err := s.Restore(bytes.NewReader(snap))
	if !errors.Is(err, ErrSnapshotRefused) || !strings.Contains(err.Error(), why) {
		t.Fatalf("restore: %v, want ErrSnapshotRefused (%s)", err, why)
	}
	if fingerprintOf(t, s) != before || s.brokenErr() != nil {
		t.Fatal("a refused snapshot changed the state")
	}
	if s.m.snapshotsRefused.Load() != refused+1 || s.m.restores.Load() != 0 {
		t.Fatalf("refusals %d (was %d), restores %d", s.m.snapshotsRefused.Load(), refused, s.m.restores.Load())
	}
	if _, err := os.Stat(s.path + ".restore"); !os.IsNotExist(err) {
		t.Fatalf("refused snapshot left behind: %v", err)
	}
}

// reopen closes s and opens the state in its directory again, without
// state.db if lose is set (the node lost its database, not its directory).
func reopen(t *testing.T, s *stateDB, lose bool) *stateDB {
	t.Helper()
	dir := filepath.Dir(s.path)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if lose {
		if err := os.Remove(s.path); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := openStateDB(dir, true, discard(), newCounters())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.close() })
	return s2
}

// TestSnapshotRefusedOlderState: issue 12's snapshot, made from an older
// state (a removed node's, edited to look current and further applied),
// is refused by a node whose log is longer, and by a node that lost its
// database but had signed a later checkpoint.
func TestSnapshotRefusedOlderState(t *testing.T) {
	cmds := script(t)
	src := newTestState(t)
	run(t, src, cmds[:8], 1)
	snapOld := snapshotBytes(t, src)
	run(t, src, cmds[8:], 9)
	snapNew := snapshotBytes(t, src)
	forged := editSnapshot(t, snapOld, func(tx *bbolt.Tx) error {
		return state.MarkApplied(tx, 1000)
	})

	n := newTestState(t)
	run(t, n, cmds, 1)
	signed := head(t, n)
	if err := n.recordSigned(signed); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, n, forged, "shorter than this node's")

	// The record survives the loss of state.db.
	n = reopen(t, n, true)
	if !n.hasSigned || n.signed != signed {
		t.Fatalf("signed checkpoint after reopen: %v %+v, want %+v", n.hasSigned, n.signed, signed)
	}
	mustRefuse(t, n, forged, "shorter than the checkpoint this node signed")
	mustRefuse(t, n, snapOld, "shorter than the checkpoint this node signed")

	// The leader's current snapshot still restores it.
	if err := n.Restore(bytes.NewReader(snapNew)); err != nil {
		t.Fatal(err)
	}
	if digest(t, n) != digest(t, src) || n.m.restores.Load() != 1 {
		t.Fatal("honest snapshot not restored")
	}
}

// TestSnapshotRefusedDiverging: a snapshot whose log has the node's size
// (or the signed checkpoint's) but another root is refused.
func TestSnapshotRefusedDiverging(t *testing.T) {
	cmds := script(t)
	honest, other := newTestState(t), newTestState(t)
	run(t, honest, cmds[:8], 1)
	run(t, other, cmds[:7], 1)
	run(t, other, [][]byte{appendCmd(t, t0.Add(6e9), "z1", "z2", "z3")}, 8)
	if h, o := head(t, honest), head(t, other); h.Size != o.Size || h.Hash == o.Hash {
		t.Fatalf("test setup: heads %+v and %+v", h, o)
	}
	snapOther := snapshotBytes(t, other)
	ahead := editSnapshot(t, snapOther, func(tx *bbolt.Tx) error {
		return state.MarkApplied(tx, 9)
	})

	n := newTestState(t)
	run(t, n, cmds[:8], 1)
	mustRefuse(t, n, snapOther, "diverges from this node's")
	mustRefuse(t, n, ahead, "does not extend this node's")

	// Signed, then lost its database: only the record can tell.
	if err := n.recordSigned(head(t, n)); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n, true)
	mustRefuse(t, n, ahead, "contradicts the checkpoint this node signed")

	if err := n.Restore(bytes.NewReader(snapshotBytes(t, honest))); err != nil {
		t.Fatal(err)
	}
	if digest(t, n) != digest(t, honest) {
		t.Fatal("honest snapshot not restored")
	}
}

// TestSnapshotCatchUpAfterSigning: a node behind the leader, which signed
// a checkpoint earlier, and a brand-new node both install the leader's
// snapshot; another cluster's snapshot is refused.
func TestSnapshotCatchUpAfterSigning(t *testing.T) {
	cmds := script(t)
	src := newTestState(t)
	run(t, src, cmds, 1)
	snap := snapshotBytes(t, src)

	lag := newTestState(t)
	run(t, lag, cmds[:8], 1)
	if err := lag.recordSigned(head(t, lag)); err != nil {
		t.Fatal(err)
	}
	if err := lag.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if digest(t, lag) != digest(t, src) || lag.m.restores.Load() != 1 || lag.m.snapshotsRefused.Load() != 0 {
		t.Fatal("lagging node not restored")
	}
	// It signs again, further on; the record only moves forward.
	if err := lag.recordSigned(head(t, lag)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := loadSigned(filepath.Dir(lag.path)); err != nil || got != head(t, lag) {
		t.Fatalf("record %+v, %v; want %+v", got, err, head(t, lag))
	}

	fresh := newTestState(t)
	if err := fresh.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if digest(t, fresh) != digest(t, src) {
		t.Fatal("new node not restored")
	}

	foreign := editSnapshot(t, snap, func(tx *bbolt.Tx) error {
		return errors.Join(tx.Bucket([]byte("meta")).Put([]byte("cluster"), []byte("other")),
			state.MarkApplied(tx, 1000))
	})
	behind := newTestState(t)
	run(t, behind, cmds[:8], 1)
	mustRefuse(t, behind, foreign, `of cluster "other"`)
}

// TestRecordSignedRefusesContradiction: a node does not sign a head that
// contradicts the checkpoint it signed before.
func TestRecordSignedRefusesContradiction(t *testing.T) {
	cmds := script(t)
	s := newTestState(t)
	run(t, s, cmds[:8], 1)
	old := head(t, s)
	run(t, s, cmds[8:], 9)
	if err := s.recordSigned(head(t, s)); err != nil {
		t.Fatal(err)
	}
	if err := s.recordSigned(head(t, s)); err != nil {
		t.Fatalf("same head again: %v", err)
	}
	if err := s.recordSigned(old); err == nil {
		t.Fatal("signed a head shorter than the recorded one")
	}
	other := newTestState(t)
	run(t, other, cmds[:7], 1)
	run(t, other, [][]byte{appendCmd(t, t0.Add(6e9), "z1", "z2", "z3", "z4", "z5")}, 8)
	if err := other.recordSigned(head(t, other)); err != nil {
		t.Fatal(err)
	}
	// Its record now sits beside s's database, whose log differs at that size.
	b, err := os.ReadFile(filepath.Join(filepath.Dir(other.path), signedFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(s.path), signedFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, false)
	if head(t, other).Size > head(t, s).Size {
		t.Fatalf("test setup: other's log (%d) longer than s's (%d)", head(t, other).Size, head(t, s).Size)
	}
	if err := s.recordSigned(head(t, s)); err == nil || !strings.Contains(err.Error(), "contradicts") {
		t.Fatalf("signed a head contradicting the record: %v", err)
	}
}
