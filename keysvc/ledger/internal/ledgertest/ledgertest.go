// Package ledgertest holds the test helpers that ledger's and ledgerdb's
// tests share: deterministic entries, an in-memory reference tree, RFC
// 6962's Merkle Tree Hash and deterministic node keys.
package ledgertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Origin is the checkpoint origin the tests use.
const Origin = "custos.test/eu-1"

// BaseTime is the time of SampleEntry(0).
var BaseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// SampleEntry returns a deterministic entry with index i; fields vary
// with i so that different shapes (optional fields, details) occur.
func SampleEntry(i uint64) ledger.Entry {
	e := ledger.Entry{
		Index:   i,
		Time:    BaseTime.Add(time.Duration(i) * 1_234_567_891 * time.Nanosecond),
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

// MustMarshal returns e's canonical bytes or fails t.
func MustMarshal(t testing.TB, e ledger.Entry) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatalf("marshal entry %d: %v", e.Index, err)
	}
	return b
}

// SampleBytes returns the canonical bytes of SampleEntry(from) .. SampleEntry(to-1).
func SampleBytes(t testing.TB, from, to uint64) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, MustMarshal(t, SampleEntry(i)))
	}
	return out
}

// MemTree is an in-memory reference tlog store.
type MemTree struct{ hashes []tlog.Hash }

// ReadHashes implements tlog.HashReader.
func (m *MemTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

// Add stores the hashes of record n, data; n must be the tree's size.
func (m *MemTree) Add(n int64, data []byte) {
	hs, err := tlog.StoredHashes(n, data, m)
	if err != nil {
		panic(err)
	}
	m.hashes = append(m.hashes, hs...)
}

// MTH is RFC 6962's Merkle Tree Hash by its recursive definition,
// independent of tlog's storage layout.
func MTH(leaves [][]byte) tlog.Hash {
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
	return tlog.NodeHash(MTH(leaves[:k]), MTH(leaves[k:]))
}

// Node is a test node's key material.
type Node struct {
	Name string
	EC   *ecdsa.PrivateKey
	ML   *mldsa65.PrivateKey
	Key  ledger.NodeKey
}

// NewNode derives a node's keys deterministically from its name.
// It panics on failure, so it may run outside a test (t == nil).
func NewNode(t testing.TB, name string) Node {
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
	return Node{Name: name, EC: ec, ML: ml, Key: ledger.NodeKey{Name: name, ECDSA: &ec.PublicKey, MLDSA: mlPub}}
}

// Sign returns c signed by n, or fails t.
func (n Node) Sign(t testing.TB, c ledger.Checkpoint) []byte {
	t.Helper()
	msg, err := ledger.SignCheckpoint(c, n.Name, n.EC, n.ML)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
