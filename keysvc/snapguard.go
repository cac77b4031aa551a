// What a snapshot must agree with before Restore installs it: the node's
// current state (a snapshot may only extend its key-op log) and the latest
// checkpoint this node signed, recorded durably beside state.db.

package keysvc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
)

// signedFile (in DataDir) holds the body of the latest checkpoint this node
// signed (ledger.Checkpoint.Marshal). It lives beside state.db, not in it,
// because a snapshot replaces state.db wholesale.
const signedFile = "signed-checkpoint"

// loadSigned reads dir's signed checkpoint record; ok is false when there is
// none (a node that never signed one).
func loadSigned(dir string) (cp ledger.Checkpoint, ok bool, err error) {
	path := filepath.Join(dir, signedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ledger.Checkpoint{}, false, nil
	}
	if err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("keysvc: %s: %w", path, err)
	}
	if cp, err = ledger.ParseCheckpoint(b); err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("keysvc: %s: %w", path, err)
	}
	return cp, true, nil
}

// recordSigned records head, a checkpoint of this node's log that it is
// about to sign, durably (written atomically and fsynced) before the
// signature leaves the node. It refuses a head that contradicts the
// checkpoint recorded before: a shorter log, or one whose root at the
// recorded size differs. The record only grows.
func (s *stateDB) recordSigned(head ledger.Checkpoint) error {
	s.mu.RLock() // no Restore while the record and the database are compared
	defer s.mu.RUnlock()
	s.signedMu.Lock()
	defer s.signedMu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	if s.hasSigned {
		prev := s.signed
		if head.Size < prev.Size {
			return fmt.Errorf("keysvc: log has %d entries, fewer than the checkpoint this node signed (size %d)", head.Size, prev.Size)
		}
		var root tlog.Hash
		if err := s.db.View(func(tx *bbolt.Tx) (err error) {
			root, err = ledgerdb.Root(tx, prev.Size)
			return err
		}); err != nil {
			return err
		}
		if root != prev.Hash {
			return fmt.Errorf("keysvc: log contradicts the checkpoint this node signed at size %d", prev.Size)
		}
		if head.Size == prev.Size {
			return nil
		}
	}
	body, err := head.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(filepath.Dir(s.path), signedFile), body, 0o600); err != nil {
		return fmt.Errorf("keysvc: record signed checkpoint: %w", err)
	}
	s.signed, s.hasSigned = head, true
	return nil
}

// snapVerdict is what Restore does with a snapshot that is not refused.
type snapVerdict int

const (
	snapInstall snapVerdict = iota // replace state.db with it
	snapKeep                       // the database already holds its state
)

// refuseSnapshot returns ErrSnapshotRefused with the reason.
func refuseSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshotRefused, fmt.Sprintf(format, args...))
}

// judgeSnapshot decides about snapshot snap (head h, log root at h.size
// snapRoot) against the current database cur (nil when it cannot be read)
// and the checkpoint this node signed (signed, if hasSigned). It returns
// an error wrapping ErrSnapshotRefused to refuse it.
//
//   - A snapshot at or behind the database's applied index must be contained
//     in it (same cluster, its log a prefix of the database's): the
//     database is kept. That is the restart case.
//   - A snapshot ahead must extend the database's log (same root at the
//     database's size) and be of the same cluster (a database without
//     genesis accepts any): it is installed. That is catching up.
//   - Whatever is installed must extend the signed checkpoint: at least its
//     size, and the same root at that size.
//
// Honest histories always pass: committed state at a raft index is the same
// on every node, and the log only grows.
func judgeSnapshot(cur, snap *bbolt.Tx, h stateHead, snapRoot tlog.Hash, signed ledger.Checkpoint, hasSigned bool) (snapVerdict, error) {
	if cur != nil {
		c, err := readHead(cur)
		if err != nil {
			return 0, fmt.Errorf("keysvc: restore: read state database: %w", err)
		}
		if c.cluster != "" && c.cluster != h.cluster {
			return 0, refuseSnapshot("snapshot of cluster %q, this node's state is of cluster %q", h.cluster, c.cluster)
		}
		if h.applied <= c.applied {
			if h.size > c.size {
				return 0, refuseSnapshot("snapshot at raft index %d (not past this node's %d) has a longer log (%d entries, this node %d)", h.applied, c.applied, h.size, c.size)
			}
			root, err := ledgerdb.Root(cur, h.size)
			if err != nil {
				return 0, err
			}
			if root != snapRoot {
				return 0, refuseSnapshot("snapshot's log diverges from this node's at size %d", h.size)
			}
			return snapKeep, nil
		}
		if h.size < c.size {
			return 0, refuseSnapshot("snapshot's log (%d entries) is shorter than this node's (%d)", h.size, c.size)
		}
		curRoot, err := ledgerdb.Root(cur, c.size)
		if err != nil {
			return 0, err
		}
		root, err := ledgerdb.Root(snap, c.size)
		if err != nil {
			return 0, err
		}
		if root != curRoot {
			return 0, refuseSnapshot("snapshot's log does not extend this node's: roots differ at size %d", c.size)
		}
	}
	if hasSigned {
		if h.size < signed.Size {
			return 0, refuseSnapshot("snapshot's log (%d entries) is shorter than the checkpoint this node signed (size %d)", h.size, signed.Size)
		}
		root, err := ledgerdb.Root(snap, signed.Size)
		if err != nil {
			return 0, err
		}
		if root != signed.Hash {
			return 0, refuseSnapshot("snapshot's log contradicts the checkpoint this node signed at size %d", signed.Size)
		}
	}
	return snapInstall, nil
}
