// Package ledgerdb stores the ledger (package ledger's log) in bbolt: the
// persistent Merkle tree the node appends to and proves from. Readers that
// only verify (the audit tool, the client) import ledger alone.
//
// # Writing
//
// The state machine appends inside its own bbolt write transaction, so log
// and state commit together:
//
//	first, err := ledgerdb.AppendEntries(tx, entries...) // or ledgerdb.Append(tx, canonicalBytes...)
//
// Appending is deterministic (no clock, randomness or I/O beyond tx): the
// same entries give the same stored keys and values and the same root,
// whether appended one per transaction or all in one. The leader assigns
// entry times before proposing; indexes follow the log's size.
//
// # Storage
//
// Everything lives under the top-level bucket [BucketName] ("ledger"):
//
//	ledger/entries  8-byte big-endian index -> canonical entry bytes
//	ledger/hashes   8-byte big-endian tlog stored-hash index -> 32-byte hash
//	ledger/meta     "size" -> 8-byte big-endian entry count
//
// The hashes are exactly those of tlog.StoredHashes, so roots and proofs
// come from tlog.TreeHash, ProveRecord and ProveTree reading bbolt through
// a tlog.HashReader; nothing is cached in memory, so memory stays flat as
// the log grows (about 2 stored hashes per entry on disk). Reads
// ([Size], [ReadEntry], [ReadEntries], [LeafHash], [Root], [TreeHead],
// [ProveInclusion], [ProveConsistency]) take any *bbolt.Tx and see its
// snapshot; take root and proof in one read transaction.
//
// # Errors
//
// Reads return [ledger.ErrIndexOutOfRange] or [ledger.ErrCorrupt]; Append
// returns [ledger.ErrIndexMismatch] for a misnumbered entry and a
// *[ledger.ParseError] for an entry that does not parse.
package ledgerdb
