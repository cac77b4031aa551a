package officer_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
)

// fuzzSeeds adds the vectors' encodings (valid and invalid) as seed inputs.
func fuzzSeeds(f *testing.F, kind string) {
	vf := readVectors(&testing.T{})
	for _, k := range vf.Keys {
		if kind == "public key" {
			f.Add([]byte(k.PublicKey))
			f.Add([]byte(k.PublicKey + "\n"))
		}
	}
	for _, s := range vf.Signatures {
		if kind == "signature" {
			f.Add([]byte(s.Signature))
		}
	}
	for _, v := range vf.Invalid {
		if v.Kind == kind {
			f.Add([]byte(v.Input))
		}
	}
	f.Add([]byte("{}"))
	f.Add([]byte(`{"format":null}`))
}

// FuzzParsePublicKey: never panics; whatever parses re-encodes to exactly the input
// (less one trailing newline) and parses again to an equal key; every error is a
// *ParseError.
func FuzzParsePublicKey(f *testing.F) {
	fuzzSeeds(f, "public key")
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := officer.ParsePublicKey(b)
		if err != nil {
			var perr *officer.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		if enc := pk.Marshal(); !bytes.Equal(enc, bytes.TrimSuffix(b, []byte("\n"))) {
			t.Fatalf("accepted %q, which is not its canonical encoding %q", b, enc)
		}
		again, err := officer.ParsePublicKey(pk.Marshal())
		if err != nil || !again.Equal(pk) || again.Fingerprint() != pk.Fingerprint() {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// FuzzParseSignature: as FuzzParsePublicKey, for signatures.
func FuzzParseSignature(f *testing.F) {
	fuzzSeeds(f, "signature")
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := officer.ParseSignature(b)
		if err != nil {
			var perr *officer.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		if enc := sig.Marshal(); !bytes.Equal(enc, bytes.TrimSuffix(b, []byte("\n"))) {
			t.Fatalf("accepted %q, which is not its canonical encoding %q", b, enc)
		}
		if len(sig.Classical) != officer.ClassicalSignatureSize || len(sig.MLDSA65) != officer.MLDSA65SignatureSize {
			t.Fatal("accepted a signature with parts of the wrong size")
		}
	})
}

// FuzzParsePKCS11URI: never panics; errors are *ParseError; what parses has a
// canonical String that parses back to the same URI.
func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=officer-alice;object=custos-officer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/pin",
		"pkcs11:slot-id=3;object=a%20b;type=private?module-path=/m.so&pin-source=env:PIN",
		"pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:///x%3By",
		"pkcs11:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := officer.ParsePKCS11URI(s)
		if err != nil {
			var perr *officer.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		again, err := officer.ParsePKCS11URI(u.String())
		if err != nil || !reflect.DeepEqual(again, u) {
			t.Fatalf("%q: String() = %q does not parse back: %v", s, u.String(), err)
		}
	})
}
