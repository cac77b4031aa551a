// Benchmarks: appends (batch size x fsync), proofs on a 1e5-entry log.

package ledgerdb_test

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

// BenchmarkAppend appends b.N entries (pre-encoded; Append still parses
// each) in transactions of batch entries, with fsync on or off. ns/op is
// per entry.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 256} {
		for _, noSync := range []bool{false, true} {
			name := fmt.Sprintf("batch=%d/fsync=%v", batch, !noSync)
			b.Run(name, func(b *testing.B) {
				db, err := bbolt.Open(filepath.Join(b.TempDir(), "l.db"), 0o600, &bbolt.Options{NoSync: noSync})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				entries := sampleBytes(b, 0, uint64(b.N))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					err := db.Update(func(tx *bbolt.Tx) error {
						_, err := ledgerdb.Append(tx, entries[i:min(i+batch, b.N)]...)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

const benchLogSize = 100_000

// benchLog is a 1e5-entry log built once per process.
var benchLog = sync.OnceValues(func() (*bbolt.DB, error) {
	dir, err := os.MkdirTemp("", "ledger-bench-")
	if err != nil {
		return nil, err
	}
	db, err := bbolt.Open(filepath.Join(dir, "l.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	os.RemoveAll(dir) // the open file stays usable; nothing is left behind
	for i := uint64(0); i < benchLogSize; i += 1000 {
		entries := make([]ledger.Entry, 1000)
		for j := range entries {
			entries[j] = sampleEntry(i + uint64(j))
		}
		if err := db.Update(func(tx *bbolt.Tx) error {
			_, err := ledgerdb.AppendEntries(tx, entries...)
			return err
		}); err != nil {
			return nil, err
		}
	}
	return db, nil
})

func BenchmarkInclusionProof(b *testing.B) {
	db, err := benchLog()
	if err != nil {
		b.Fatal(err)
	}
	rnd := mrand.New(mrand.NewPCG(5, 6))
	b.Run("prove", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			err := db.View(func(tx *bbolt.Tx) error {
				_, err := ledgerdb.ProveInclusion(tx, rnd.Uint64N(benchLogSize), benchLogSize)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prove+root+entry+verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			err := db.View(func(tx *bbolt.Tx) error {
				i := rnd.Uint64N(benchLogSize)
				cp, err := ledgerdb.TreeHead(tx, testOrigin)
				if err != nil {
					return err
				}
				p, err := ledgerdb.ProveInclusion(tx, i, cp.Size)
				if err != nil {
					return err
				}
				e, err := ledgerdb.ReadEntry(tx, i)
				if err != nil {
					return err
				}
				return ledger.VerifyInclusion(cp, i, e, p)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
