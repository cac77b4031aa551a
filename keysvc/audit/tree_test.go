package audit_test

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// hashLog is an in-memory tlog store of canonical entries.
type hashLog struct {
	entries [][]byte
	stored  []tlog.Hash
}

func (l *hashLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.stored[x]
	}
	return out, nil
}

func (l *hashLog) add(t *testing.T, b []byte) {
	hs, err := tlog.StoredHashes(int64(len(l.entries)), b, l)
	if err != nil {
		t.Fatal(err)
	}
	l.entries = append(l.entries, b)
	l.stored = append(l.stored, hs...)
}

func testEntries(t *testing.T, n int) *hashLog {
	l := &hashLog{}
	s := newSynth(t) // for times
	for i := 0; i < n; i++ {
		b, err := ledger.Entry{Index: uint64(i), Time: s.now, Type: "kek.wrap", Actor: ledger.Actor{Identity: fmt.Sprint("a", i)},
			Outcome: ledger.OutcomeOK}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		l.add(t, b)
	}
	return l
}

func TestTreeMatchesTlog(t *testing.T) {
	const n = 300
	l := testEntries(t, n)
	var tr audit.Tree
	for size := 0; ; size++ {
		want, err := tlog.TreeHash(int64(size), l)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Size() != uint64(size) || tr.Root() != want {
			t.Fatalf("size %d: root %s, want %s", size, tr.Root(), want)
		}
		// Restarting from the frontier gives the same tree.
		if size > 0 {
			f := tr.Frontier()
			again, err := audit.NewTreeFromFrontier(uint64(size), f)
			if err != nil {
				t.Fatal(err)
			}
			for j := size; j < n && j < size+9; j++ {
				again.Add(tlog.RecordHash(l.entries[j]))
			}
			end := min(n, size+9)
			if w, _ := tlog.TreeHash(int64(end), l); again.Root() != w {
				t.Fatalf("tree resumed at %d: root at %d differs", size, end)
			}
			// The exporter's way to the frontier: the last entry's inclusion proof.
			proof, err := tlog.ProveRecord(int64(size), int64(size-1), l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := audit.FrontierFromProof(uint64(size), l.entries[size-1], proof)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(f) {
				t.Fatalf("size %d: frontier from proof %v, want %v", size, got, f)
			}
			if _, err := audit.FrontierFromProof(uint64(size), l.entries[size-1], append(proof, tlog.Hash{})); err == nil {
				t.Fatalf("size %d: a proof with an extra hash was accepted", size)
			}
		}
		if size == n {
			break
		}
		tr.Add(tlog.RecordHash(l.entries[size]))
	}
}

func TestNewTreeFromFrontierChecksCount(t *testing.T) {
	for _, c := range []struct {
		size uint64
		n    int
	}{{0, 1}, {1, 0}, {6, 1}, {6, 3}, {7, 2}, {1 << 62, 2}} {
		if _, err := audit.NewTreeFromFrontier(c.size, make([]tlog.Hash, c.n)); err == nil {
			t.Errorf("size %d with %d hashes accepted", c.size, c.n)
		}
	}
	if tr, err := audit.NewTreeFromFrontier(0, nil); err != nil || tr.Size() != 0 {
		t.Errorf("empty frontier: %v", err)
	}
	l := testEntries(t, 3)
	if _, err := audit.FrontierFromProof(3, l.entries[1], nil); err == nil {
		t.Error("FrontierFromProof accepted an entry of the wrong index")
	}
}
