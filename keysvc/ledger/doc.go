// Package ledger is Custos's key-operation log: an append-only RFC 6962
// Merkle tree of canonical JSON entries, with checkpoints signed by a
// node's ECDSA P-256 (HSM) key and ML-DSA-65 key. This package is the pure
// part: entries, checkpoints, node keys, statements, proof verification
// and the log's vocabulary (types.go), with no storage and no I/O, so
// readers (the audit tool, the client, the agent) link only it. The node
// stores the tree in bbolt with subpackage ledgerdb.
//
// # Entries
//
// [Entry.Marshal] is the only encoder and [ParseEntry] the only decoder.
// The canonical encoding is one compact JSON object (no whitespace) with
// fields in this fixed order, optional ones omitted when empty or zero:
//
//	index        decimal, required (0 allowed), at most 2^63-2
//	time         "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ": UTC, always 9 fractional digits; required
//	type         [a-z][a-z0-9._-]{0,63}; required
//	actor        {identity (required), role, region, cert_fingerprint}
//	node, kek_id, kek_version (>= 1; needs kek_id), request_id
//	outcome      "ok" | "denied" | "error"; required
//	reason
//	details      object, keys [a-z0-9._-]{1,64} sorted bytewise, at most 64
//
// Strings are valid UTF-8 of at most 1024 bytes, written raw except: '"'
// and '\' are backslash-escaped, newline, CR and tab are \n \r \t, other
// bytes below 0x20 are \u00xx with lowercase hex. Nothing is HTML-escaped.
// An entry is at most 64 KiB. ParseEntry accepts bytes only if re-encoding
// them reproduces them exactly, so each entry has one encoding and its leaf
// hash, tlog.RecordHash(bytes), is well defined. Entries hold no secrets:
// Details carries hashes and identifiers, never key material or plaintext.
//
// Carrying entries inside JSON: encoding/json may rewrite a json.RawMessage
// (json.Marshal escapes '<', '>' and '&'; since Go 1.27 every encoder also
// escapes U+2028 and U+2029, even with SetEscapeHTML(false)), which would
// change the bytes an auditor hashes. Send them base64-encoded, or copy the
// bytes into the output by hand as the raft command envelope does.
//
// # Checkpoints
//
// A [Checkpoint] body is the c2sp.org/tlog-checkpoint text (origin line,
// decimal size, base64 root hash, each newline-terminated; no extension
// lines). [SignCheckpoint] makes it a c2sp.org/signed-note with two
// signature lines under one key name, and [VerifyCheckpoint] accepts it only
// if one trusted node's two signatures both verify:
//
//   - ECDSA P-256, signature type 0x02 as signed-note assigns it (the
//     transparency-dev/witness and Rekor form): ASN.1 DER signature over
//     SHA-256 of the note text; key data 0x02 || DER SubjectPublicKeyInfo;
//     key ID = SHA-256(SubjectPublicKeyInfo)[:4]. The private key stays in
//     the HSM: the signer is any crypto.Signer.
//   - ML-DSA-65 (FIPS 204, hedged, context string "custos.eu/signed-note"),
//     which signed-note assigns no byte: it uses the reserved 0xff followed
//     by the identifier "custos.eu/ml-dsa-65"; key data is
//     0xff || "custos.eu/ml-dsa-65" || 1952-byte public key, and key ID =
//     SHA-256(name || "\n" || key data)[:4], as signed-note recommends.
//
// A verifier key is one text line, name+hash+base64(key data), hash being
// the key ID as 8 lowercase hex digits (like sumdb/note verifier keys).
// [NodeKey.MarshalText] writes a node's two lines; [ParseNodeKeys] reads a
// file of them, so an auditor can keep trusted node keys in a file.
//
// # Verifying
//
// [VerifyInclusion] and [VerifyConsistency] check proofs against
// checkpoints with no storage at all. [InclusionProof] and
// [ConsistencyProof] are the proofs' JSON shapes (base64 hashes).
//
// # Errors
//
// Parsers return *[ParseError]; VerifyCheckpoint returns *[CheckpointError]
// wrapping one of ErrMalformedCheckpoint, ErrCheckpointSignature,
// ErrCheckpointUntrusted, ErrCheckpointOrigin; proof checks wrap
// [ErrInvalidProof]. A log read by index (ledgerdb, the API) returns
// [ErrIndexOutOfRange] or [ErrCorrupt], and an append [ErrIndexMismatch]
// for a misnumbered entry.
package ledger
