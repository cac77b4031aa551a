// Shared test helpers: deterministic entries, keys and bbolt databases.

package ledger_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
)

const testOrigin = "custos.test/eu-1"

var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sampleEntry returns a deterministic entry with index i; fields vary
// with i so that different shapes (optional fields, details) occur.
func sampleEntry(i uint64) ledger.Entry {
	e := ledger.Entry{
		Index:   i,
		Time:    baseTime.Add(time.Duration(i) * 1_234_567_891 * time.Nanosecond),
		Type:    []string{"kek.unwrap", "kek.wrap", "kek.activate", "ceremony.approve"}[i%4],
		Actor:   ledger.Actor{Identity: fmt.Sprintf("agent-%d", i%7), Role: "agent", Region: "de"},
		Node:    fmt.Sprintf("node-%c", 'a'+rune(i%3)),
		Outcome: ledger.OutcomeOK,
	}
	if i%2 == 0 {
		e.KEKID, e.KEKVersion = "backups", uint32(1+i%3)
		e.RequestID = fmt.Sprintf("req-%08d", i)
	}
	if i%5 == 3 {
		e.Outcome, e.Reason = ledger.OutcomeDenied, "region \"us\" not allowed by policy"
	}
	if i%3 == 1 {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		e.Actor.CertFingerprint = fmt.Sprintf("sha256:%x", h[:8])
		e.Details = map[string]string{"blob_sha256": fmt.Sprintf("%x", h), "dataset": "hr/payroll"}
	}
	return e
}

func mustMarshal(t testing.TB, e ledger.Entry) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatalf("marshal entry %d: %v", e.Index, err)
	}
	return b
}

// sampleBytes returns the canonical bytes of sampleEntry(from) .. sampleEntry(to-1).
func sampleBytes(t testing.TB, from, to uint64) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, mustMarshal(t, sampleEntry(i)))
	}
	return out
}

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
		first, err = ledger.Append(tx, entries...)
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

// memTree is an in-memory reference tlog store.
type memTree struct{ hashes []tlog.Hash }

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memTree) add(n int64, data []byte) {
	hs, err := tlog.StoredHashes(n, data, m)
	if err != nil {
		panic(err)
	}
	m.hashes = append(m.hashes, hs...)
}

// mth is RFC 6962's Merkle Tree Hash by its recursive definition,
// independent of tlog's storage layout.
func mth(leaves [][]byte) tlog.Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return tlog.RecordHash(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(mth(leaves[:k]), mth(leaves[k:]))
}

// node is a test node's key material.
type node struct {
	name string
	ec   *ecdsa.PrivateKey
	ml   *mldsa65.PrivateKey
	key  ledger.NodeKey
}

// testNode derives a node's keys deterministically from its name.
// It panics on failure, so it may run outside a test (t == nil).
func testNode(t testing.TB, name string) node {
	if t != nil {
		t.Helper()
	}
	d := sha256.Sum256([]byte("ledger test ecdsa " + name))
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		panic(err)
	}
	seed := sha256.Sum256([]byte("ledger test ml-dsa " + name))
	mlPub, ml := mldsa65.NewKeyFromSeed(&seed)
	return node{name: name, ec: ec, ml: ml, key: ledger.NodeKey{Name: name, ECDSA: &ec.PublicKey, MLDSA: mlPub}}
}

func (n node) sign(t testing.TB, c ledger.Checkpoint) []byte {
	t.Helper()
	msg, err := ledger.SignCheckpoint(c, n.name, n.ec, n.ml)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
