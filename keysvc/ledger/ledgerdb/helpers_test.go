// Shared test helpers: ledgertest's under the short names the tests use,
// and bbolt databases.

package ledgerdb_test

import (
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/internal/ledgertest"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

const testOrigin = ledgertest.Origin

type (
	memTree = ledgertest.MemTree
	node    = ledgertest.Node
)

func sampleEntry(i uint64) ledger.Entry                  { return ledgertest.SampleEntry(i) }
func mustMarshal(t testing.TB, e ledger.Entry) []byte    { return ledgertest.MustMarshal(t, e) }
func sampleBytes(t testing.TB, from, to uint64) [][]byte { return ledgertest.SampleBytes(t, from, to) }
func testNode(t testing.TB, name string) node            { return ledgertest.NewNode(t, name) }
func mth(leaves [][]byte) tlog.Hash                      { return ledgertest.MTH(leaves) }

func openDB(t testing.TB) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "ledger.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appendTx(t testing.TB, db *bbolt.DB, entries ...[]byte) uint64 {
	t.Helper()
	var first uint64
	err := db.Update(func(tx *bbolt.Tx) (err error) {
		first, err = ledgerdb.Append(tx, entries...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func view(t testing.TB, db *bbolt.DB, f func(tx *bbolt.Tx) error) {
	t.Helper()
	if err := db.View(f); err != nil {
		t.Fatal(err)
	}
}
