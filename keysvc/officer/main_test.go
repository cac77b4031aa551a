package officer_test

import (
	"crypto/rand"
	"testing"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/officer"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// testWorkFactor keeps scrypt cheap in tests; TestDefaultWorkFactor and BenchmarkLoad
// use the real default.
const testWorkFactor = officer.MinWorkFactor

var testPassphrase = []byte("correct horse battery staple")

func generate(t testing.TB, name string, alg officer.Alg) *officer.Signer {
	t.Helper()
	s, err := officer.Generate(officer.Config{Name: name, Classical: alg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomDigest(t testing.TB) [32]byte {
	t.Helper()
	var d [32]byte
	rand.Read(d[:])
	return d
}

var algs = []officer.Alg{officer.ECDSAP256, officer.Ed25519}
