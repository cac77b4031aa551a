package hsm

// The Token interface and the small types around it, shared by every backend.

import (
	"crypto"
	"strconv"
)

// Token is one HSM token holding Custos keys, found by label. Keys are named by their
// label; AES keys and ECDSA key pairs share one namespace. A Token is safe for concurrent
// use; Close waits for operations in flight.
//
// All errors are *Error values; use errors.Is with the sentinels below. After Close
// every method returns ErrClosed.
type Token interface {
	// GenerateAESKey creates an AES-256 key inside the token: CKA_TOKEN, CKA_SENSITIVE,
	// not CKA_EXTRACTABLE. ErrKeyExists if the label is taken.
	GenerateAESKey(label string) error
	// GenerateSigner creates an ECDSA P-256 key pair inside the token (private: token,
	// sensitive, non-extractable). ErrKeyExists if the label is taken.
	GenerateSigner(label string) (crypto.Signer, error)
	// Signer finds an existing ECDSA key pair by label. ErrKeyNotFound.
	//
	// The returned crypto.Signer is safe for concurrent use and returns ASN.1 (DER)
	// signatures of the digest it is given. It stays bound to that key pair: once the
	// pair is destroyed, Sign fails with ErrKeyNotFound, even if a new key later takes
	// the label.
	Signer(label string) (crypto.Signer, error)
	// Seal encrypts with AES-256-GCM inside the token under the AES key `label`, with a fresh
	// random 96-bit nonce; output = nonce || ciphertext||tag. ErrKeyNotFound if there is
	// no AES key with that label.
	Seal(label string, plaintext, aad []byte) ([]byte, error)
	// Open reverses Seal; ErrOpen when authentication fails (wrong aad, tampered,
	// truncated, sealed under a different key).
	Open(label string, sealed, aad []byte) ([]byte, error)
	// Destroy removes every object with that label (AES key, or both halves of a key pair).
	// ErrKeyNotFound if none.
	Destroy(label string) error
	// List returns the Custos keys on the token (label + kind), sorted by label.
	List() ([]KeyInfo, error)
	// Close releases the token. It is idempotent; keys stay on the token.
	Close() error
}

// KeyKind says what a key label names.
type KeyKind int

const (
	KindAES   KeyKind = iota + 1 // AES-256 secret key, used by Seal and Open
	KindECDSA                    // ECDSA P-256 key pair, used by Signer
)

func (k KeyKind) String() string {
	switch k {
	case KindAES:
		return "aes"
	case KindECDSA:
		return "ecdsa"
	}
	return "KeyKind(" + strconv.Itoa(int(k)) + ")"
}

// KeyInfo describes one key on a token, as List reports it.
type KeyInfo struct {
	Label string
	Kind  KeyKind
}

// NonceSize and Overhead give the layout of a sealed message:
// nonce (NonceSize bytes) || ciphertext (len(plaintext) bytes) || tag (TagSize bytes).
const (
	NonceSize = 12
	TagSize   = 16
	Overhead  = NonceSize + TagSize
)

// MaxLabelLen is the longest key label accepted.
const MaxLabelLen = 255

// CheckLabel reports whether label can name a key: 1 to MaxLabelLen bytes.
// Backends call it first, so every backend rejects the same labels.
func CheckLabel(label string) error {
	if label == "" || len(label) > MaxLabelLen {
		return errBadLabel
	}
	return nil
}
