// The known-answer vectors of ../testdata/vectors.json against the stored
// tree: the vector entries appended to bbolt give the vector roots and
// proofs. ledger's TestVectors checks the rest of the file.

package ledgerdb_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

func TestVectors(t *testing.T) {
	var v struct {
		Entries []struct {
			Entry string `json:"entry"`
		} `json:"entries"`
		Roots []struct {
			Size uint64 `json:"size"`
			Hash string `json:"hash"`
		} `json:"roots"`
		InclusionProof   string `json:"inclusion_proof"`
		ConsistencyProof string `json:"consistency_proof"`
	}
	data, err := os.ReadFile("../testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Entries) == 0 || len(v.Roots) == 0 {
		t.Fatal("vectors.json is incomplete")
	}
	var raws [][]byte
	for _, ev := range v.Entries {
		raws = append(raws, []byte(ev.Entry))
	}
	db := openDB(t)
	appendTx(t, db, raws...)
	ip, err := ledger.ParseInclusionProof([]byte(v.InclusionProof))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.ParseConsistencyProof([]byte(v.ConsistencyProof))
	if err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx *bbolt.Tx) error {
		for _, rv := range v.Roots {
			h, err := ledgerdb.Root(tx, rv.Size)
			if err != nil {
				return err
			}
			if got := base64.StdEncoding.EncodeToString(h[:]); got != rv.Hash {
				t.Fatalf("root at %d: %s, want %s", rv.Size, got, rv.Hash)
			}
		}
		hashes, err := ledgerdb.ProveInclusion(tx, ip.Index, ip.Size)
		if err != nil {
			return err
		}
		if got, _ := json.Marshal(ledger.InclusionProof{Index: ip.Index, Size: ip.Size, Hashes: hashes}); string(got) != v.InclusionProof {
			t.Fatalf("inclusion proof %s, want %s", got, v.InclusionProof)
		}
		tree, err := ledgerdb.ProveConsistency(tx, cp.Old, cp.New)
		if err != nil {
			return err
		}
		if got, _ := json.Marshal(ledger.ConsistencyProof{Old: cp.Old, New: cp.New, Hashes: tree}); string(got) != v.ConsistencyProof {
			t.Fatalf("consistency proof %s, want %s", got, v.ConsistencyProof)
		}
		return nil
	})
}
