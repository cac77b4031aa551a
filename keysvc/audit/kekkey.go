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

// Errors VerifyKEKKey wraps, one per check, for callers to branch on with
// errors.Is.
var (
	// ErrKEKKeyCheckpoint: the cluster's checkpoint does not verify with
	// the trust file's node keys and origin (another cluster, a node
	// added since the pin, or a forged checkpoint).
	ErrKEKKeyCheckpoint = errors.New("audit: kek key: the cluster's checkpoint is not signed by a node the trust file trusts")
	// ErrKEKKeyInconsistent: the cluster's log is not an extension of the
	// pinned one (a forked or rewritten log, or a bad proof).
	ErrKEKKeyInconsistent = errors.New("audit: kek key: the cluster's log is not consistent with the pinned checkpoint")
	// ErrKEKKeyNotIncluded: the entry is not at its index in the log.
	ErrKEKKeyNotIncluded = errors.New("audit: kek key: the entry is not in the log at its index")
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

// KEKKeyProof is what the cluster serves to prove a KEK version's public
// key: a current signed checkpoint, a consistency proof between it and the
// trust file's pinned checkpoint, and the entry that dealt the version with
// its inclusion proof in the checkpoint's tree.
type KEKKeyProof struct {
	// Checkpoint is a signed checkpoint note (client Checkpoint).
	Checkpoint []byte
	// Consistency links the pinned checkpoint's tree and Checkpoint's:
	// client ConsistencyProof(min, max) of the two sizes, from the smaller
	// tree to the larger (empty for equal sizes).
	Consistency tlog.TreeProof
	// Entry is the canonical bytes of entry Index: the ceremony.execute
	// entry that dealt the version (PublicKeyResponse Entry and LogIndex).
	Entry []byte
	Index uint64
	// Inclusion is Entry's inclusion proof in Checkpoint's tree (client
	// InclusionProof(Index, size).Hashes).
	Inclusion tlog.RecordProof
}

// VerifyNote verifies a signed checkpoint note of the cluster with the
// node keys t trusts; failures wrap ErrKEKKeyCheckpoint and say what to do.
func (t *Trust) VerifyNote(note []byte) (ledger.Checkpoint, error) {
	if t == nil || len(t.keys) == 0 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: no trust file (make one with custos audit checkpoint)", ErrKEKKeyCheckpoint)
	}
	cp, _, err := ledger.VerifyCheckpoint(note, t.Origin, t.keys...)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %v; check that the trust file (of cluster %s, pinned at size %d) is of this cluster, and re-pin it with custos audit checkpoint if nodes changed since",
			ErrKEKKeyCheckpoint, err, t.Cluster, t.Pinned().Size)
	}
	return cp, nil
}

// VerifyKEKKey checks that pub is the public key of version version of
// KEK kekID as the log that t vouches for records it: p.Checkpoint
// verifies with t's node keys and origin; its tree and t's pinned one are
// consistent (one extends the other; equal sizes need equal roots);
// p.Entry is entry p.Index of p.Checkpoint's tree; it is an ok
// ceremony.execute entry whose details kek.id, kek.version and
// kek.public_key are kekID, version and "sha256:" and the hex SHA-256 of
// pub. It returns the verified checkpoint. It needs no network; each
// failure wraps one of the ErrKEKKey errors and says what to do.
func VerifyKEKKey(t *Trust, p KEKKeyProof, kekID string, version uint32, pub []byte) (ledger.Checkpoint, error) {
	cp, err := t.VerifyNote(p.Checkpoint)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	pinned := t.Pinned()
	older, newer := pinned, cp
	if cp.Size < pinned.Size {
		older, newer = cp, pinned
	}
	if err := ledger.VerifyConsistency(older, newer, p.Consistency); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: pinned tree of size %d (root %s), cluster's tree of size %d (root %s): %v; the log may have been forked or rewritten: do not trust this cluster's keys, and report it",
			ErrKEKKeyInconsistent, pinned.Size, pinned.Hash, cp.Size, cp.Hash, err)
	}
	if err := ledger.VerifyInclusion(cp, p.Index, p.Entry, p.Inclusion); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d in the tree of size %d: %v; the key cannot be checked: do not wrap with it", ErrKEKKeyNotIncluded, p.Index, cp.Size, err)
	}
	e, err := ledger.ParseEntry(p.Entry) // cannot fail after VerifyInclusion
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d: %v", ErrKEKKeyEntry, p.Index, err)
	}
	if e.Type != typeExecute || e.Outcome != ledger.OutcomeOK {
		why := ""
		if e.Reason != "" {
			why = " (" + e.Reason + ")"
		}
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d is %s with outcome %s%s, not an executed ceremony (ceremony.execute, ok)", ErrKEKKeyEntry, p.Index, e.Type, e.Outcome, why)
	}
	if _, ok := e.Details["kek.public_key"]; !ok {
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d executed a ceremony that dealt no kek version", ErrKEKKeyEntry, p.Index)
	}
	if got := e.Details["kek.id"]; got != kekID {
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d dealt kek %q, not %q", ErrKEKKeyWrongKEK, p.Index, got, kekID)
	}
	if got := e.Details["kek.version"]; got != strconv.FormatUint(uint64(version), 10) {
		return ledger.Checkpoint{}, fmt.Errorf("%w: entry %d dealt version %q of kek %q, not %d", ErrKEKKeyWrongVersion, p.Index, got, kekID, version)
	}
	sum := sha256.Sum256(pub)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := e.Details["kek.public_key"]; got != want || len(pub) == 0 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: kek %q v%d: entry %d names public key %s, the key served is %s; do not wrap with it, and report it",
			ErrKEKKeyWrongKey, kekID, version, p.Index, got, want)
	}
	return cp, nil
}
