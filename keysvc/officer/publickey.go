package officer

// The public key bundle: what genesis and officer-add ceremonies record, its one
// strict parser, its canonical encoding and its fingerprint.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Alg names the classical half of an officer's hybrid signature.
type Alg string

// The classical algorithms. ECDSA P-256 signs SHA-256 of the signed message and is
// the one a PKCS#11 token can hold; Ed25519 signs the message itself (pure Ed25519).
const (
	ECDSAP256 Alg = "ecdsa-p256"
	Ed25519   Alg = "ed25519"
)

func (a Alg) valid() bool { return a == ECDSAP256 || a == Ed25519 }

// Sizes of the keys in a public bundle.
const (
	ECDSAP256PublicKeySize = 65 // uncompressed SEC 1 point, 0x04 || X || Y
	Ed25519PublicKeySize   = ed25519.PublicKeySize
	MLDSA65PublicKeySize   = mldsa65.PublicKeySize // 1952
	XWingPublicKeySize     = xwing.PublicKeySize   // 1216
)

// Format tags: the "format" field that opens each JSON encoding.
const (
	PublicKeyFormat = "custos-officer-public-key/v1"
	SignatureFormat = "custos-officer-signature/v1"
	KeyFileFormat   = "custos-officer-key/v1" // inside the age encryption
)

// maxPublicKeyLen bounds the input ParsePublicKey reads; a valid encoding is
// about 4.4 KB.
const maxPublicKeyLen = 8 << 10

// MaxNameLen is the longest officer id.
const MaxNameLen = 63

// ValidateName reports whether name can be an officer id: 1 to 63 bytes of
// [a-z0-9._-], first and last a letter or digit, no "..". It is the name rule of
// package identity, so an officer id can name the officer's client certificate too,
// and it is safe as a file name (NAME.key, NAME.pub).
func ValidateName(name string) error {
	bad := func(why string) error { return fmt.Errorf("officer id %q: %s", name, why) }
	if name == "" || len(name) > MaxNameLen {
		return bad(fmt.Sprintf("must be 1 to %d bytes", MaxNameLen))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return bad("may contain only a-z, 0-9, '.', '_' and '-'")
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return bad("must start and end with a-z or 0-9")
	}
	if strings.Contains(name, "..") {
		return bad(`must not contain ".."`)
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// PublicKey is an officer's public key bundle: officer id, classical signing key,
// ML-DSA-65 signing key and X-Wing encryption key (for escrow shares). It is
// immutable and safe for concurrent use. Get one from ParsePublicKey or
// Signer.Public; the zero value is not a valid key.
type PublicKey struct {
	name      string
	alg       Alg
	classical crypto.PublicKey // *ecdsa.PublicKey or ed25519.PublicKey; never handed out
	mldsa     *mldsa65.PublicKey
	enc       []byte // canonical encoding
	fp        string

	classicalBytes, mldsaBytes, xwingBytes []byte
}

// publicJSON is the canonical encoding: fields in this order, no whitespace,
// keys in standard base64 with padding.
type publicJSON struct {
	Format       string `json:"format"`
	Officer      string `json:"officer"`
	Classical    Alg    `json:"classical"`
	ClassicalKey []byte `json:"classical_key"`
	MLDSA65Key   []byte `json:"mldsa65_key"`
	XWingKey     []byte `json:"xwing_key"`
}

// newPublicKey checks every part and builds the bundle; format is the ParseError
// format to report.
func newPublicKey(format, name string, alg Alg, classical, mldsaKey, xwingKey []byte) (*PublicKey, error) {
	if err := ValidateName(name); err != nil {
		return nil, parseErr(format, "officer", "%v", err)
	}
	pk := &PublicKey{name: name, alg: alg}
	switch alg {
	case ECDSAP256:
		if len(classical) != ECDSAP256PublicKeySize {
			return nil, parseErr(format, "classical_key", "%d bytes, an uncompressed P-256 point is %d", len(classical), ECDSAP256PublicKeySize)
		}
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), classical)
		if err != nil {
			return nil, parseErr(format, "classical_key", "not a P-256 public key")
		}
		pk.classical = k
	case Ed25519:
		if len(classical) != Ed25519PublicKeySize {
			return nil, parseErr(format, "classical_key", "%d bytes, an Ed25519 public key is %d", len(classical), Ed25519PublicKeySize)
		}
		pk.classical = ed25519.PublicKey(slices.Clone(classical))
	default:
		return nil, parseErr(format, "classical", "unknown algorithm %q (want %q or %q)", alg, ECDSAP256, Ed25519)
	}
	if len(mldsaKey) != MLDSA65PublicKeySize {
		return nil, parseErr(format, "mldsa65_key", "%d bytes, an ML-DSA-65 public key is %d", len(mldsaKey), MLDSA65PublicKeySize)
	}
	pk.mldsa = new(mldsa65.PublicKey)
	if err := pk.mldsa.UnmarshalBinary(mldsaKey); err != nil {
		return nil, parseErr(format, "mldsa65_key", "not an ML-DSA-65 public key")
	}
	if len(xwingKey) != XWingPublicKeySize {
		return nil, parseErr(format, "xwing_key", "%d bytes, an X-Wing public key is %d", len(xwingKey), XWingPublicKeySize)
	}
	if _, err := xwing.Scheme().UnmarshalBinaryPublicKey(xwingKey); err != nil {
		return nil, parseErr(format, "xwing_key", "not an X-Wing public key (ML-KEM-768 part out of range)")
	}
	pk.classicalBytes = slices.Clone(classical)
	pk.mldsaBytes = slices.Clone(mldsaKey)
	pk.xwingBytes = slices.Clone(xwingKey)
	pk.enc = mustMarshal(publicJSON{
		Format: PublicKeyFormat, Officer: name, Classical: alg,
		ClassicalKey: pk.classicalBytes, MLDSA65Key: pk.mldsaBytes, XWingKey: pk.xwingBytes,
	})
	sum := sha256.Sum256(pk.enc)
	pk.fp = "sha256:" + hex.EncodeToString(sum[:])
	return pk, nil
}

// ParsePublicKey parses a public key bundle in its canonical encoding (see the
// package documentation), optionally followed by one "\n" as in a NAME.pub file.
// It accepts exactly the bytes Marshal produces and nothing else — no other field
// order, whitespace, escaping or base64 — so that one key has one encoding and one
// fingerprint. Errors are *ParseError.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	const format = "public key"
	b = bytes.TrimSuffix(b, []byte("\n"))
	var j publicJSON
	if err := decodeJSON(format, b, maxPublicKeyLen, &j, true); err != nil {
		return nil, err
	}
	if j.Format != PublicKeyFormat {
		return nil, parseErr(format, "format", "%q, want %q", j.Format, PublicKeyFormat)
	}
	pk, err := newPublicKey(format, j.Officer, j.Classical, j.ClassicalKey, j.MLDSA65Key, j.XWingKey)
	if err != nil {
		return nil, err
	}
	if err := checkCanonical(format, b, pk.enc); err != nil {
		return nil, err
	}
	return pk, nil
}

// Name returns the officer id.
func (pk *PublicKey) Name() string { return pk.name }

// Alg returns the classical algorithm.
func (pk *PublicKey) Alg() Alg { return pk.alg }

// ClassicalKey returns a copy of the classical public key: *ecdsa.PublicKey or
// ed25519.PublicKey.
func (pk *PublicKey) ClassicalKey() crypto.PublicKey {
	switch pk.alg {
	case ECDSAP256:
		k, _ := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pk.classicalBytes)
		return k
	case Ed25519:
		return ed25519.PublicKey(slices.Clone(pk.classicalBytes))
	}
	return nil
}

// MLDSA65Key returns a copy of the ML-DSA-65 public key (1952 bytes, FIPS 204 encoding).
func (pk *PublicKey) MLDSA65Key() []byte { return slices.Clone(pk.mldsaBytes) }

// XWingKey returns a copy of the X-Wing public key (1216 bytes), to which escrow
// shares for this officer are sealed (for instance with wrapkey.Wrap).
func (pk *PublicKey) XWingKey() []byte { return slices.Clone(pk.xwingBytes) }

// Marshal returns the canonical encoding (without a trailing newline).
func (pk *PublicKey) Marshal() []byte { return slices.Clone(pk.enc) }

// Fingerprint returns "sha256:" and the lowercase hex SHA-256 of the canonical
// encoding. Officers compare it out of band before a ceremony records their key.
func (pk *PublicKey) Fingerprint() string { return pk.fp }

// Equal reports whether two bundles are the same: same officer id and same keys.
func (pk *PublicKey) Equal(other *PublicKey) bool {
	return pk != nil && other != nil && len(pk.enc) > 0 && bytes.Equal(pk.enc, other.enc)
}

// String returns the officer id and fingerprint.
func (pk *PublicKey) String() string {
	if pk == nil || len(pk.enc) == 0 {
		return "<invalid officer public key>"
	}
	return pk.name + " " + pk.fp
}

// MarshalJSON implements json.Marshaler with the canonical encoding, so a bundle
// embeds in a genesis or ceremony document as a JSON object.
func (pk *PublicKey) MarshalJSON() ([]byte, error) {
	if len(pk.enc) == 0 {
		return nil, errors.New("officer: marshal of an invalid (zero) PublicKey")
	}
	return pk.Marshal(), nil
}

// UnmarshalJSON implements json.Unmarshaler. It tolerates insignificant whitespace
// (an embedding document may be indented) and is otherwise as strict as
// ParsePublicKey.
func (pk *PublicKey) UnmarshalJSON(b []byte) error {
	p, err := ParsePublicKey(compactJSON(b))
	if err != nil {
		return err
	}
	*pk = *p
	return nil
}

// Shared strict JSON helpers.

// mustMarshal encodes one of this package's JSON structs; they cannot fail.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("officer: " + err.Error())
	}
	return b
}

// decodeJSON decodes exactly one JSON object of v's fields from b, refusing
// unknown fields. With detail, the JSON decoder's message is passed on; without it
// (key files) the message says only what kind of fault it was.
func decodeJSON(format string, b []byte, max int, v any, detail bool) *ParseError {
	if len(b) > max {
		return parseErr(format, "", "%d bytes, more than any valid encoding (%d)", len(b), max)
	}
	if len(b) == 0 || b[0] != '{' {
		return parseErr(format, "", "not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if !detail {
			return parseErr(format, "", "not a JSON object with the expected fields")
		}
		return parseErr(format, "", "not a JSON object with the expected fields: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return parseErr(format, "", "data after the JSON object")
	}
	return nil
}

// checkCanonical refuses b unless it is exactly the canonical encoding canon.
func checkCanonical(format string, b, canon []byte) *ParseError {
	if bytes.Equal(b, canon) {
		return nil
	}
	i := 0
	for i < len(b) && i < len(canon) && b[i] == canon[i] {
		i++
	}
	return parseErr(format, "", "not in canonical form (first difference at byte %d)", i)
}

// compactJSON removes insignificant whitespace, or returns b unchanged if it is
// not valid JSON (the strict parser then says why).
func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
