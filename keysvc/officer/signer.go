package officer

// Signer: an officer's private keys in memory, generated or loaded; hybrid signing,
// the escrow decryption helpers, and zeroisation.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// seedSize is the size of every private seed an officer key keeps: the P-256 scalar
// or Ed25519 seed, the ML-DSA-65 seed (FIPS 204 ξ) and the X-Wing seed.
const seedSize = 32

// Config says what key to generate (Generate) and how to write it (Keygen).
type Config struct {
	Name      string // officer id, see ValidateName
	Classical Alg    // classical algorithm; "" means ECDSAP256
	// PKCS11URI, when set, puts the classical key on that PKCS#11 token (see
	// PKCS11URI): an ECDSA P-256 key pair generated inside the token under the
	// URI's object label. The ML-DSA-65 and X-Wing keys stay in the key file.
	// Only a Tokens that opens tokens (officerhsm's) takes it.
	PKCS11URI string
	// WorkFactor is the scrypt work factor (log2 N) Keygen protects the key file
	// with: 0 means DefaultWorkFactor; otherwise MinWorkFactor..MaxWorkFactor.
	// Lower it only for tests.
	WorkFactor int
}

// valid checks every combination of fields in one place.
func (c Config) valid() error {
	if err := ValidateName(c.Name); err != nil {
		return fmt.Errorf("officer: %w", err)
	}
	switch {
	case c.Classical != "" && !c.Classical.valid():
		return fmt.Errorf("officer: unknown classical algorithm %q (want %q or %q)", c.Classical, ECDSAP256, Ed25519)
	case c.PKCS11URI != "" && c.Classical == Ed25519:
		return fmt.Errorf("officer: a PKCS#11 token holds an %s key, not %s", ECDSAP256, Ed25519)
	case c.WorkFactor != 0 && (c.WorkFactor < MinWorkFactor || c.WorkFactor > MaxWorkFactor):
		return fmt.Errorf("officer: scrypt work factor %d not in %d..%d", c.WorkFactor, MinWorkFactor, MaxWorkFactor)
	}
	return nil
}

func (c Config) alg() Alg {
	if c.Classical == "" {
		return ECDSAP256
	}
	return c.Classical
}

// Signer holds an officer's private keys: it signs, and opens escrow shares sealed to
// the officer. Its methods are safe for concurrent use. Close it when done: Close
// overwrites the private key material the Signer holds (see the package
// documentation for what that does and does not reach) and closes the PKCS#11 token.
// Printing or logging a Signer shows the officer and fingerprint, never a secret.
type Signer struct {
	pub *PublicKey
	uri *PKCS11URI // nil for a software classical key

	mu            sync.RWMutex
	closed        bool
	classical     crypto.Signer // *ecdsa.PrivateKey, ed25519.PrivateKey or a token's signer
	classicalSeed []byte        // software only: P-256 scalar or Ed25519 seed
	mldsaSeed     []byte
	mldsa         *mldsa65.PrivateKey
	xwingSeed     []byte
	tok           hsm.Token // PKCS#11 only
}

// Tokens opens the PKCS#11 tokens on which officers keep their classical keys. This
// package opens no token itself: the zero Tokens, which the package functions
// Generate, Keygen and Load use, handles software keys only and refuses a key on a
// token. Package officerhsm has the Tokens backed by hsm/pkcs11, and its own
// Generate, Keygen and Load that use it.
type Tokens struct {
	// Open opens, and logs in to, the token u names. The Signer built on it
	// closes it. nil: keys on a token are refused.
	Open func(u *PKCS11URI) (hsm.Token, error)
}

// errNoTokens: t opens no token (the caller says which).
var errNoTokens = errors.New("no PKCS#11 support here (package officerhsm has it)")

// open opens the token of uri, or says that t opens none.
func (t Tokens) open(uri *PKCS11URI) (hsm.Token, error) {
	if t.Open == nil {
		return nil, errNoTokens
	}
	return t.Open(uri)
}

// Generate creates a new officer key in memory, as Tokens.Generate does, with no token:
// a classical key on a PKCS#11 token needs officerhsm.Generate.
func Generate(c Config) (*Signer, error) { return Tokens{}.Generate(c) }

// Generate creates a new officer key in memory: fresh ML-DSA-65 and X-Wing keys, and
// a classical key in software or, with c.PKCS11URI, generated inside the token. It
// writes no file (Keygen does). With a token, the key generated there stays there;
// it is refused with an error wrapping hsm.ErrKeyExists if the label is taken.
func (t Tokens) Generate(c Config) (*Signer, error) {
	if err := c.valid(); err != nil {
		return nil, err
	}
	mldsaSeed, xwingSeed := make([]byte, seedSize), make([]byte, seedSize)
	rand.Read(mldsaSeed)
	rand.Read(xwingSeed)
	if c.PKCS11URI == "" {
		var classicalSeed []byte
		switch c.alg() {
		case ECDSAP256:
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("officer: generate P-256 key: %w", err)
			}
			if classicalSeed, err = k.Bytes(); err != nil {
				return nil, fmt.Errorf("officer: generate P-256 key: %w", err)
			}
		case Ed25519:
			classicalSeed = make([]byte, seedSize)
			rand.Read(classicalSeed)
		}
		return newSigner(c.Name, c.alg(), classicalSeed, mldsaSeed, xwingSeed, nil, nil)
	}
	uri, err := ParsePKCS11URI(c.PKCS11URI)
	if err != nil {
		return nil, err
	}
	tok, err := t.open(uri)
	if err != nil {
		return nil, fmt.Errorf("officer: open the token of %s: %w", uri, err)
	}
	if _, err := tok.GenerateSigner(uri.Object); err != nil {
		tok.Close()
		if errors.Is(err, hsm.ErrKeyExists) {
			return nil, fmt.Errorf("officer: the token already holds a key labelled %q; Custos does not reuse keys, choose another object= label or remove that key: %w", uri.Object, err)
		}
		return nil, fmt.Errorf("officer: generate the classical key on the token: %w", err)
	}
	s, err := newSigner(c.Name, ECDSAP256, nil, mldsaSeed, xwingSeed, uri, tok)
	if err != nil {
		tok.Destroy(uri.Object)
		tok.Close()
		return nil, err
	}
	return s, nil
}

// newSigner builds a Signer from its seeds. It takes ownership of the seed slices
// (cleared on error) and, with a token, of tok (closed by Close; on error the
// caller closes it). Exactly one of classicalSeed and
// (uri, tok) is set.
func newSigner(name string, alg Alg, classicalSeed, mldsaSeed, xwingSeed []byte, uri *PKCS11URI, tok hsm.Token) (*Signer, error) {
	s := &Signer{uri: uri, tok: tok, classicalSeed: classicalSeed, mldsaSeed: mldsaSeed, xwingSeed: xwingSeed}
	fail := func(err error) (*Signer, error) {
		s.tok = nil // the caller's to close, after it destroys what it generated there
		s.Close()
		return nil, err
	}
	if len(mldsaSeed) != seedSize || len(xwingSeed) != seedSize {
		return fail(errors.New("officer: private seeds must be 32 bytes"))
	}
	var classicalPub []byte
	switch {
	case tok != nil:
		signer, err := tok.Signer(uri.Object)
		if err != nil {
			return fail(fmt.Errorf("officer: find key %q on the token of %s: %w", uri.Object, uri, err))
		}
		pub, ok := signer.Public().(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return fail(fmt.Errorf("officer: key %q on the token is not ECDSA P-256", uri.Object))
		}
		if classicalPub, err = pub.Bytes(); err != nil {
			return fail(fmt.Errorf("officer: key %q on the token: %w", uri.Object, err))
		}
		s.classical = signer
	case len(classicalSeed) != seedSize:
		return fail(errors.New("officer: classical private key must be 32 bytes"))
	case alg == ECDSAP256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), classicalSeed)
		if err != nil {
			return fail(errors.New("officer: classical private key is not a P-256 scalar"))
		}
		if classicalPub, err = k.PublicKey.Bytes(); err != nil {
			return fail(err)
		}
		s.classical = k
	case alg == Ed25519:
		k := ed25519.NewKeyFromSeed(classicalSeed)
		classicalPub = k.Public().(ed25519.PublicKey)
		s.classical = k
	default:
		return fail(fmt.Errorf("officer: unknown classical algorithm %q", alg))
	}
	pk, sk := mldsa65.NewKeyFromSeed((*[seedSize]byte)(mldsaSeed))
	s.mldsa = sk
	xwingPub, err := wrapkey.PublicKey(xwingSeed)
	if err != nil {
		return fail(err)
	}
	if s.pub, err = newPublicKey("public key", name, alg, classicalPub, pk.Bytes(), xwingPub); err != nil {
		return fail(err)
	}
	return s, nil
}

// Public returns the officer's public key bundle.
func (s *Signer) Public() *PublicKey { return s.pub }

// Sign signs a 32-byte digest (a proposal's, say) with both keys and returns the
// hybrid signature; see SignatureDomain for what exactly is signed. With a PKCS#11
// token the classical part is made inside the token, and errors from it are
// *hsm.Error values. After Close, Sign returns ErrClosed.
func (s *Signer) Sign(digest [32]byte) (Signature, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Signature{}, ErrClosed
	}
	msg := signedMessage(digest)
	sig := Signature{Alg: s.pub.alg}
	switch s.pub.alg {
	case ECDSAP256:
		h := sha256.Sum256(msg)
		der, err := s.classical.Sign(rand.Reader, h[:], crypto.SHA256)
		if err != nil {
			return Signature{}, fmt.Errorf("officer: sign (classical part): %w", err)
		}
		if sig.Classical, err = ecdsaRaw(der); err != nil {
			return Signature{}, err
		}
	case Ed25519:
		var err error
		if sig.Classical, err = s.classical.Sign(nil, msg, crypto.Hash(0)); err != nil {
			return Signature{}, fmt.Errorf("officer: sign (classical part): %w", err)
		}
	}
	sig.MLDSA65 = make([]byte, MLDSA65SignatureSize)
	if err := mldsa65.SignTo(s.mldsa, msg, []byte(MLDSAContext), true, sig.MLDSA65); err != nil {
		return Signature{}, fmt.Errorf("officer: sign (ML-DSA-65 part): %w", err)
	}
	return sig, nil
}

// XWingPublicKey returns the officer's X-Wing public key, as Public().XWingKey()
// does. With OpenHPKE it makes a Signer usable wherever escrow wants the officer's
// key pair without its private half (kek.EscrowKey).
func (s *Signer) XWingPublicKey() []byte { return s.pub.XWingKey() }

// EscrowKey returns the officer's X-Wing private key as a *wrapkey.Key for KEK kekID
// version `version`, to open an escrow share that was sealed to this officer with
// wrapkey.Wrap(officerPublicKey.XWingKey(), kekID, version, ctx, share). The Key
// holds its own copy of the private key: Destroy it as soon as the share is open.
func (s *Signer) EscrowKey(kekID string, version uint32) (*wrapkey.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return wrapkey.NewKey(s.xwingSeed, kekID, version)
}

// hpkeSuite is the HPKE suite of OpenHPKE: the same as wrapkey's.
var hpkeSuite = hpke.NewSuite(hpke.KEM_XWING, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES256GCM)

// OpenHPKE opens one HPKE (RFC 9180, base mode) message sealed to the officer's
// X-Wing key with KEM X-Wing (0x647a), KDF HKDF-SHA256 and AEAD AES-256-GCM — for
// escrow formats that frame HPKE themselves. enc is the encapsulated key (1120 bytes);
// the message is the first one of the context. A failure to open is ErrOpen. The
// private key never leaves the Signer; the caller owns (and should clear) the
// plaintext.
func (s *Signer) OpenHPKE(enc, ciphertext, info, aad []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if len(enc) != xwing.CiphertextSize {
		return nil, fmt.Errorf("%w: enc is %d bytes, X-Wing's is %d", ErrOpen, len(enc), xwing.CiphertextSize)
	}
	sk, _ := xwing.DeriveKeyPair(s.xwingSeed)
	defer func() { *sk = xwing.PrivateKey{} }()
	r, err := hpkeSuite.NewReceiver(sk, info)
	if err != nil {
		return nil, fmt.Errorf("officer: open: %w", err)
	}
	opener, err := r.Setup(enc)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := opener.Open(ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Close overwrites the private key material the Signer holds and closes its PKCS#11
// token (the key stays on the token). It is idempotent; afterwards Sign, EscrowKey
// and OpenHPKE return ErrClosed. It waits for calls in flight.
func (s *Signer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	clear(s.classicalSeed)
	clear(s.mldsaSeed)
	clear(s.xwingSeed)
	if s.mldsa != nil {
		*s.mldsa = mldsa65.PrivateKey{}
	}
	switch k := s.classical.(type) {
	case ed25519.PrivateKey:
		clear(k)
	case *ecdsa.PrivateKey:
		// The scalar also lives in crypto/ecdsa's internal key, out of reach; clear
		// what is reachable.
		if k.D != nil {
			clear(k.D.Bits())
			k.D.SetInt64(0)
		}
	}
	s.classical = nil
	var err error
	if s.tok != nil {
		err = s.tok.Close()
	}
	return err
}

// discard removes what Generate created outside the process — the key pair on the
// token — and closes s. Keygen calls it when it cannot write the key files.
func (s *Signer) discard() {
	if s.tok != nil && s.uri != nil {
		s.tok.Destroy(s.uri.Object)
	}
	s.Close()
}

// String names the officer, the fingerprint and where the classical key lives.
func (s *Signer) String() string {
	if s == nil || s.pub == nil {
		return "<nil officer signer>"
	}
	where := "software"
	if s.uri != nil {
		where = "PKCS#11 " + s.uri.String()
	}
	return fmt.Sprintf("officer signer %s (%s key: %s)", s.pub, s.pub.alg, where)
}

// LogValue implements slog.LogValuer without any secret.
func (s *Signer) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("officer", s.pub.name),
		slog.String("fingerprint", s.pub.fp),
		slog.String("classical", string(s.pub.alg)),
	}
	if s.uri != nil {
		attrs = append(attrs, slog.String("pkcs11", s.uri.String()))
	}
	return slog.GroupValue(attrs...)
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %s, %x, ...) prints
// String and never the struct's fields.
func (s *Signer) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }
