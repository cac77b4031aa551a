// Checkpoints of a log kept in bbolt: signed by two leaders in turn,
// verified with the proofs the store gives.

package ledgerdb_test

import (
	"errors"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

// Two leaders in turn sign checkpoints of a growing log; an auditor holding
// both nodes' keys verifies every checkpoint, the consistency between each
// pair, and inclusion of entries against whichever leader signed.
func TestCheckpointsFromTwoLeaders(t *testing.T) {
	a, b := testNode(t, "custos.test/node-a"), testNode(t, "custos.test/node-b")
	trusted := []ledger.NodeKey{a.Key, b.Key}
	db := openDB(t)
	type signed struct {
		msg    []byte
		signer string
	}
	var notes []signed
	size := uint64(0)
	for round, grow := range []uint64{1, 9, 22, 64, 3, 129} {
		appendTx(t, db, sampleBytes(t, size, size+grow)...)
		size += grow
		leader := []node{a, b}[round%2]
		view(t, db, func(tx *bbolt.Tx) error {
			cp, err := ledgerdb.TreeHead(tx, testOrigin)
			if err != nil {
				return err
			}
			notes = append(notes, signed{leader.Sign(t, cp), leader.Name})
			return nil
		})
	}
	cps := make([]ledger.Checkpoint, len(notes))
	for i, n := range notes {
		cp, signer, err := ledger.VerifyCheckpoint(n.msg, testOrigin, trusted...)
		if err != nil || signer != n.signer {
			t.Fatalf("checkpoint %d: signer %q, %v", i, signer, err)
		}
		cps[i] = cp
	}
	view(t, db, func(tx *bbolt.Tx) error {
		for i := range cps {
			for j := i; j < len(cps); j++ {
				p, err := ledgerdb.ProveConsistency(tx, cps[i].Size, cps[j].Size)
				if err != nil {
					return err
				}
				if err := ledger.VerifyConsistency(cps[i], cps[j], p); err != nil {
					t.Fatalf("consistency %d -> %d: %v", cps[i].Size, cps[j].Size, err)
				}
			}
			for _, idx := range []uint64{0, cps[i].Size / 2, cps[i].Size - 1} {
				p, err := ledgerdb.ProveInclusion(tx, idx, cps[i].Size)
				if err != nil {
					return err
				}
				entry, _ := ledgerdb.ReadEntry(tx, idx)
				if err := ledger.VerifyInclusion(cps[i], idx, entry, p); err != nil {
					t.Fatalf("inclusion of %d in %d: %v", idx, cps[i].Size, err)
				}
			}
		}
		return nil
	})
	// A fork: node b signs a different root at a size node a already signed.
	forked := cps[2]
	forked.Hash[0] ^= 1
	msg := b.Sign(t, forked)
	fork, _, err := ledger.VerifyCheckpoint(msg, testOrigin, trusted...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(cps[1], fork, mustProve(t, db, cps[1].Size, fork.Size)); !errors.Is(err, ledger.ErrInvalidProof) {
		t.Fatalf("forked checkpoint passed consistency: %v", err)
	}
}

func mustProve(t *testing.T, db *bbolt.DB, old, new uint64) (p tlog.TreeProof) {
	view(t, db, func(tx *bbolt.Tx) (err error) {
		p, err = ledgerdb.ProveConsistency(tx, old, new)
		return err
	})
	return p
}
