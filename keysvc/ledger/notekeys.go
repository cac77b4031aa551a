// note.Signer and note.Verifier for the two checkpoint signature types,
// and the text encoding of their public keys (verifier keys).

package ledger

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/note"
)

const (
	// algECDSA is the c2sp.org/signed-note signature type for ECDSA
	// (as implemented by transparency-dev): SHA-256 digest, ASN.1 DER
	// signature, key data = DER SubjectPublicKeyInfo, key ID =
	// SHA-256(SPKI)[:4].
	algECDSA = 0x02
	// algMLDSA65 prefixes the key data of an ML-DSA-65 key: signed-note
	// reserves 0xff for types without an assigned byte, followed by a
	// longer identifier unlikely to collide.
	algMLDSA65 = "\xffcustos.eu/ml-dsa-65"
	// mldsaContext is the FIPS 204 context string of every ML-DSA-65 note
	// signature, separating them from anything else the key might sign.
	mldsaContext = "custos.eu/signed-note"
)

// validName reports whether name is a valid note key name: non-empty UTF-8
// without Unicode spaces, '+' or control characters.
func validName(name string) bool {
	return name != "" && len(name) <= 256 && utf8.ValidString(name) &&
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+' }) < 0
}

func ecdsaSPKI(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("ledger: ecdsa key is not on P-256")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ledger: ecdsa key: %w", err)
	}
	return der, nil
}

func ecdsaKeyHash(spki []byte) uint32 {
	h := sha256.Sum256(spki)
	return binary.BigEndian.Uint32(h[:4])
}

func mldsaKeyData(pub *mldsa65.PublicKey) []byte {
	return append([]byte(algMLDSA65), pub.Bytes()...)
}

func mldsaKeyHash(name string, keyData []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n'})
	h.Write(keyData)
	return binary.BigEndian.Uint32(h.Sum(nil)[:4])
}

type ecdsaSigner struct {
	name string
	hash uint32
	s    crypto.Signer
	pub  *ecdsa.PublicKey
}

// NewECDSASigner returns a note.Signer (signature type 0x02) for a P-256
// key held anywhere a crypto.Signer reaches, such as an HSM. Each signature
// is checked against the public key before it is returned, so a faulty
// token cannot emit a bad signature. Safe for concurrent use if s is.
func NewECDSASigner(name string, s crypto.Signer) (note.Signer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("ledger: invalid key name %q", name)
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("ledger: signer key is %T, not ecdsa", s.Public())
	}
	der, err := ecdsaSPKI(pub)
	if err != nil {
		return nil, err
	}
	return &ecdsaSigner{name: name, hash: ecdsaKeyHash(der), s: s, pub: pub}, nil
}

func (s *ecdsaSigner) Name() string    { return s.name }
func (s *ecdsaSigner) KeyHash() uint32 { return s.hash }
func (s *ecdsaSigner) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	sig, err := s.s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("ledger: ecdsa sign: %w", err)
	}
	if !ecdsa.VerifyASN1(s.pub, d[:], sig) {
		return nil, fmt.Errorf("ledger: ecdsa signer returned a signature that does not verify")
	}
	return sig, nil
}

type mldsaSigner struct {
	name string
	hash uint32
	sk   *mldsa65.PrivateKey
}

// NewMLDSASigner returns a note.Signer for an ML-DSA-65 private key
// (hedged signing: FIPS 204 randomised, with context "custos.eu/signed-note").
// Safe for concurrent use.
func NewMLDSASigner(name string, sk *mldsa65.PrivateKey) (note.Signer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("ledger: invalid key name %q", name)
	}
	if sk == nil {
		return nil, fmt.Errorf("ledger: nil ml-dsa-65 key")
	}
	pub := sk.Public().(*mldsa65.PublicKey)
	return &mldsaSigner{name: name, hash: mldsaKeyHash(name, mldsaKeyData(pub)), sk: sk}, nil
}

func (s *mldsaSigner) Name() string    { return s.name }
func (s *mldsaSigner) KeyHash() uint32 { return s.hash }
func (s *mldsaSigner) Sign(msg []byte) ([]byte, error) {
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(s.sk, msg, []byte(mldsaContext), true, sig); err != nil {
		return nil, fmt.Errorf("ledger: ml-dsa-65 sign: %w", err)
	}
	return sig, nil
}

// verifier implements note.Verifier for both types.
type verifier struct {
	name   string
	hash   uint32
	mldsa  bool
	ec     *ecdsa.PublicKey
	ml     *mldsa65.PublicKey
	keyTxt string // the verifier key line
}

func (v *verifier) Name() string    { return v.name }
func (v *verifier) KeyHash() uint32 { return v.hash }
func (v *verifier) Verify(msg, sig []byte) bool {
	if v.mldsa {
		return len(sig) == mldsa65.SignatureSize && mldsa65.Verify(v.ml, msg, []byte(mldsaContext), sig)
	}
	d := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(v.ec, d[:], sig)
}

func formatVKey(name string, hash uint32, keyData []byte) string {
	return fmt.Sprintf("%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(keyData))
}

func newECDSAVerifier(name string, pub *ecdsa.PublicKey) (*verifier, error) {
	if !validName(name) {
		return nil, fmt.Errorf("ledger: invalid key name %q", name)
	}
	der, err := ecdsaSPKI(pub)
	if err != nil {
		return nil, err
	}
	h := ecdsaKeyHash(der)
	return &verifier{name: name, hash: h, ec: pub,
		keyTxt: formatVKey(name, h, append([]byte{algECDSA}, der...))}, nil
}

func newMLDSAVerifier(name string, pub *mldsa65.PublicKey) (*verifier, error) {
	if !validName(name) {
		return nil, fmt.Errorf("ledger: invalid key name %q", name)
	}
	if pub == nil {
		return nil, fmt.Errorf("ledger: nil ml-dsa-65 key")
	}
	kd := mldsaKeyData(pub)
	h := mldsaKeyHash(name, kd)
	return &verifier{name: name, hash: h, mldsa: true, ml: pub, keyTxt: formatVKey(name, h, kd)}, nil
}

// NewVerifier parses a verifier key line, name+hash+base64(type||key), of
// either checkpoint signature type, strictly: the hash must be the 8
// lowercase hex digits this package computes and the base64 canonical.
// Errors are *ParseError (What "verifier key").
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := parseVKey(vkey)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func parseVKey(vkey string) (*verifier, error) {
	bad := func(format string, args ...any) error { return parseErr("verifier key", format, args...) }
	name, rest, ok1 := strings.Cut(vkey, "+")
	hashHex, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return nil, bad("want name+hash+key")
	}
	if !validName(name) {
		return nil, bad("invalid name %q", name)
	}
	if len(hashHex) != 8 || strings.ToLower(hashHex) != hashHex {
		return nil, bad("hash %q is not 8 lowercase hex digits", hashHex)
	}
	h, err := strconv.ParseUint(hashHex, 16, 32)
	if err != nil {
		return nil, bad("hash %q is not 8 lowercase hex digits", hashHex)
	}
	kd, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || base64.StdEncoding.EncodeToString(kd) != b64 {
		return nil, bad("key is not canonical base64")
	}
	var v *verifier
	switch {
	case len(kd) > 0 && kd[0] == algECDSA:
		k, err := x509.ParsePKIXPublicKey(kd[1:])
		if err != nil {
			return nil, bad("ecdsa key: %v", err)
		}
		pub, ok := k.(*ecdsa.PublicKey)
		if !ok {
			return nil, bad("type 0x02 key is %T, not ecdsa", k)
		}
		if v, err = newECDSAVerifier(name, pub); err != nil {
			return nil, bad("%v", err)
		}
	case bytes.HasPrefix(kd, []byte(algMLDSA65)):
		raw := kd[len(algMLDSA65):]
		if len(raw) != mldsa65.PublicKeySize {
			return nil, bad("ml-dsa-65 key is %d bytes, want %d", len(raw), mldsa65.PublicKeySize)
		}
		pub := new(mldsa65.PublicKey)
		if err := pub.UnmarshalBinary(raw); err != nil {
			return nil, bad("ml-dsa-65 key: %v", err)
		}
		if v, err = newMLDSAVerifier(name, pub); err != nil {
			return nil, bad("%v", err)
		}
	default:
		return nil, bad("unknown signature type")
	}
	if v.keyTxt != vkey {
		if v.hash != uint32(h) {
			return nil, bad("hash %s does not match the key (want %08x)", hashHex, v.hash)
		}
		return nil, bad("key is not in canonical form")
	}
	return v, nil
}

// NodeKey is one node's pair of checkpoint public keys: its HSM identity
// key (ECDSA P-256) and its ML-DSA-65 key, under one key name. A checkpoint
// is the node's only if both verify.
type NodeKey struct {
	Name  string // key name on signature lines, e.g. "custos.example/eu-1/node-a"
	ECDSA *ecdsa.PublicKey
	MLDSA *mldsa65.PublicKey
}

func (k NodeKey) verifiers() (ec, ml *verifier, err error) {
	if ec, err = newECDSAVerifier(k.Name, k.ECDSA); err != nil {
		return nil, nil, err
	}
	if ml, err = newMLDSAVerifier(k.Name, k.MLDSA); err != nil {
		return nil, nil, err
	}
	if ec.hash == ml.hash {
		// 2^-32 bad luck: note could not tell the two signatures apart.
		return nil, nil, fmt.Errorf("ledger: node %q: ecdsa and ml-dsa-65 key ids collide", k.Name)
	}
	return ec, ml, nil
}

// MarshalText returns the node's two verifier key lines, ECDSA first, each
// ending in a newline: the form an auditor keeps in a trusted-keys file.
func (k NodeKey) MarshalText() ([]byte, error) {
	ec, ml, err := k.verifiers()
	if err != nil {
		return nil, err
	}
	return []byte(ec.keyTxt + "\n" + ml.keyTxt + "\n"), nil
}

// UnmarshalText parses the two lines MarshalText writes (one node's keys,
// in either order) into k. Errors are *ParseError.
func (k *NodeKey) UnmarshalText(text []byte) error {
	keys, err := ParseNodeKeys(text)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return parseErr("verifier key", "want the keys of one node, got %d", len(keys))
	}
	*k = keys[0]
	return nil
}

// ParseNodeKeys parses a trusted-keys file: verifier key lines (see
// [NewVerifier]), with blank lines and lines starting with '#' ignored.
// Each name must have exactly one ECDSA and one ML-DSA-65 line. Keys come
// back in the order their names first appear. Errors are *ParseError.
func ParseNodeKeys(text []byte) ([]NodeKey, error) {
	var keys []NodeKey
	at := map[string]int{}
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := parseVKey(line)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				return nil, parseErr(pe.What, "line %d: %s", i+1, pe.Msg)
			}
			return nil, err
		}
		j, ok := at[v.name]
		if !ok {
			j = len(keys)
			at[v.name] = j
			keys = append(keys, NodeKey{Name: v.name})
		}
		k := &keys[j]
		switch {
		case v.mldsa && k.MLDSA == nil:
			k.MLDSA = v.ml
		case !v.mldsa && k.ECDSA == nil:
			k.ECDSA = v.ec
		default:
			return nil, parseErr("verifier key", "line %d: second key of one type for %q", i+1, v.name)
		}
	}
	for _, k := range keys {
		if k.ECDSA == nil || k.MLDSA == nil {
			return nil, parseErr("verifier key", "%q needs one ecdsa and one ml-dsa-65 key", k.Name)
		}
		if _, _, err := k.verifiers(); err != nil {
			return nil, parseErr("verifier key", "%v", err)
		}
	}
	return keys, nil
}
