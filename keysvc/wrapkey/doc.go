// Package wrapkey is Custos's post-quantum hybrid wrapped-key format.
//
// [Wrap] seals a data key (DEK) to the public key of one KEK version with HPKE
// (RFC 9180) in base mode: KEM X-Wing (0x647a, X25519 + ML-KEM-768), KDF
// HKDF-SHA256 (0x0001), AEAD AES-256-GCM (0x0002). Wrapping needs only the
// public key, so an agent can wrap offline. [Unwrap] opens a blob with the
// KEK version's 32-byte seed, which is the X-Wing private key itself
// (draft-connolly-cfrg-xwing-kem; Go's crypto/hpke MLKEM768X25519
// NewPrivateKey takes the same 32 bytes). [NewKey] derives the key once for
// repeated unwraps. Everything here is safe for concurrent use.
//
// # Binding
//
// The HPKE info is
//
//	"custos/v1/wrap" || uint8 len(kek id) || kek id || uint32 kek version || context
//
// where context is the canonical encoding of the caller's [Context]:
//
//	uint16 count || count × (uint16 len(key) || key || uint16 len(value) || value)
//
// with entries sorted by key, bytewise. Keys are 1..128 bytes and values
// 0..1024 bytes of valid UTF-8, compared as bytes (no Unicode
// normalisation); at most 32 entries and 4096 encoded bytes. A nil and an
// empty Context encode alike. All integers are big-endian.
//
// The HPKE AAD is the blob's bytes before the ciphertext length: magic,
// format version, suite, KEK id, KEK version and enc. So every header byte
// and enc are authenticated, not only the ciphertext.
//
// # Format
//
// A blob, with n the KEK id length and L the ciphertext length:
//
//	offset   size  field
//	0        4     magic "CSTW" (43 53 54 57)
//	4        1     format version, 1
//	5        2     suite, 1 = X-Wing / HKDF-SHA256 / AES-256-GCM
//	7        1     n, 1..64
//	8        n     KEK id, bytes in [a-z0-9._-]
//	8+n      4     KEK version, >= 1
//	12+n     2     enc length, 1120 for suite 1
//	14+n     1120  enc, the HPKE encapsulated key
//	1134+n   4     L, 17..4112 (a 1..4096-byte DEK plus the 16-byte tag)
//	1138+n   L     ciphertext
//
// Nothing may follow. [Parse] is the only parser and accepts exactly this;
// anything else is a [*ParseError] giving the offset of the bad field. A
// 32-byte DEK under an 8-byte KEK id makes a 1194-byte blob.
//
// # Errors
//
// Unwrap checks, in order: the blob parses ([*ParseError]); it names kekID
// ([ErrWrongKEK]) and version ([ErrWrongVersion]); then it derives the key
// and opens. A failed open is [ErrOpen]: wrong context, wrong seed or a
// modified blob, which HPKE cannot tell apart. Errors never carry key
// material or plaintext.
//
// # Zeroisation
//
// Unwrap and [Key.Destroy] overwrite the X-Wing private key struct they hold
// (seed copy, X25519 scalar, ML-KEM hash and rejection value). circl keeps
// the ML-KEM secret vector behind an unexported pointer and the HPKE key
// schedule (shared secret, AEAD key) in unexported contexts; those are left
// to the garbage collector, as is the AES key schedule. Callers own the seed
// and the returned DEK and should clear them when done.
package wrapkey
