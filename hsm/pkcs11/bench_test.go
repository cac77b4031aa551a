package pkcs11_test

import (
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
)

const benchKey = "custos:kek:bench:1"

func benchToken(b *testing.B) hsm.Token {
	tok := hsmtest.OpenSoftHSM(b, "bench")
	if err := tok.GenerateAESKey(benchKey); err != nil {
		b.Fatal(err)
	}
	return tok
}

func benchSealed(b *testing.B, tok hsm.Token) []byte {
	sealed, err := tok.Seal(benchKey, make([]byte, 32), []byte("aad"))
	if err != nil {
		b.Fatal(err)
	}
	return sealed
}

func benchSigner(b *testing.B, tok hsm.Token) crypto.Signer {
	s, err := tok.GenerateSigner("custos:node")
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var digest = sha256.Sum256([]byte("checkpoint"))

// BenchmarkSoftHSMSeal seals a 32-byte share with AES-256-GCM in the token.
func BenchmarkSoftHSMSeal(b *testing.B) {
	tok := benchToken(b)
	pt := make([]byte, 32)
	for b.Loop() {
		if _, err := tok.Seal(benchKey, pt, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSoftHSMOpen(b *testing.B) {
	tok := benchToken(b)
	sealed := benchSealed(b, tok)
	for b.Loop() {
		if _, err := tok.Open(benchKey, sealed, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSoftHSMSign signs a SHA-256 digest with ECDSA P-256 in the token.
func BenchmarkSoftHSMSign(b *testing.B) {
	s := benchSigner(b, benchToken(b))
	for b.Loop() {
		if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSoftHSMSealParallel(b *testing.B) {
	tok := benchToken(b)
	b.RunParallel(func(pb *testing.PB) {
		pt := make([]byte, 32)
		for pb.Next() {
			if _, err := tok.Seal(benchKey, pt, []byte("aad")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSoftHSMOpenParallel(b *testing.B) {
	tok := benchToken(b)
	sealed := benchSealed(b, tok)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tok.Open(benchKey, sealed, []byte("aad")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSoftHSMSignParallel(b *testing.B) {
	s := benchSigner(b, benchToken(b))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
