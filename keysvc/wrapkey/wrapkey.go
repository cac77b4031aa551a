// Wrapping and unwrapping with circl's HPKE and X-Wing.

package wrapkey

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem/xwing"
)

// Sentinels callers branch on.
var (
	// ErrWrongKEK: the blob names another KEK id than the key given.
	ErrWrongKEK = errors.New("wrapkey: blob names another kek")
	// ErrWrongVersion: the blob names another KEK version than the key given.
	ErrWrongVersion = errors.New("wrapkey: blob names another kek version")
	// ErrOpen: authentication failed. HPKE cannot say why.
	ErrOpen = errors.New("wrapkey: cannot unwrap: wrong context or key, or blob was modified")
	// ErrKeyDestroyed: the Key was destroyed (evicted) before this use.
	ErrKeyDestroyed = errors.New("wrapkey: key destroyed")
)

var suiteXWing = hpke.NewSuite(hpke.KEM_XWING, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES256GCM)

// PublicKey returns the X-Wing public key (1216 bytes) for a 32-byte seed.
func PublicKey(seed []byte) ([]byte, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("wrapkey: seed of %d bytes, want %d", len(seed), SeedSize)
	}
	sk, pk := xwing.DeriveKeyPair(seed)
	*sk = xwing.PrivateKey{}
	pub := make([]byte, PublicKeySize)
	pk.Pack(pub)
	return pub, nil
}

// Wrap seals dek to pub (an X-Wing public key) for KEK id/version under ctx;
// needs no secret, so agents can wrap offline. It reads exactly 64 bytes
// from rnd (crypto/rand if nil); the same bytes give the same blob. dek is
// 1..4096 bytes.
func Wrap(rnd io.Reader, pub []byte, kekID string, version uint32, ctx Context, dek []byte) ([]byte, error) {
	info, err := Info(kekID, version, ctx)
	if err != nil {
		return nil, err
	}
	if len(dek) < MinDEKSize || len(dek) > MaxDEKSize {
		return nil, fmt.Errorf("wrapkey: dek of %d bytes not in %d..%d", len(dek), MinDEKSize, MaxDEKSize)
	}
	if len(pub) != PublicKeySize {
		return nil, fmt.Errorf("wrapkey: x-wing public key of %d bytes, want %d", len(pub), PublicKeySize)
	}
	pk, err := xwing.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("wrapkey: invalid x-wing public key: %w", err)
	}
	sender, err := suiteXWing.NewSender(pk, info)
	if err != nil {
		return nil, fmt.Errorf("wrapkey: wrap for kek %q v%d: %w", kekID, version, err)
	}
	enc, sealer, err := sender.Setup(rnd)
	if err != nil {
		return nil, fmt.Errorf("wrapkey: wrap for kek %q v%d: hpke setup: %w", kekID, version, err)
	}
	b := &Blob{Suite: SuiteXWingSHA256AES256GCM, KEKID: kekID, KEKVersion: version, Enc: enc}
	ct, err := sealer.Seal(dek, b.appendAAD(nil))
	if err != nil {
		return nil, fmt.Errorf("wrapkey: wrap for kek %q v%d: seal: %w", kekID, version, err)
	}
	b.Ciphertext = ct
	return b.Marshal(), nil
}

// Unwrap opens a blob with the seed of KEK kekID version `version`. It
// returns a *ParseError, ErrWrongKEK, ErrWrongVersion or ErrOpen, checked
// in that order, or an error for an invalid seed or context.
func Unwrap(seed []byte, kekID string, version uint32, blob []byte, ctx Context) ([]byte, error) {
	b, err := parseFor(blob, kekID, version)
	if err != nil {
		return nil, err
	}
	k, err := NewKey(seed, kekID, version)
	if err != nil {
		return nil, err
	}
	defer k.Destroy()
	return k.open(b, ctx)
}

// parseFor parses blob and checks it is for kekID version.
func parseFor(blob []byte, kekID string, version uint32) (*Blob, error) {
	b, err := Parse(blob)
	if err != nil {
		return nil, err
	}
	if b.Suite != SuiteXWingSHA256AES256GCM {
		return nil, fmt.Errorf("wrapkey: unwrap: unsupported suite %d", b.Suite)
	}
	if b.KEKID != kekID {
		return nil, fmt.Errorf("%w: blob is for kek %q, key is for %q", ErrWrongKEK, b.KEKID, kekID)
	}
	if b.KEKVersion != version {
		return nil, fmt.Errorf("%w: blob is for kek %q v%d, key is v%d", ErrWrongVersion, kekID, b.KEKVersion, version)
	}
	return b, nil
}

// Key is one KEK version's private key, derived once from its seed for
// repeated unwraps. Its methods are safe for concurrent use; after Destroy,
// Unwrap fails.
type Key struct {
	kekID   string
	version uint32
	pub     []byte

	mu sync.RWMutex
	sk *xwing.PrivateKey // nil once destroyed
}

// NewKey derives the private key of KEK kekID version `version` from its
// 32-byte seed. It keeps no reference to seed.
func NewKey(seed []byte, kekID string, version uint32) (*Key, error) {
	if err := ValidateKEKID(kekID); err != nil {
		return nil, err
	}
	if version == 0 {
		return nil, fmt.Errorf("wrapkey: kek version 0, versions start at 1")
	}
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("wrapkey: seed of %d bytes, want %d", len(seed), SeedSize)
	}
	// The seed is the X-Wing private key. Not HPKE DeriveKeyPair: circl's
	// (KEM_XWING.Scheme) and crypto/hpke's hash the seed first, each its own
	// way, and give other keys.
	sk, pk := xwing.DeriveKeyPair(seed)
	pub := make([]byte, PublicKeySize)
	pk.Pack(pub)
	return &Key{kekID: kekID, version: version, pub: pub, sk: sk}, nil
}

// PublicKey returns the key's X-Wing public key (1216 bytes).
func (k *Key) PublicKey() []byte {
	return append([]byte(nil), k.pub...)
}

// Unwrap opens blob under ctx, like the package's Unwrap with this key's
// seed, id and version.
func (k *Key) Unwrap(blob []byte, ctx Context) ([]byte, error) {
	b, err := parseFor(blob, k.kekID, k.version)
	if err != nil {
		return nil, err
	}
	return k.open(b, ctx)
}

// open authenticates and decrypts a parsed blob already checked to be for k.
func (k *Key) open(b *Blob, ctx Context) ([]byte, error) {
	info, err := Info(b.KEKID, b.KEKVersion, ctx)
	if err != nil {
		return nil, err // an invalid context, which no blob can be bound to
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sk == nil {
		return nil, fmt.Errorf("unwrap kek %q v%d: %w", b.KEKID, b.KEKVersion, ErrKeyDestroyed)
	}
	r, err := suiteXWing.NewReceiver(k.sk, info)
	if err != nil {
		return nil, fmt.Errorf("wrapkey: unwrap kek %q v%d: %w", b.KEKID, b.KEKVersion, err)
	}
	opener, err := r.Setup(b.Enc)
	if err != nil {
		return nil, ErrOpen // enc has the right size, so this is not expected
	}
	dek, err := opener.Open(b.Ciphertext, b.appendAAD(nil))
	if err != nil {
		return nil, ErrOpen
	}
	return dek, nil
}

// Destroy overwrites the private key k holds (see the package doc for what
// circl keeps out of reach) and makes later Unwraps fail.
func (k *Key) Destroy() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sk != nil {
		*k.sk = xwing.PrivateKey{}
		k.sk = nil
	}
}
