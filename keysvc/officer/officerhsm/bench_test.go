package officerhsm_test

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

// BenchmarkSign: one hybrid signature whose classical part is made inside a SoftHSM
// token (officer's BenchmarkSign has the software cases).
func BenchmarkSign(b *testing.B) {
	b.Run("pkcs11-ecdsa-p256+ml-dsa-65", func(b *testing.B) {
		_, uri := softToken(b, tokenObject)
		s, err := officerhsm.Generate(officer.Config{Name: "alice", PKCS11URI: uri})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		d := randomDigest(b)
		for b.Loop() {
			if _, err := s.Sign(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
