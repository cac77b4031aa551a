// The bbolt-backed tree: roots against independent references,
// determinism across transaction boundaries, proofs, reads and errors.

package ledgerdb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

func TestRootsMatchReference(t *testing.T) {
	const n = 300
	db := openDB(t)
	leaves := sampleBytes(t, 0, n)
	ref := &memTree{}
	for i, b := range leaves {
		if first := appendTx(t, db, b); first != uint64(i) {
			t.Fatalf("Append returned %d, want %d", first, i)
		}
		ref.Add(int64(i), b)
	}
	view(t, db, func(tx *bbolt.Tx) error {
		if size, err := ledgerdb.Size(tx); err != nil || size != n {
			t.Fatalf("Size = %d, %v; want %d", size, err, n)
		}
		for s := 0; s <= n; s++ {
			got, err := ledgerdb.Root(tx, uint64(s))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := tlog.TreeHash(int64(s), ref)
			if got != want || got != mth(leaves[:s]) {
				t.Fatalf("Root(%d) = %v, want %v", s, got, want)
			}
		}
		for i, b := range leaves {
			h, err := ledgerdb.LeafHash(tx, uint64(i))
			if err != nil || h != tlog.RecordHash(b) {
				t.Fatalf("LeafHash(%d) = %v, %v", i, h, err)
			}
		}
		return nil
	})
}

// dump returns every key and value under the ledger bucket, nested
// buckets included, as one string.
func dump(t *testing.T, db *bbolt.DB) string {
	var buf bytes.Buffer
	var walk func(b *bbolt.Bucket, path string)
	walk = func(b *bbolt.Bucket, path string) {
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				walk(b.Bucket(k), path+"/"+string(k))
				return nil
			}
			fmt.Fprintf(&buf, "%s %x %x\n", path, k, v)
			return nil
		})
	}
	view(t, db, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(ledgerdb.BucketName))
		if b == nil {
			t.Fatal("no ledger bucket")
		}
		walk(b, ledgerdb.BucketName)
		return nil
	})
	return buf.String()
}

func TestAppendDeterministic(t *testing.T) {
	const n = 200
	leaves := sampleBytes(t, 0, n)

	one := openDB(t) // one entry per transaction
	for _, b := range leaves {
		appendTx(t, one, b)
	}
	all := openDB(t) // all in one
	appendTx(t, all, leaves...)
	mixed := openDB(t) // random batches, through AppendEntries
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; {
		k := min(n-i, 1+rnd.IntN(40))
		batch := make([]ledger.Entry, k)
		for j := range batch {
			batch[j] = sampleEntry(uint64(i + j))
			batch[j].Index = 0 // AppendEntries assigns it
		}
		err := mixed.Update(func(tx *bbolt.Tx) error {
			first, err := ledgerdb.AppendEntries(tx, batch...)
			if err == nil && first != uint64(i) {
				t.Errorf("AppendEntries first = %d, want %d", first, i)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		i += k
	}

	d := dump(t, one)
	if d != dump(t, all) || d != dump(t, mixed) {
		t.Fatal("stored keys and values depend on transaction boundaries")
	}
	var roots [3]tlog.Hash
	for i, db := range []*bbolt.DB{one, all, mixed} {
		view(t, db, func(tx *bbolt.Tx) (err error) {
			roots[i], err = ledgerdb.Root(tx, n)
			return err
		})
	}
	if roots[0] != roots[1] || roots[0] != roots[2] || roots[0] != mth(leaves) {
		t.Fatalf("roots differ: %v", roots)
	}
}

func TestLargeLog(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	db := openDB(t)
	ref := &memTree{}
	const batch = 1000
	for i := 0; i < n; i += batch {
		bs := sampleBytes(t, uint64(i), uint64(i+batch))
		appendTx(t, db, bs...)
		for j, b := range bs {
			ref.Add(int64(i+j), b)
		}
	}
	want, _ := tlog.TreeHash(int64(n), ref)
	view(t, db, func(tx *bbolt.Tx) error {
		cp, err := ledgerdb.TreeHead(tx, testOrigin)
		if err != nil {
			return err
		}
		if cp.Size != uint64(n) || cp.Hash != want {
			t.Fatalf("TreeHead = %+v, want size %d root %v", cp, n, want)
		}
		rnd := rand.New(rand.NewPCG(3, 4))
		for range 50 {
			i := rnd.Uint64N(uint64(n))
			p, err := ledgerdb.ProveInclusion(tx, i, cp.Size)
			if err != nil {
				return err
			}
			entry, err := ledgerdb.ReadEntry(tx, i)
			if err != nil {
				return err
			}
			if err := ledger.VerifyInclusion(cp, i, entry, p); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			old := 1 + rnd.Uint64N(cp.Size)
			oldRoot, _ := ledgerdb.Root(tx, old)
			tp, err := ledgerdb.ProveConsistency(tx, old, cp.Size)
			if err != nil {
				return err
			}
			if err := ledger.VerifyConsistency(ledger.Checkpoint{Origin: testOrigin, Size: old, Hash: oldRoot}, cp, tp); err != nil {
				t.Fatalf("consistency %d -> %d: %v", old, cp.Size, err)
			}
		}
		return nil
	})
}

func TestProofsAllPairs(t *testing.T) {
	const n = 33
	db := openDB(t)
	leaves := sampleBytes(t, 0, n)
	appendTx(t, db, leaves...)
	view(t, db, func(tx *bbolt.Tx) error {
		cps := make([]ledger.Checkpoint, n+1)
		for s := range cps {
			h, err := ledgerdb.Root(tx, uint64(s))
			if err != nil {
				return err
			}
			cps[s] = ledger.Checkpoint{Origin: testOrigin, Size: uint64(s), Hash: h}
		}
		for s := uint64(1); s <= n; s++ {
			cp := cps[s]
			for i := range s {
				p, err := ledgerdb.ProveInclusion(tx, i, s)
				if err != nil {
					return err
				}
				if err := ledger.VerifyInclusion(cp, i, leaves[i], p); err != nil {
					t.Fatalf("inclusion %d in %d: %v", i, s, err)
				}
				// Tampered entry: same index, another reason.
				e := sampleEntry(i)
				e.Reason = "tampered"
				mustFail(t, "tampered entry", ledger.VerifyInclusion(cp, i, mustMarshal(t, e), p))
				// Entry from elsewhere in the log.
				other := (i + 1) % s
				if other != i {
					mustFail(t, "wrong index", ledger.VerifyInclusion(cp, other, leaves[i], p))
				}
				// Tampered proof hash.
				for k := range p {
					q := append(tlog.RecordProof(nil), p...)
					q[k][k%32] ^= 1
					mustFail(t, "tampered proof", ledger.VerifyInclusion(cp, i, leaves[i], q))
				}
				// Wrong size or root.
				// The proof checked against the real checkpoint of another size.
				if s < n {
					mustFail(t, "bigger size", ledger.VerifyInclusion(cps[s+1], i, leaves[i], p))
				}
				if s > 1 {
					mustFail(t, "other root", ledger.VerifyInclusion(cps[s-1], i%(s-1), leaves[i], p))
				}
				mustFail(t, "extra hash", ledger.VerifyInclusion(cp, i, leaves[i], append(p, cp.Hash)))
			}
			mustFail(t, "index = size", ledger.VerifyInclusion(cp, s, leaves[0], nil))
		}
		for newSize := uint64(0); newSize <= n; newSize++ {
			for old := uint64(0); old <= newSize; old++ {
				p, err := ledgerdb.ProveConsistency(tx, old, newSize)
				if err != nil {
					return err
				}
				if err := ledger.VerifyConsistency(cps[old], cps[newSize], p); err != nil {
					t.Fatalf("consistency %d -> %d: %v", old, newSize, err)
				}
				for k := range p {
					q := append(tlog.TreeProof(nil), p...)
					q[k][0] ^= 0x80
					mustFail(t, "tampered proof", ledger.VerifyConsistency(cps[old], cps[newSize], q))
				}
				if old > 0 {
					bad := cps[old]
					bad.Hash[31] ^= 1
					mustFail(t, "tampered old root", ledger.VerifyConsistency(bad, cps[newSize], p))
					if old < newSize {
						mustFail(t, "reversed", ledger.VerifyConsistency(cps[newSize], cps[old], p))
						mustFail(t, "wrong old size", ledger.VerifyConsistency(cps[old-1], cps[newSize], p))
					}
				}
				if old > 0 { // anything extends the empty tree
					bad := cps[newSize]
					bad.Hash[0] ^= 1
					mustFail(t, "tampered new root", ledger.VerifyConsistency(cps[old], bad, p))
				}
				other := cps[newSize]
				other.Origin = "custos.test/other"
				mustFail(t, "other origin", ledger.VerifyConsistency(cps[old], other, p))
			}
		}
		return nil
	})
}

func mustFail(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ledger.ErrInvalidProof) {
		t.Fatalf("%s: err = %v, want ErrInvalidProof", what, err)
	}
}

func TestAppendRejectsLeavesTxUnchanged(t *testing.T) {
	db := openDB(t)
	appendTx(t, db, sampleBytes(t, 0, 3)...)
	before := dump(t, db)
	good := mustMarshal(t, sampleEntry(3))
	cases := map[string]struct {
		entries [][]byte
		want    any
	}{
		"wrong index":       {[][]byte{mustMarshal(t, sampleEntry(4))}, ledger.ErrIndexMismatch},
		"reused index":      {[][]byte{good, good}, ledger.ErrIndexMismatch},
		"non-canonical":     {[][]byte{append(bytes.Clone(good), '\n')}, new(*ledger.ParseError)},
		"garbage after one": {[][]byte{good, []byte("{}")}, new(*ledger.ParseError)},
	}
	for name, c := range cases {
		err := db.Update(func(tx *bbolt.Tx) error {
			_, err := ledgerdb.Append(tx, c.entries...)
			return err
		})
		switch want := c.want.(type) {
		case error:
			if !errors.Is(err, want) {
				t.Errorf("%s: err = %v, want %v", name, err, want)
			}
		case **ledger.ParseError:
			if !errors.As(err, want) {
				t.Errorf("%s: err = %v, want *ParseError", name, err)
			}
		}
		if dump(t, db) != before {
			t.Fatalf("%s: rejected append changed the store", name)
		}
	}
	// AppendEntries with a bad entry.
	bad := sampleEntry(0)
	bad.Outcome = "?"
	err := db.Update(func(tx *bbolt.Tx) error {
		_, err := ledgerdb.AppendEntries(tx, sampleEntry(0), bad)
		return err
	})
	var pe *ledger.ParseError
	if !errors.As(err, &pe) || dump(t, db) != before {
		t.Fatalf("AppendEntries with a bad entry: %v", err)
	}
	// Read-only transaction.
	err = db.View(func(tx *bbolt.Tx) error {
		_, err := ledgerdb.Append(tx, good)
		return err
	})
	if !errors.Is(err, bbolt.ErrTxNotWritable) {
		t.Fatalf("Append in a read-only tx: %v", err)
	}
}

// Append must copy its input: bbolt keeps value slices until commit.
func TestAppendCopiesInput(t *testing.T) {
	db := openDB(t)
	buf := mustMarshal(t, sampleEntry(0))
	want := bytes.Clone(buf)
	err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := ledgerdb.Append(tx, buf); err != nil {
			return err
		}
		for i := range buf {
			buf[i] = 'x'
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx *bbolt.Tx) error {
		got, err := ledgerdb.ReadEntry(tx, 0)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadEntry(0) = %s, %v", got, err)
		}
		return nil
	})
}

func TestReads(t *testing.T) {
	db := openDB(t)
	view(t, db, func(tx *bbolt.Tx) error { // empty: no bucket yet
		size, err := ledgerdb.Size(tx)
		root, err2 := ledgerdb.Root(tx, 0)
		if size != 0 || err != nil || err2 != nil || root != mth(nil) {
			t.Fatalf("empty log: size %d root %v errs %v %v", size, root, err, err2)
		}
		if _, err := ledgerdb.ReadEntry(tx, 0); !errors.Is(err, ledger.ErrIndexOutOfRange) {
			t.Fatalf("ReadEntry on empty log: %v", err)
		}
		if p, err := ledgerdb.ProveConsistency(tx, 0, 0); err != nil || len(p) != 0 {
			t.Fatalf("ProveConsistency(0, 0) = %v, %v", p, err)
		}
		return nil
	})
	const n = 57
	leaves := sampleBytes(t, 0, n)
	appendTx(t, db, leaves...)
	view(t, db, func(tx *bbolt.Tx) error {
		for _, limit := range []int{1, 7, 56, 57, 100} {
			var got [][]byte
			for start := uint64(0); start < n; start += uint64(limit) {
				page, err := ledgerdb.ReadEntries(tx, start, limit)
				if err != nil {
					return err
				}
				if len(page) != min(limit, n-int(start)) {
					t.Fatalf("page at %d limit %d has %d entries", start, limit, len(page))
				}
				got = append(got, page...)
			}
			for i := range leaves {
				if !bytes.Equal(got[i], leaves[i]) {
					t.Fatalf("limit %d: entry %d differs", limit, i)
				}
			}
		}
		if page, err := ledgerdb.ReadEntries(tx, n, 10); err != nil || len(page) != 0 {
			t.Fatalf("ReadEntries at end = %d entries, %v", len(page), err)
		}
		outOfRange := map[string]error{}
		_, outOfRange["ReadEntries past end"] = ledgerdb.ReadEntries(tx, n+1, 10)
		_, outOfRange["ReadEntries limit 0"] = ledgerdb.ReadEntries(tx, 0, 0)
		_, outOfRange["ReadEntry(size)"] = ledgerdb.ReadEntry(tx, n)
		_, outOfRange["LeafHash(size)"] = ledgerdb.LeafHash(tx, n)
		_, outOfRange["Root(size+1)"] = ledgerdb.Root(tx, n+1)
		_, outOfRange["ProveInclusion(i=size)"] = ledgerdb.ProveInclusion(tx, 5, 5)
		_, outOfRange["ProveInclusion(size+1)"] = ledgerdb.ProveInclusion(tx, 0, n+1)
		_, outOfRange["ProveConsistency old>new"] = ledgerdb.ProveConsistency(tx, 6, 5)
		_, outOfRange["ProveConsistency new>size"] = ledgerdb.ProveConsistency(tx, 1, n+1)
		for name, err := range outOfRange {
			if !errors.Is(err, ledger.ErrIndexOutOfRange) {
				t.Errorf("%s: err = %v, want ErrIndexOutOfRange", name, err)
			}
		}
		return nil
	})
}

func TestCorruptStoreDetected(t *testing.T) {
	db := openDB(t)
	appendTx(t, db, sampleBytes(t, 0, 8)...)
	err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(ledgerdb.BucketName)).Bucket([]byte("hashes")).Delete(binary.BigEndian.AppendUint64(nil, uint64(tlog.StoredHashIndex(3, 0))))
	})
	if err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx *bbolt.Tx) error {
		if _, err := ledgerdb.Root(tx, 8); !errors.Is(err, ledger.ErrCorrupt) {
			t.Fatalf("Root over a missing hash: %v, want ErrCorrupt", err)
		}
		return nil
	})
}

// Memory must not grow with the log: nothing per entry is kept in memory.
// (A slice of all stored hashes would add 64 bytes per entry, 5 MB here.)
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 100k entries")
	}
	db := openDB(t)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var start uint64
	for i := uint64(0); i < 100_000; i += 1000 {
		if i == 20_000 {
			start = heap()
		}
		es := make([]ledger.Entry, 1000)
		for j := range es {
			es[j] = sampleEntry(i + uint64(j))
		}
		if err := db.Update(func(tx *bbolt.Tx) error { _, err := ledgerdb.AppendEntries(tx, es...); return err }); err != nil {
			t.Fatal(err)
		}
	}
	view(t, db, func(tx *bbolt.Tx) error {
		_, err := ledgerdb.Root(tx, 100_000)
		return err
	})
	if end := heap(); end > start+2<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 80k appends", start, end)
	}
}
