// Checking a KEK version's public key against the log, for a caller who
// wraps offline with it (the backup agent's offline wrap): the key must be
// the one named by the ceremony.execute entry that dealt the version, and
// that entry must be in the log a pinned trust file vouches for.

package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/custos-eu/custos/keysvc/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors of a proof that an entry is in the log (VerifyEntry), for
// callers to branch on with errors.Is.
var (
	// ErrCheckpointUntrusted: the cluster's checkpoint does not verify with
	// the trusted node keys and origin (another cluster, a node added since
	// the pin, or a forged checkpoint).
	ErrCheckpointUntrusted = errors.New("audit: the cluster's checkpoint is not signed by a trusted node")
	// ErrLogInconsistent: the cluster's log is not an extension of the
	// pinned one (a forked or rewritten log, or a bad proof).
	ErrLogInconsistent = errors.New("audit: the cluster's log is not consistent with the pinned checkpoint")
	// ErrNotIncluded: the entry is not at its index in the log.
	ErrNotIncluded = errors.New("audit: the entry is not in the log at its index")
)

// Errors VerifyKEKKey wraps besides VerifyEntry's, one per check.
var (
	// ErrKEKKeyEntry: the entry is not an executed ceremony that dealt a
	// KEK version (malformed, another type, refused or failed).
	ErrKEKKeyEntry = errors.New("audit: kek key: the entry did not deal a kek version")
	// ErrKEKKeyWrongKEK: the entry dealt a version of another KEK.
	ErrKEKKeyWrongKEK = errors.New("audit: kek key: the entry is of another kek")
	// ErrKEKKeyWrongVersion: the entry dealt another version.
	ErrKEKKeyWrongVersion = errors.New("audit: kek key: the entry is of another kek version")
	// ErrKEKKeyWrongKey: the entry names another public key.
	ErrKEKKeyWrongKey = errors.New("audit: kek key: the public key is not the one the log names")
)

// EntryProof is what the cluster serves to prove an entry is in its log:
// a current signed checkpoint, a consistency proof between it and the
// trust file's pinned checkpoint, and the entry with its inclusion proof in
// the checkpoint's tree.
type EntryProof struct {
	// Checkpoint is a signed checkpoint note (client Checkpoint).
	Checkpoint []byte
	// Consistency links the pinned checkpoint's tree and Checkpoint's:
	// client ConsistencyProof(min, max) of the two sizes, from the smaller
	// tree to the larger (empty for equal sizes).
	Consistency tlog.TreeProof
	// Entry is the canonical bytes of entry Index (for a KEK key, the
	// ceremony.execute entry that dealt the version: PublicKeyResponse
	// Entry and LogIndex).
	Entry []byte
	Index uint64
	// Inclusion is Entry's inclusion proof in Checkpoint's tree (client
	// InclusionProof(Index, size).Hashes).
	Inclusion tlog.RecordProof
}

// VerifyNote verifies a signed checkpoint note of the cluster with the
// node keys t trusts; failures wrap ErrCheckpointUntrusted and say what to do.
func (t *Trust) VerifyNote(note []byte) (ledger.Checkpoint, error) {
	if t == nil || len(t.keys) == 0 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: no trust file (make one with custos audit checkpoint)", ErrCheckpointUntrusted)
	}
	cp, _, err := ledger.VerifyCheckpoint(note, t.Origin, t.keys...)
	if err != nil {
		if t.served {
			return ledger.Checkpoint{}, fmt.Errorf("%w: %v (checked with the node keys the cluster serves)", ErrCheckpointUntrusted, err)
		}
		return ledger.Checkpoint{}, fmt.Errorf("%w: %v; check that the trust file (of cluster %s, pinned at size %d) is of this cluster, and re-pin it with custos audit checkpoint if nodes changed since",
			ErrCheckpointUntrusted, err, t.Cluster, t.Pinned().Size)
	}
	return cp, nil
}

// VerifyEntry checks that p.Entry is entry p.Index of the log t vouches
// for: p.Checkpoint verifies with t's node keys and origin; its tree and
// t's pinned one are consistent (one extends the other; equal sizes need
// equal roots; no pin, for a Trust from ServedTrust, checks none); and
// p.Entry is entry p.Index of p.Checkpoint's tree. It returns the parsed
// entry and the verified checkpoint. It needs no network; each failure
// wraps ErrCheckpointUntrusted, ErrLogInconsistent or ErrNotIncluded and
// says what to do.
func VerifyEntry(t *Trust, p EntryProof) (ledger.Entry, ledger.Checkpoint, error) {
	cp, err := t.VerifyNote(p.Checkpoint)
	if err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, err
	}
	if !t.served {
		pinned := t.Pinned()
		older, newer := pinned, cp
		if cp.Size < pinned.Size {
			older, newer = cp, pinned
		}
		if err := ledger.VerifyConsistency(older, newer, p.Consistency); err != nil {
			return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("%w: pinned tree of size %d (root %s), cluster's tree of size %d (root %s): %v; the log may have been forked or rewritten: do not trust this cluster, and report it",
				ErrLogInconsistent, pinned.Size, pinned.Hash, cp.Size, cp.Hash, err)
		}
	}
	if err := ledger.VerifyInclusion(cp, p.Index, p.Entry, p.Inclusion); err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("%w: entry %d in the tree of size %d: %v", ErrNotIncluded, p.Index, cp.Size, err)
	}
	e, err := ledger.ParseEntry(p.Entry) // cannot fail after VerifyInclusion: the leaf was canonical
	if err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("%w: entry %d: %v", ErrNotIncluded, p.Index, err)
	}
	return e, cp, nil
}

// VerifyKEKKey checks that pub is the public key of version version of
// KEK kekID as the log that t vouches for records it: p proves an entry
// (VerifyEntry), and that entry is an ok ceremony.execute entry whose
// details kek.id, kek.version and kek.public_key are kekID, version and
// "sha256:" and the hex SHA-256 of pub. It returns the verified
// checkpoint. Failures wrap VerifyEntry's errors or one of the ErrKEKKey
// errors and say what to do.
func VerifyKEKKey(t *Trust, p EntryProof, kekID string, version uint32, pub []byte) (ledger.Checkpoint, error) {
	e, cp, err := VerifyEntry(t, p)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w; the key cannot be checked: do not wrap with it", err)
	}
	return cp, CheckKEKKey(e, kekID, version, pub)
}

// CheckKEKKey checks that e, an entry proved in the log, is the ok
// ceremony.execute entry that dealt version version of KEK kekID with
// public key pub. Failures wrap one of the ErrKEKKey errors.
func CheckKEKKey(e ledger.Entry, kekID string, version uint32, pub []byte) error {
	if e.Type != ledger.TypeExecute || e.Outcome != ledger.OutcomeOK {
		why := ""
		if e.Reason != "" {
			why = " (" + e.Reason + ")"
		}
		return fmt.Errorf("%w: entry %d is %s with outcome %s%s, not an executed ceremony (ceremony.execute, ok)", ErrKEKKeyEntry, e.Index, e.Type, e.Outcome, why)
	}
	if _, ok := e.Details["kek.public_key"]; !ok {
		return fmt.Errorf("%w: entry %d executed a ceremony that dealt no kek version", ErrKEKKeyEntry, e.Index)
	}
	if got := e.Details["kek.id"]; got != kekID {
		return fmt.Errorf("%w: entry %d dealt kek %q, not %q", ErrKEKKeyWrongKEK, e.Index, got, kekID)
	}
	if got := e.Details["kek.version"]; got != strconv.FormatUint(uint64(version), 10) {
		return fmt.Errorf("%w: entry %d dealt version %q of kek %q, not %d", ErrKEKKeyWrongVersion, e.Index, got, kekID, version)
	}
	sum := sha256.Sum256(pub)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := e.Details["kek.public_key"]; got != want || len(pub) == 0 {
		return fmt.Errorf("%w: kek %q v%d: entry %d names public key %s, the key served is %s; do not wrap with it, and report it",
			ErrKEKKeyWrongKey, kekID, version, e.Index, got, want)
	}
	return nil
}
