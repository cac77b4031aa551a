package officer

// Hybrid signatures: what is signed, the Signature value, its one strict parser,
// and verification (both parts, or nothing).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// SignatureDomain prefixes the digest in the message both parts sign:
//
//	message = "custos/v1/officer-signature" || 0x00 || digest (32 bytes)
//
// so an officer signature can never be taken for a signature of anything else the
// same keys might sign.
const SignatureDomain = "custos/v1/officer-signature\x00"

// MLDSAContext is the FIPS 204 context string of the ML-DSA-65 part.
const MLDSAContext = "custos/v1/officer-signature"

// Signature sizes.
const (
	ClassicalSignatureSize = 64                    // ECDSA P-256: r || s, 32 bytes each, big-endian; Ed25519: R || S
	MLDSA65SignatureSize   = mldsa65.SignatureSize // 3309
)

// maxSignatureLen bounds the input ParseSignature reads; a valid encoding is about
// 4.6 KB.
const maxSignatureLen = 8 << 10

// Signature is an officer's hybrid signature over a 32-byte digest: a classical part
// and an ML-DSA-65 part over the same message (see SignatureDomain). It is valid only
// if both parts verify under the officer's PublicKey.
//
// Both parts are randomised (ECDSA with fresh randomness, ML-DSA in hedged mode), so
// one officer signing one digest twice gives two different valid signatures: identify
// an approval by officer and digest, never by signature bytes.
type Signature struct {
	Alg       Alg    // the classical algorithm
	Classical []byte // ClassicalSignatureSize bytes
	MLDSA65   []byte // MLDSA65SignatureSize bytes, FIPS 204 encoding
}

// signatureJSON is the canonical encoding: fields in this order, no whitespace,
// signatures in standard base64 with padding.
type signatureJSON struct {
	Format       string `json:"format"`
	Classical    Alg    `json:"classical"`
	ClassicalSig []byte `json:"classical_sig"`
	MLDSA65Sig   []byte `json:"mldsa65_sig"`
}

// Marshal returns the canonical encoding of s. It does not check s; ParseSignature
// does.
func (s Signature) Marshal() []byte {
	return mustMarshal(signatureJSON{Format: SignatureFormat, Classical: s.Alg, ClassicalSig: s.Classical, MLDSA65Sig: s.MLDSA65})
}

// ParseSignature parses the canonical encoding of a signature, optionally followed
// by one "\n". Like ParsePublicKey it accepts exactly what Marshal produces for a
// well-formed signature: a known algorithm and both parts of the right sizes.
// Whether the parts verify is Verify's business. Errors are *ParseError.
func ParseSignature(b []byte) (Signature, error) {
	const format = "signature"
	b = bytes.TrimSuffix(b, []byte("\n"))
	var j signatureJSON
	if err := decodeJSON(format, b, maxSignatureLen, &j, true); err != nil {
		return Signature{}, err
	}
	if j.Format != SignatureFormat {
		return Signature{}, parseErr(format, "format", "%q, want %q", j.Format, SignatureFormat)
	}
	if !j.Classical.valid() {
		return Signature{}, parseErr(format, "classical", "unknown algorithm %q (want %q or %q)", j.Classical, ECDSAP256, Ed25519)
	}
	if len(j.ClassicalSig) != ClassicalSignatureSize {
		return Signature{}, parseErr(format, "classical_sig", "%d bytes, want %d", len(j.ClassicalSig), ClassicalSignatureSize)
	}
	if len(j.MLDSA65Sig) != MLDSA65SignatureSize {
		return Signature{}, parseErr(format, "mldsa65_sig", "%d bytes, want %d", len(j.MLDSA65Sig), MLDSA65SignatureSize)
	}
	s := Signature{Alg: j.Classical, Classical: j.ClassicalSig, MLDSA65: j.MLDSA65Sig}
	if err := checkCanonical(format, b, s.Marshal()); err != nil {
		return Signature{}, err
	}
	return s, nil
}

// MarshalJSON implements json.Marshaler with the canonical encoding.
func (s Signature) MarshalJSON() ([]byte, error) { return s.Marshal(), nil }

// UnmarshalJSON implements json.Unmarshaler. It tolerates insignificant whitespace
// and is otherwise as strict as ParseSignature.
func (s *Signature) UnmarshalJSON(b []byte) error {
	p, err := ParseSignature(compactJSON(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// signedMessage is what both parts sign.
func signedMessage(digest [32]byte) []byte {
	return append([]byte(SignatureDomain), digest[:]...)
}

// Verify checks sig over digest. It returns nil only if the signature's algorithm
// is the key's and both the classical and the ML-DSA-65 part verify; otherwise an
// error wrapping ErrBadSignature that says which part failed. Both parts are always
// checked. Verify is safe for concurrent use.
func (pk *PublicKey) Verify(digest [32]byte, sig Signature) error {
	if pk == nil || len(pk.enc) == 0 {
		return fmt.Errorf("%w: invalid (zero) public key", ErrBadSignature)
	}
	msg := signedMessage(digest)
	var bad []string
	switch {
	case len(sig.Classical) == 0:
		bad = append(bad, "classical part missing")
	case sig.Alg != pk.alg:
		bad = append(bad, fmt.Sprintf("classical part is %q, officer %s's key is %q", sig.Alg, pk.name, pk.alg))
	case !verifyClassical(pk, msg, sig.Classical):
		bad = append(bad, fmt.Sprintf("classical part (%s) does not verify", pk.alg))
	}
	switch {
	case len(sig.MLDSA65) == 0:
		bad = append(bad, "ML-DSA-65 part missing")
	case len(sig.MLDSA65) != MLDSA65SignatureSize || !mldsa65.Verify(pk.mldsa, msg, []byte(MLDSAContext), sig.MLDSA65):
		bad = append(bad, "ML-DSA-65 part does not verify")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w by officer %s (%s): %s", ErrBadSignature, pk.name, pk.fp, joinAnd(bad))
	}
	return nil
}

func verifyClassical(pk *PublicKey, msg, sig []byte) bool {
	if len(sig) != ClassicalSignatureSize {
		return false
	}
	switch k := pk.classical.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, h[:], r, s)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	}
	return false
}

func joinAnd(parts []string) string {
	if len(parts) == 2 {
		return parts[0] + " and " + parts[1]
	}
	return parts[0]
}

// ecdsaRaw converts an ASN.1 DER ECDSA signature (what crypto.Signer and PKCS#11
// tokens via package hsm return) to r || s, 32 bytes each.
func ecdsaRaw(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("officer: ECDSA signer returned a malformed signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("officer: ECDSA signer returned a signature out of range")
	}
	out := make([]byte, ClassicalSignatureSize)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}
