// Package state is the cluster's deterministic core: the raft commands,
// the state machine that applies them to a bbolt transaction, and the
// records it keeps (nodes, officers, ceremonies, KEKs, revocations, the
// drills and custody indexes) beside the key-op log.
//
//	applied, err := state.Apply(tx, index, data) // one committed command
//	k, found, err := state.GetKEK(tx, id)        // reads for the runtime
//
// # What it owns
//
// The command envelope (Command, Encode, Decode) and its Result; Apply and
// the apply* functions behind it; the records and the bucket layout
// (apply.go) with their read helpers (GetNode, ForKEKs, Drills, …);
// the deterministic verdicts (*CommandError, the Err… sentinels, the
// refusal codes of package errcode they log); Screen, the refusals the
// leader may decide before raft. Package keysvc, the node runtime, owns
// the database file, snapshots and restores, and everything that talks
// to an HSM, a peer or a clock.
//
// # Determinism
//
// Apply reads only its command and tx: no clock, HSM, randomness or
// network. Whatever varies comes in the command (the leader stamps entry
// times; Apply only keeps them non-decreasing). Every node that applies
// the same commands from the same state writes the same bytes (Digest).
// Apply is idempotent by raft index: the last applied index is stored with
// the effects in the same transaction, and a command at or below it is
// ErrApplied. A rejected command (*CommandError) changes nothing: the
// caller rolls back and records only the index (MarkApplied). Any other
// error is a storage failure, after which the caller must stop applying.
//
// # Import rule
//
// This package imports no net, net/http, crypto/rand, math/rand, os/exec,
// hsm, crypto11, pkcs11, raft or keysvc/peer, and none of its files calls
// time.Now, time.Since or rand.*: imports_test.go enforces it, and lists
// the leaf packages (identity, ledger, kek, officer) that still reach some
// of those through their non-deterministic halves.
package state
