// Package officer holds a security officer's keys: the hybrid signing key with which
// officers approve ceremonies, and the X-Wing key to which escrow shares are sealed.
//
// An officer key has three parts: a classical signing key (ECDSA P-256 or Ed25519 in
// software, or ECDSA P-256 inside the officer's PKCS#11 token), an ML-DSA-65 signing
// key, and an X-Wing (X25519 + ML-KEM-768) encryption key. [Keygen] creates one and
// writes NAME.key (every private part, encrypted under a passphrase) and NAME.pub
// (the [PublicKey] bundle); [Load] opens NAME.key and returns a [Signer];
// [Signer.Sign] makes a [Signature] over a 32-byte digest; [PublicKey.Verify] accepts
// it only if both parts verify. [Generate] makes a key in memory only, for tests and
// development clusters.
//
//	pub, err := officer.Keygen(dir, officer.Config{Name: "alice"}, passphrase)
//	s, err := officer.Load(filepath.Join(dir, "alice.key"), passphrase)
//	defer s.Close()
//	sig, err := s.Sign(proposalDigest)
//	err = pub.Verify(proposalDigest, sig) // errors.Is(err, officer.ErrBadSignature)
//
// The package is pure Go and opens no PKCS#11 token: a key on a token comes through
// the [Tokens] seam, whose Open returns an hsm.Token. Generate, Keygen and Load use
// the zero Tokens and refuse keys on a token; package officerhsm has the same three
// backed by hsm/pkcs11. So verifiers (the auditor's tools) link no PKCS#11 library.
//
// # Public key bundle
//
// What genesis and officer-add ceremonies record. Its one encoding is canonical JSON:
// these fields in this order, no whitespace, keys in standard base64 with padding:
//
//	{"format":"custos-officer-public-key/v1","officer":"alice","classical":"ecdsa-p256",
//	 "classical_key":"<base64>","mldsa65_key":"<base64>","xwing_key":"<base64>"}
//
// (one line; broken here for reading). officer is the officer id ([ValidateName]);
// classical is "ecdsa-p256" (classical_key: the 65-byte uncompressed point) or
// "ed25519" (the 32-byte key); mldsa65_key is the 1952-byte FIPS 204 public key;
// xwing_key the 1216-byte X-Wing public key. A NAME.pub file is this and "\n".
// [ParsePublicKey] accepts exactly these bytes (and the optional "\n"): another field
// order, whitespace, escape or base64 form is refused, as is an invalid point or an
// out-of-range ML-KEM key. So one key has one encoding, and its fingerprint,
//
//	"sha256:" || lowercase hex(SHA-256(canonical encoding))
//
// names it: officers compare fingerprints out of band before a ceremony records a key.
// An Ed25519 key is checked for length only; a key that is not a valid point can
// never verify.
//
// # Signature
//
// Both parts sign the same message, domain-separated from anything else the keys
// might sign:
//
//	message = "custos/v1/officer-signature" || 0x00 || digest (32 bytes)
//
// The classical part is ECDSA P-256 over SHA-256(message), encoded r || s (32 bytes
// each, big-endian), or pure Ed25519 over message (64 bytes). The ML-DSA-65 part is
// FIPS 204 ML-DSA.Sign (hedged) over message with the context string
// "custos/v1/officer-signature" (3309 bytes). Canonical JSON, as above:
//
//	{"format":"custos-officer-signature/v1","classical":"ecdsa-p256",
//	 "classical_sig":"<base64>","mldsa65_sig":"<base64>"}
//
// [ParseSignature] is as strict as ParsePublicKey. [PublicKey.Verify] returns nil only
// if the signature's classical algorithm is the key's and both parts verify; a missing,
// malformed or failing part is an error wrapping [ErrBadSignature] that names the part.
// Signatures are randomised: never use their bytes as an identifier.
//
// [PublicKey] and [Signature] implement json.Marshaler and json.Unmarshaler with these
// encodings, so they embed in ceremony documents as JSON objects; when unmarshalled
// there, insignificant whitespace is tolerated, nothing else.
//
// # Key file
//
// NAME.key is an age file (filippo.io/age) encrypted with age's scrypt passphrase
// recipient, at work factor 2^18 by default ([DefaultWorkFactor]). Its plaintext is
// canonical JSON holding every private seed:
//
//	{"format":"custos-officer-key/v1","officer":"alice","classical":"ecdsa-p256",
//	 "classical_seed":"<base64>" | "pkcs11_uri":"pkcs11:...",
//	 "mldsa65_seed":"<base64>","xwing_seed":"<base64>","fingerprint":"sha256:..."}
//
// classical_seed is the 32-byte P-256 scalar or Ed25519 seed; for a key on a token,
// pkcs11_uri records instead where it is ([PKCS11URI]: module, token, object label,
// PIN source — never a PIN). mldsa65_seed is the 32-byte FIPS 204 seed ξ; xwing_seed
// the 32-byte X-Wing seed (the private key, as in package wrapkey). Load rebuilds the
// keys, and refuses them ([ErrKeyMismatch]) unless their fingerprint is the one the
// file records, which also catches a token whose key was replaced. Keygen writes the
// file with mode 0600 and never overwrites an existing file; a wrong passphrase is
// [ErrBadPassphrase].
//
// # Escrow
//
// Escrow shares are sealed to an officer's X-Wing public key ([PublicKey.XWingKey]).
// To open one, [Signer.EscrowKey] returns a *wrapkey.Key for blobs made with
// wrapkey.Wrap, and [Signer.OpenHPKE] opens a bare HPKE message (X-Wing, HKDF-SHA256,
// AES-256-GCM). With [Signer.XWingPublicKey], a *Signer is the key pair escrow asks
// for (kek.EscrowKey). The X-Wing seed itself never leaves the Signer.
//
// # Zeroisation, and its limits
//
// [Signer.Close] overwrites the seeds the Signer holds, the ML-DSA-65 private key
// struct, the Ed25519 private key and the words of the P-256 scalar; Load and Keygen
// clear the plaintext key file and the decoded seeds they handled. This is best effort
// in Go: crypto/ecdsa keeps a second copy of the scalar in an internal key; the JSON
// decoder, age's stream decryption and scrypt leave copies in buffers that are not
// ours to clear; age takes the passphrase as a string (immutable, so never cleared);
// and the garbage collector may have moved or copied any of these before they were
// cleared. Keys on a PKCS#11 token never enter the process.
//
// # Concurrency and errors
//
// PublicKey is immutable; Signer is safe for concurrent use. Parsers return only
// *[ParseError]; callers branch on [ErrBadSignature], [ErrBadPassphrase],
// [ErrKeyMismatch], [ErrOpen], [ErrClosed], fs.ErrExist (Keygen refusing to
// overwrite) and, for token failures, the sentinels of package hsm.
package officer
