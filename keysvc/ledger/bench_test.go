// Benchmarks: checkpoint signing and verification (appends and proofs are
// ledgerdb's).

package ledger_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/keysvc/ledger"
)

func benchKeys(b *testing.B) (*ecdsa.PrivateKey, *mldsa65.PrivateKey, ledger.NodeKey) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return ec, ml, ledger.NodeKey{Name: "custos.test/bench", ECDSA: &ec.PublicKey, MLDSA: mlPub}
}

func BenchmarkSignCheckpoint(b *testing.B) {
	ec, ml, _ := benchKeys(b)
	c := ledger.Checkpoint{Origin: testOrigin, Size: 123456789}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.SignCheckpoint(c, "custos.test/bench", ec, ml); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCheckpoint(b *testing.B) {
	ec, ml, key := benchKeys(b)
	c := ledger.Checkpoint{Origin: testOrigin, Size: 123456789}
	msg, err := ledger.SignCheckpoint(c, key.Name, ec, ml)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ledger.VerifyCheckpoint(msg, testOrigin, key); err != nil {
			b.Fatal(err)
		}
	}
}
