package officer_test

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
)

// BenchmarkSign: one hybrid signature (classical + ML-DSA-65, hedged). officerhsm's
// BenchmarkSign has the case with the classical part inside a SoftHSM token.
func BenchmarkSign(b *testing.B) {
	for _, alg := range algs {
		b.Run(string(alg)+"+ml-dsa-65", func(b *testing.B) {
			benchSign(b, generate(b, "alice", alg))
		})
	}
}

func benchSign(b *testing.B, s *officer.Signer) {
	d := randomDigest(b)
	for b.Loop() {
		if _, err := s.Sign(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: both parts, as a ceremony checks each approval.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range algs {
		b.Run(string(alg)+"+ml-dsa-65", func(b *testing.B) {
			s := generate(b, "alice", alg)
			d := randomDigest(b)
			sig, err := s.Sign(d)
			if err != nil {
				b.Fatal(err)
			}
			pub := s.Public()
			for b.Loop() {
				if err := pub.Verify(d, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad: opening a key file, which is dominated by scrypt. default is what
// officers get (work factor 18, age's default); the test work factor is for scale.
func BenchmarkLoad(b *testing.B) {
	for _, bc := range []struct {
		name       string
		workFactor int
	}{{"default-N=2^18", 0}, {"test-N=2^10", testWorkFactor}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			if _, err := officer.Keygen(dir, officer.Config{Name: "alice", WorkFactor: bc.workFactor}, testPassphrase); err != nil {
				b.Fatal(err)
			}
			keyPath, _ := officer.KeyFiles(dir, "alice")
			for b.Loop() {
				s, err := officer.Load(keyPath, testPassphrase)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

// BenchmarkParsePublicKey: what a node does for each officer in genesis.
func BenchmarkParsePublicKey(b *testing.B) {
	enc := generate(b, "alice", officer.ECDSAP256).Public().Marshal()
	for b.Loop() {
		if _, err := officer.ParsePublicKey(enc); err != nil {
			b.Fatal(err)
		}
	}
}
