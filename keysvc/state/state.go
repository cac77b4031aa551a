// The package's entry points: Apply and the reads the runtime makes of a
// state database.

package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

// ErrApplied: Apply was given a command at or below the applied index. The
// caller rolls the transaction back: nothing changed.
var ErrApplied = errors.New("state: command already applied")

// Applied is what applying a command did, beyond its result.
type Applied struct {
	Result []byte // for the proposer: DecodeResult
	// KEKs: the command may have changed KEK records.
	KEKs bool
	// Revocations: the command may have revoked a certificate or identity.
	Revocations bool
}

// Apply applies the raft command data, committed at index, inside tx, and
// records index as applied. It is deterministic and idempotent by index
// (see the package documentation). Errors: ErrApplied (roll back); a
// *CommandError, the command's rejection (roll back, then MarkApplied in a
// new transaction); anything else is a storage failure.
func Apply(tx *bbolt.Tx, index uint64, data []byte) (Applied, error) {
	if index <= AppliedIndex(tx) {
		return Applied{}, ErrApplied
	}
	cmd, err := Decode(data)
	if err != nil {
		return Applied{}, err
	}
	res, err := applyCommand(tx, index, cmd)
	if err != nil {
		return Applied{}, err
	}
	if err := MarkApplied(tx, index); err != nil {
		return Applied{}, err
	}
	return Applied{
		Result:      res,
		KEKs:        cmd.Type == ledger.TypeApprove || cmd.Type == ledger.TypePropose || cmd.Type == ledger.TypeAttest,
		Revocations: mayRevoke(cmd),
	}, nil
}

// MarkApplied records index as the last command applied.
func MarkApplied(tx *bbolt.Tx, index uint64) error {
	return tx.Bucket(bucketMeta).Put(keyApplied, u64(index))
}

// AppliedIndex is the raft index of the last command applied.
func AppliedIndex(tx *bbolt.Tx) uint64 { return getU64(tx.Bucket(bucketMeta), keyApplied) }

// Setup creates the buckets a state database needs in tx and, for a
// database or snapshot written before the drills index (or by an older
// node), indexes the drills up to its log's size. It returns the number of
// entries it read doing so.
func Setup(tx *bbolt.Tx) (int, error) {
	for _, b := range [][]byte{bucketMeta, bucketNodes, bucketOfficers, bucketCeremonies, bucketKEKs, bucketDrills, bucketRevocations} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return 0, err
		}
	}
	return indexDrills(tx)
}

// HasNodeTable reports whether tx looks like a state database.
func HasNodeTable(tx *bbolt.Tx) bool { return tx.Bucket(bucketNodes) != nil }

// Head returns what a snapshot is compared by: the applied index, the
// cluster and the log's size.
func Head(tx *bbolt.Tx) (applied uint64, cluster string, size uint64, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, "", 0, fmt.Errorf("no meta bucket")
	}
	if size, err = ledgerdb.Size(tx); err != nil {
		return 0, "", 0, err
	}
	return getU64(meta, keyApplied), string(meta.Get(keyCluster)), size, nil
}

// Cluster is the cluster's name, "" before genesis.
func Cluster(tx *bbolt.Tx) string { return string(tx.Bucket(bucketMeta).Get(keyCluster)) }

// AllowedRegions are the cluster's allowed regions, sorted; nil before genesis.
func AllowedRegions(tx *bbolt.Tx) ([]string, error) { return allowedRegions(tx.Bucket(bucketMeta)) }

// StateVersion is the version proposals are made against: 1 at init, +1
// on every executed ceremony that changes officers, quorum, regions or nodes.
func StateVersion(tx *bbolt.Tx) uint64 { return getU64(tx.Bucket(bucketMeta), keyStateVersion) }

// Quorum is the officers' quorum M (0 before init).
func Quorum(tx *bbolt.Tx) int { return metaInt(tx.Bucket(bucketMeta), keyQuorum) }

// DefaultThreshold is the default KEK threshold t (0 before init).
func DefaultThreshold(tx *bbolt.Tx) int { return metaInt(tx.Bucket(bucketMeta), keyThreshold) }

// ForCeremonies calls fn for every ceremony record, in id order.
func ForCeremonies(tx *bbolt.Tx, fn func(Ceremony) error) error {
	return forRecords(tx, bucketCeremonies, "ceremony", fn)
}

// Drills returns the newest drill of every dataset, sorted by dataset, or
// of dataset alone (none if it has no drill).
func Drills(tx *bbolt.Tx, dataset string) ([]Drill, error) {
	out := []Drill{}
	add := func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("keysvc: drill record %q: %w", k, ledger.ErrCorrupt)
		}
		i := binary.BigEndian.Uint64(v)
		raw, err := ledgerdb.ReadEntry(tx, i)
		if err != nil {
			return err
		}
		out = append(out, Drill{Dataset: string(k), LogIndex: i, Entry: raw})
		return nil
	}
	b := tx.Bucket(bucketDrills)
	var err error
	if dataset == "" {
		err = b.ForEach(add)
	} else if v := b.Get([]byte(dataset)); v != nil {
		err = add([]byte(dataset), v)
	}
	return out, err
}

// Lookup returns the revocation of the certificate with fingerprint
// ("" to check the identity alone) held by id, by its fingerprint or by
// id's role and name.
func (rs RevocationSet) Lookup(id identity.Identity, fingerprint string) (Revocation, bool) {
	if fingerprint != "" {
		if r, ok := rs[fingerprintKey(fingerprint)]; ok {
			return r, true
		}
	}
	if id.Role != "" && id.Name != "" {
		if r, ok := rs[identityKey(principal(id.Role, id.Name))]; ok {
			return r, true
		}
	}
	return Revocation{}, false
}

// Digest hashes the node table, the revocations, meta (but the applied
// index and the layout version) and the log root: equal digests mean equal
// replicated state. For tests and diagnostics.
func Digest(tx *bbolt.Tx) ([32]byte, error) {
	h := sha256.New()
	for _, name := range [][]byte{bucketMeta, bucketNodes, bucketRevocations} {
		err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			if bytes.Equal(name, bucketMeta) && (bytes.Equal(k, keyApplied) || bytes.Equal(k, keyLayout)) {
				return nil // the content, not how far raft got or the file's layout
			}
			fmt.Fprintf(h, "%s/%x=%x\n", name, k, v)
			return nil
		})
		if err != nil {
			return [32]byte{}, err
		}
	}
	size, err := ledgerdb.Size(tx)
	if err != nil {
		return [32]byte{}, err
	}
	root, err := ledgerdb.Root(tx, size)
	if err != nil {
		return [32]byte{}, err
	}
	fmt.Fprintf(h, "ledger/%d/%x\n", size, root)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
