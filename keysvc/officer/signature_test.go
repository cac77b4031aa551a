package officer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/keysvc/officer"
)

func TestSignVerify(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) {
			s := generate(t, "alice", alg)
			d := randomDigest(t)
			sig, err := s.Sign(d)
			if err != nil {
				t.Fatal(err)
			}
			if sig.Alg != alg || len(sig.Classical) != officer.ClassicalSignatureSize || len(sig.MLDSA65) != officer.MLDSA65SignatureSize {
				t.Fatalf("signature shape: %s %d %d", sig.Alg, len(sig.Classical), len(sig.MLDSA65))
			}
			if err := s.Public().Verify(d, sig); err != nil {
				t.Fatal(err)
			}
			// Through the encoding, and through a bundle parsed from its encoding.
			back, err := officer.ParseSignature(append(sig.Marshal(), '\n'))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := officer.ParsePublicKey(s.Public().Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Verify(d, back); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The parts sign the domain-separated message, not the bare digest: a signature
// made over the digest itself, or without the ML-DSA context, must not verify, and
// the officer's parts must not verify as plain signatures of the digest.
func TestSignatureDomainSeparation(t *testing.T) {
	d := randomDigest(t)
	msg := append([]byte(officer.SignatureDomain), d[:]...)
	s := generate(t, "alice", officer.Ed25519)
	sig, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	pub := s.Public()
	edPub := pub.ClassicalKey().(ed25519.PublicKey)
	var mlPub mldsa65.PublicKey
	if err := mlPub.UnmarshalBinary(pub.MLDSA65Key()); err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(edPub, msg, sig.Classical) || !mldsa65.Verify(&mlPub, msg, []byte(officer.MLDSAContext), sig.MLDSA65) {
		t.Fatal("the parts are not signatures of the documented message")
	}
	if ed25519.Verify(edPub, d[:], sig.Classical) {
		t.Error("Ed25519 part verifies over the bare digest")
	}
	if mldsa65.Verify(&mlPub, msg, nil, sig.MLDSA65) || mldsa65.Verify(&mlPub, d[:], []byte(officer.MLDSAContext), sig.MLDSA65) {
		t.Error("ML-DSA part verifies without its context or over the bare digest")
	}

	es := generate(t, "bob", officer.ECDSAP256)
	esig, err := es.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	ecPub := es.Public().ClassicalKey().(*ecdsa.PublicKey)
	r, sv := new(big.Int).SetBytes(esig.Classical[:32]), new(big.Int).SetBytes(esig.Classical[32:])
	h := sha256.Sum256(msg)
	if !ecdsa.Verify(ecPub, h[:], r, sv) {
		t.Fatal("ECDSA part is not a signature of SHA-256(message)")
	}
	if ecdsa.Verify(ecPub, d[:], r, sv) {
		t.Error("ECDSA part verifies over the bare digest")
	}
}

func TestVerifyRejects(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) {
			s := generate(t, "alice", alg)
			other := generate(t, "bob", alg)
			otherAlg := generate(t, "carol", map[officer.Alg]officer.Alg{officer.ECDSAP256: officer.Ed25519, officer.Ed25519: officer.ECDSAP256}[alg])
			d := randomDigest(t)
			good, err := s.Sign(d)
			if err != nil {
				t.Fatal(err)
			}
			byOther, _ := other.Sign(d)
			byOtherAlg, _ := otherAlg.Sign(d)
			flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
			d2 := d
			d2[31] ^= 1

			cases := []struct {
				name   string
				key    *officer.PublicKey
				digest [32]byte
				sig    officer.Signature
				want   []string // in the error message
			}{
				{"classical bad", s.Public(), d, officer.Signature{Alg: alg, Classical: flip(good.Classical, 5), MLDSA65: good.MLDSA65}, []string{"classical part (" + string(alg) + ") does not verify"}},
				{"classical bad s", s.Public(), d, officer.Signature{Alg: alg, Classical: flip(good.Classical, 63), MLDSA65: good.MLDSA65}, []string{"classical part"}},
				{"pq bad", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical, MLDSA65: flip(good.MLDSA65, 100)}, []string{"ML-DSA-65 part does not verify"}},
				{"pq last byte", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical, MLDSA65: flip(good.MLDSA65, officer.MLDSA65SignatureSize-1)}, []string{"ML-DSA-65 part does not verify"}},
				{"both bad", s.Public(), d, officer.Signature{Alg: alg, Classical: flip(good.Classical, 0), MLDSA65: flip(good.MLDSA65, 0)}, []string{"classical part", "and ML-DSA-65 part does not verify"}},
				{"classical missing", s.Public(), d, officer.Signature{Alg: alg, MLDSA65: good.MLDSA65}, []string{"classical part missing"}},
				{"pq missing", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical}, []string{"ML-DSA-65 part missing"}},
				{"both missing", s.Public(), d, officer.Signature{}, []string{"classical part missing and ML-DSA-65 part missing"}},
				{"pq truncated", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical, MLDSA65: good.MLDSA65[:officer.MLDSA65SignatureSize-1]}, []string{"ML-DSA-65 part does not verify"}},
				{"classical truncated", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical[:63], MLDSA65: good.MLDSA65}, []string{"classical part"}},
				{"wrong key", other.Public(), d, good, []string{"officer bob", "classical part", "ML-DSA-65 part does not verify"}},
				{"signed by another officer", s.Public(), d, byOther, []string{"classical part", "ML-DSA-65 part does not verify"}},
				{"wrong digest", s.Public(), d2, good, []string{"classical part", "ML-DSA-65 part does not verify"}},
				{"swapped parts", s.Public(), d, officer.Signature{Alg: alg, Classical: good.MLDSA65, MLDSA65: good.Classical}, []string{"classical part", "ML-DSA-65 part does not verify"}},
				{"classical from another officer", s.Public(), d, officer.Signature{Alg: alg, Classical: byOther.Classical, MLDSA65: good.MLDSA65}, []string{"classical part"}},
				{"pq from another officer", s.Public(), d, officer.Signature{Alg: alg, Classical: good.Classical, MLDSA65: byOther.MLDSA65}, []string{"ML-DSA-65 part does not verify"}},
				{"other algorithm", s.Public(), d, byOtherAlg, []string{"classical part is"}},
				{"algorithm relabelled", s.Public(), d, officer.Signature{Alg: otherAlg.Public().Alg(), Classical: good.Classical, MLDSA65: good.MLDSA65}, []string{"classical part is"}},
				{"zero key", &officer.PublicKey{}, d, good, []string{"invalid (zero) public key"}},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					err := c.key.Verify(c.digest, c.sig)
					if !errors.Is(err, officer.ErrBadSignature) {
						t.Fatalf("Verify = %v, want ErrBadSignature", err)
					}
					for _, w := range c.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("error %q does not say %q", err, w)
						}
					}
				})
			}
			// The good one still verifies: the cases above did not pass by accident.
			if err := s.Public().Verify(d, good); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseSignatureRejects(t *testing.T) {
	s := generate(t, "alice", officer.ECDSAP256)
	sig, err := s.Sign(randomDigest(t))
	if err != nil {
		t.Fatal(err)
	}
	enc := sig.Marshal()
	cases := []struct {
		name, field string
		in          []byte
	}{
		{"empty", "", nil},
		{"array", "", []byte("[]")},
		{"wrong format", "format", setField(t, enc, "format", `"custos-officer-public-key/v1"`)},
		{"unknown alg", "classical", setField(t, enc, "classical", `"ecdsa-p384"`)},
		{"classical short", "classical_sig", setField(t, enc, "classical_sig", b64(sig.Classical[:63]))},
		{"classical DER", "classical_sig", setField(t, enc, "classical_sig", b64(make([]byte, 72)))},
		{"classical missing", "classical_sig", cut(enc, `,"classical_sig":"[^"]*"`)},
		{"pq missing", "mldsa65_sig", cut(enc, `,"mldsa65_sig":"[^"]*"`)},
		{"pq long", "mldsa65_sig", setField(t, enc, "mldsa65_sig", b64(append(bytes.Clone(sig.MLDSA65), 0)))},
		{"pq null", "mldsa65_sig", setField(t, enc, "mldsa65_sig", `null`)},
		{"unknown field", "", bytes.Replace(enc, []byte(`{"format"`), []byte(`{"signer":"alice","format"`), 1)},
		{"whitespace", "", bytes.Replace(enc, []byte(`,"classical"`), []byte(`, "classical"`), 1)},
		{"duplicate", "", bytes.Replace(enc, []byte(`{"format":"custos-officer-signature/v1"`), []byte(`{"format":"x","format":"custos-officer-signature/v1"`), 1)},
		{"trailing", "", append(bytes.Clone(enc), ' ')},
		{"huge", "", bytes.Repeat([]byte("{"), 9000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := officer.ParseSignature(c.in)
			var perr *officer.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("got %v, want a *ParseError", err)
			}
			if perr.Format != "signature" || perr.Field != c.field {
				t.Fatalf("error %q: field %q, want %q", err, perr.Field, c.field)
			}
		})
	}
}

func cut(enc []byte, re string) []byte {
	return regexp.MustCompile(re).ReplaceAll(enc, nil)
}

func TestSignerClose(t *testing.T) {
	s, err := officer.Generate(officer.Config{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Sign(randomDigest(t)); !errors.Is(err, officer.ErrClosed) {
		t.Errorf("Sign after Close: %v", err)
	}
	if _, err := s.EscrowKey("k1", 1); !errors.Is(err, officer.ErrClosed) {
		t.Errorf("EscrowKey after Close: %v", err)
	}
	if _, err := s.OpenHPKE(nil, nil, nil, nil); !errors.Is(err, officer.ErrClosed) {
		t.Errorf("OpenHPKE after Close: %v", err)
	}
	if s.Public() == nil || s.Public().Name() != "alice" {
		t.Error("Public after Close")
	}
}

// Printing or logging a Signer never shows a private seed.
func TestSignerPrintsNoSecrets(t *testing.T) {
	seed := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	for _, alg := range algs {
		s, err := officer.NewFromSeeds("alice", alg, seed(0x11), seed(0x22), seed(0x33))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out strings.Builder
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", s)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Info("loaded", "signer", s)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("loaded", "signer", s)
		text := out.String()
		for _, b := range []byte{0x11, 0x22, 0x33} {
			for _, leak := range []string{fmt.Sprintf("%02x%02x%02x%02x", b, b, b, b), fmt.Sprint([]byte{b, b, b, b})[1:9], base64.StdEncoding.EncodeToString(seed(b))[:12]} {
				if strings.Contains(text, leak) {
					t.Fatalf("%s signer output contains %q:\n%s", alg, leak, text)
				}
			}
		}
		if !strings.Contains(text, s.Public().Fingerprint()) || !strings.Contains(text, "officer=alice") {
			t.Fatalf("output does not name the officer and fingerprint:\n%s", text)
		}
	}
}

func TestConcurrentSign(t *testing.T) {
	s := generate(t, "alice", officer.ECDSAP256)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			d := randomDigest(t)
			sig, err := s.Sign(d)
			if err == nil {
				err = s.Public().Verify(d, sig)
			}
			errs <- err
		})
	}
	wg.Go(func() { s.Close() })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, officer.ErrClosed) {
			t.Error(err)
		}
	}
}
