// The data layout version of a state database: which release's layout the
// file is in, and the migrations from one layout to the next.

package state

import (
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// LayoutVersion is the data layout this release reads and writes. Raise it
// with every change to how a state database stores what it stores (a
// bucket, a key, a record's encoding), and register the migration from the
// previous version in migrations.
//
// Version 1 is the layout of every release before the version was
// recorded that keysvc's inspection accepts (member records carry their
// KEM keys): a database without a version is version 1.
const LayoutVersion = 1

// keyLayout is the meta key of the layout version (8 bytes, big endian).
//
// The version describes one file, not the cluster's replicated state: it
// is written when a node opens its database (OpenLayout), not through
// raft, and Digest leaves it out. A snapshot carries it with the rest of
// the file; the node that installs one checks it (CheckLayout) and then
// opens it as its own, which migrates it.
var keyLayout = []byte("layout_version")

// A migration turns a database in layout From into layout From+1, inside
// the transaction that stamps From+1: it is done whole or not at all.
type migration struct {
	From uint64
	Run  func(tx *bbolt.Tx) error
}

// migrations, in order, one per version step; migrations[i].From == i+1.
// None yet: version 1 is the first recorded layout.
var migrations []migration

// ErrNewerLayout: the database was written in a layout of a later release.
// Matched by *NewerLayoutError.
var ErrNewerLayout = errors.New("state: data layout of a later release")

// NewerLayoutError is the refusal of a database in a layout this release
// does not know: Found was written by a later release, which Supported
// (this release's LayoutVersion) cannot read or migrate back.
type NewerLayoutError struct {
	Found, Supported uint64
}

func (e *NewerLayoutError) Error() string {
	return fmt.Sprintf("state: the database is in data layout version %d, written by a later release; this release reads layout versions up to %d. "+
		"Run a release with layout version %d or later on it (roll the node back to the newer binary it ran before); "+
		"see docs/upgrades.md, \"Data layout versions\"", e.Found, e.Supported, e.Found)
}

// Is reports whether target is ErrNewerLayout.
func (e *NewerLayoutError) Is(target error) bool { return target == ErrNewerLayout }

// Layout returns the layout version recorded in tx: 1 if none is (a
// database of a release before the version was recorded, or one not set
// up yet).
func Layout(tx *bbolt.Tx) uint64 {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || meta.Get(keyLayout) == nil {
		return 1
	}
	return getU64(meta, keyLayout)
}

// CheckLayout returns a *NewerLayoutError if tx is in a layout newer than
// LayoutVersion. It writes nothing (tx may be read-only).
func CheckLayout(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || meta.Get(keyLayout) == nil {
		return nil
	}
	v := meta.Get(keyLayout)
	if len(v) != 8 {
		return fmt.Errorf("state: meta %q is %d bytes, want 8", keyLayout, len(v))
	}
	if found := getU64(meta, keyLayout); found > LayoutVersion {
		return &NewerLayoutError{Found: found, Supported: LayoutVersion}
	}
	return nil
}

// OpenLayout brings tx to LayoutVersion: a newer layout is refused
// (*NewerLayoutError) with nothing written; an older one is migrated, one
// registered step after another; then LayoutVersion is recorded. It
// returns the version found (1 for none recorded) and whether it stamped
// anything. Call it before Setup, in the same write transaction.
func OpenLayout(tx *bbolt.Tx) (from uint64, stamped bool, err error) {
	if err := CheckLayout(tx); err != nil {
		return 0, false, err
	}
	from = Layout(tx)
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return 0, false, err
	}
	if meta.Get(keyLayout) != nil && from == LayoutVersion {
		return from, false, nil
	}
	return from, true, migrate(tx, from, LayoutVersion, migrations)
}

// migrate runs the steps of steps from version from up to to, in order, and
// records to.
func migrate(tx *bbolt.Tx, from, to uint64, steps []migration) error {
	for v := from; v < to; v++ {
		i := int(v) - 1
		if i < 0 || i >= len(steps) || steps[i].From != v {
			return fmt.Errorf("state: no migration from data layout version %d", v)
		}
		if err := steps[i].Run(tx); err != nil {
			return fmt.Errorf("state: migration of the data layout from version %d to %d: %w", v, v+1, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keyLayout, u64(to))
}
