// Known-answer vectors in testdata/vectors.json. Run with -args -update to
// regenerate them; otherwise every vector is checked against this package: keys from fixed
// seeds must give exactly the recorded bundle and fingerprint, the recorded
// signatures must verify (or not) as recorded, and the recorded malformed
// encodings must be refused at the recorded field.

package officer_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/custos-eu/custos/internal/testvectors"
	"github.com/custos-eu/custos/keysvc/officer"
)

const vectorsPath = "testdata/vectors.json"

type vectorFile struct {
	Comment    []string          `json:"comment"`
	Keys       []keyVector       `json:"keys"`
	Signatures []signatureVector `json:"signatures"`
	Invalid    []invalidVector   `json:"invalid"`
}

// keyVector: the key built from these seeds has exactly this bundle and fingerprint.
type keyVector struct {
	Name          string          `json:"name"`
	Officer       string          `json:"officer"`
	Classical     officer.Alg     `json:"classical"`
	ClassicalSeed testvectors.Hex `json:"classical_seed"`
	MLDSA65Seed   testvectors.Hex `json:"mldsa65_seed"`
	XWingSeed     testvectors.Hex `json:"xwing_seed"`
	PublicKey     string          `json:"public_key"`
	Fingerprint   string          `json:"fingerprint"`
}

// signatureVector: Signature parses, and verifies over Digest under key Key iff Valid.
type signatureVector struct {
	Name      string          `json:"name"`
	Key       string          `json:"key"`
	Digest    testvectors.Hex `json:"digest"`
	Signature string          `json:"signature"`
	Valid     bool            `json:"valid"`
}

// invalidVector: Input is refused by the parser of Kind with a *ParseError at Field.
type invalidVector struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // "public key" or "signature"
	Input string `json:"input"`
	Field string `json:"field"`
}

func TestVectors(t *testing.T) {
	if testvectors.Updating() {
		testvectors.Write(t, vectorsPath, generateVectors(t))
	}
	vf := readVectors(t)
	if len(vf.Keys) < 2 || len(vf.Signatures) < 4 || len(vf.Invalid) < 4 {
		t.Fatal("vector file has too few vectors")
	}
	keys := map[string]*officer.PublicKey{}
	for _, v := range vf.Keys {
		t.Run("key/"+v.Name, func(t *testing.T) {
			s, err := officer.NewFromSeeds(v.Officer, v.Classical, v.ClassicalSeed, v.MLDSA65Seed, v.XWingSeed)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := string(s.Public().Marshal()); got != v.PublicKey {
				t.Fatalf("bundle from seeds:\n got %s\nwant %s", got, v.PublicKey)
			}
			if got := s.Public().Fingerprint(); got != v.Fingerprint {
				t.Fatalf("fingerprint %s, want %s", got, v.Fingerprint)
			}
			sum := sha256.Sum256([]byte(v.PublicKey))
			if v.Fingerprint != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Fatal("recorded fingerprint is not SHA-256 of the recorded bundle")
			}
			pub, err := officer.ParsePublicKey([]byte(v.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			keys[v.Name] = pub
			crossCheck(t, v, pub)
		})
	}
	for _, v := range vf.Signatures {
		t.Run("signature/"+v.Name, func(t *testing.T) {
			pub := keys[v.Key]
			if pub == nil {
				t.Fatalf("unknown key %q", v.Key)
			}
			sig, err := officer.ParseSignature([]byte(v.Signature))
			if err != nil {
				t.Fatal(err)
			}
			if string(sig.Marshal()) != v.Signature {
				t.Fatal("signature does not re-encode to itself")
			}
			err = pub.Verify([32]byte(v.Digest), sig)
			if v.Valid && err != nil {
				t.Fatalf("recorded signature does not verify: %v", err)
			}
			if !v.Valid && !errors.Is(err, officer.ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
	for _, v := range vf.Invalid {
		t.Run("invalid/"+v.Name, func(t *testing.T) {
			var err error
			switch v.Kind {
			case "public key":
				_, err = officer.ParsePublicKey([]byte(v.Input))
			case "signature":
				_, err = officer.ParseSignature([]byte(v.Input))
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
			var perr *officer.ParseError
			if !errors.As(err, &perr) || perr.Format != v.Kind || perr.Field != v.Field {
				t.Fatalf("got %v, want a %s *ParseError at field %q", err, v.Kind, v.Field)
			}
		})
	}
}

// crossCheck derives the classical and X-Wing public keys from the vector's seeds
// with the standard library (crypto/ecdh, crypto/ed25519, crypto/hpke), independently
// of this package and of circl.
func crossCheck(t *testing.T, v keyVector, pub *officer.PublicKey) {
	t.Helper()
	var classical []byte
	switch v.Classical {
	case officer.ECDSAP256:
		k, err := ecdh.P256().NewPrivateKey(v.ClassicalSeed)
		if err != nil {
			t.Fatal(err)
		}
		classical = k.PublicKey().Bytes()
		if got, _ := pub.ClassicalKey().(*ecdsa.PublicKey).Bytes(); !bytes.Equal(got, classical) {
			t.Fatal("P-256 public key differs from crypto/ecdh's")
		}
	case officer.Ed25519:
		classical = ed25519.NewKeyFromSeed(v.ClassicalSeed).Public().(ed25519.PublicKey)
		if !bytes.Equal(pub.ClassicalKey().(ed25519.PublicKey), classical) {
			t.Fatal("Ed25519 public key differs")
		}
	}
	xk, err := hpke.MLKEM768X25519().NewPrivateKey(v.XWingSeed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.XWingKey(), xk.PublicKey().Bytes()) {
		t.Fatal("X-Wing public key differs from crypto/hpke's MLKEM768X25519")
	}
}

// readVectors decodes the vector file, failing on any field the harness does not know.
func readVectors(t *testing.T) vectorFile {
	t.Helper()
	var vf vectorFile
	testvectors.Load(t, vectorsPath, &vf)
	return vf
}

// seed derives a fixed 32-byte seed from a label.
func seed(label string) []byte {
	s := sha256.Sum256([]byte("custos officer test vector: " + label))
	return s[:]
}

func generateVectors(t *testing.T) vectorFile {
	vf := vectorFile{Comment: []string{
		"Known-answer vectors for package officer (keysvc/officer); regenerate with go test -run TestVectors ./keysvc/officer -args -update.",
		"keys: the key built from these seeds (classical_seed: P-256 scalar or Ed25519 seed; mldsa65_seed: FIPS 204 xi; xwing_seed: X-Wing private key) has exactly this public_key encoding and fingerprint.",
		"signatures: signature parses and re-encodes to itself, and verifies over digest under key iff valid.",
		"invalid: input is refused by the parser of kind with an error at field (\"\" when not one field).",
	}}
	signers := map[string]*officer.Signer{}
	for _, k := range []struct {
		name, officer string
		alg           officer.Alg
	}{
		{"alice-ecdsa-p256", "alice", officer.ECDSAP256},
		{"bob-ed25519", "bob", officer.Ed25519},
	} {
		v := keyVector{Name: k.name, Officer: k.officer, Classical: k.alg,
			ClassicalSeed: seed(k.name + " classical"), MLDSA65Seed: seed(k.name + " mldsa65"), XWingSeed: seed(k.name + " xwing")}
		s, err := officer.NewFromSeeds(v.Officer, v.Classical, v.ClassicalSeed, v.MLDSA65Seed, v.XWingSeed)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		signers[k.name] = s
		v.PublicKey = string(s.Public().Marshal())
		v.Fingerprint = s.Public().Fingerprint()
		vf.Keys = append(vf.Keys, v)
	}
	digest := sha256.Sum256([]byte("proposal 1"))
	other := digest
	other[0] ^= 0x80
	sigs := map[string]officer.Signature{}
	for _, name := range []string{"alice-ecdsa-p256", "bob-ed25519"} {
		sig, err := signers[name].Sign(digest)
		if err != nil {
			t.Fatal(err)
		}
		sigs[name] = sig
		vf.Signatures = append(vf.Signatures,
			signatureVector{Name: name + " valid", Key: name, Digest: digest[:], Signature: string(sig.Marshal()), Valid: true},
			signatureVector{Name: name + " other digest", Key: name, Digest: other[:], Signature: string(sig.Marshal())},
		)
	}
	a, b := sigs["alice-ecdsa-p256"], sigs["bob-ed25519"]
	vf.Signatures = append(vf.Signatures,
		signatureVector{Name: "bob's signature under alice's key", Key: "alice-ecdsa-p256", Digest: digest[:], Signature: string(b.Marshal())},
		signatureVector{Name: "alice classical, bob ML-DSA", Key: "alice-ecdsa-p256", Digest: digest[:],
			Signature: string(officer.Signature{Alg: a.Alg, Classical: a.Classical, MLDSA65: b.MLDSA65}.Marshal())},
		signatureVector{Name: "bob classical relabelled, alice ML-DSA", Key: "alice-ecdsa-p256", Digest: digest[:],
			Signature: string(officer.Signature{Alg: a.Alg, Classical: b.Classical, MLDSA65: a.MLDSA65}.Marshal())},
	)
	pub := vf.Keys[0].PublicKey
	sig := vf.Signatures[0].Signature
	vf.Invalid = []invalidVector{
		{"public key with a space", "public key", pub[:1] + " " + pub[1:], ""},
		{"public key, officer id escaped", "public key", replaceOnce(pub, `"alice"`, `"\u0061lice"`), ""},
		{"public key, upper-case officer id", "public key", replaceOnce(pub, `"alice"`, `"Alice"`), "officer"},
		{"public key, unknown algorithm", "public key", replaceOnce(pub, `"ecdsa-p256"`, `"ecdsa-p384"`), "classical"},
		{"public key, v2", "public key", replaceOnce(pub, `public-key/v1`, `public-key/v2`), "format"},
		{"signature, extra field", "signature", replaceOnce(sig, `{"format"`, `{"key":"alice","format"`), ""},
		{"signature, unknown algorithm", "signature", replaceOnce(sig, `"ecdsa-p256"`, `"ed448"`), "classical"},
		{"signature, ML-DSA part missing", "signature", sig[:bytes.LastIndex([]byte(sig), []byte(`,"mldsa65_sig"`))] + "}", "mldsa65_sig"},
	}
	return vf
}

func replaceOnce(s, old, new string) string {
	return string(bytes.Replace([]byte(s), []byte(old), []byte(new), 1))
}
