// Shared test helpers (from ledgertest) under the short names the tests use.

package ledger_test

import (
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/internal/ledgertest"
)

const testOrigin = ledgertest.Origin

var baseTime = ledgertest.BaseTime

type (
	memTree = ledgertest.MemTree
	node    = ledgertest.Node
)

func sampleEntry(i uint64) ledger.Entry                  { return ledgertest.SampleEntry(i) }
func mustMarshal(t testing.TB, e ledger.Entry) []byte    { return ledgertest.MustMarshal(t, e) }
func sampleBytes(t testing.TB, from, to uint64) [][]byte { return ledgertest.SampleBytes(t, from, to) }
func testNode(t testing.TB, name string) node            { return ledgertest.NewNode(t, name) }
func mth(leaves [][]byte) tlog.Hash                      { return ledgertest.MTH(leaves) }
