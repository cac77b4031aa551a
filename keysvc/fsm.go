// The state database: DataDir/state.db, the file package state's Apply
// changes one transaction per raft command, with the raft side around it
// (stopping on a storage failure, snapshots, restores, applied-index
// waiters).

package keysvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

const stateFile = "state.db"

// stateDB implements raft.StateMachine on bbolt: Apply runs state.Apply
// (deterministic, idempotent by raft index; see package state) in one
// write transaction per command.
//
// A command the state machine rejects leaves the state unchanged but for
// the applied index, and returns a *state.CommandError. A storage failure
// is not a verdict: the state machine then stops (every later Apply and
// Snapshot fails with ErrStateBroken, without touching the database) so
// the node cannot diverge or snapshot a state that lacks commands; a
// restart replays from the last good state.
type stateDB struct {
	path   string
	noSync bool
	log    *slog.Logger
	m      *counters
	onKEK  func() // after a command that may change KEK records; set before raft starts

	// applied mirrors meta "applied" for waiters; appliedCh is closed (and
	// replaced) whenever it advances.
	applied   atomic.Uint64
	logSize   atomic.Uint64 // entries in the key-op log as applied
	appliedMu sync.Mutex
	appliedCh chan struct{}

	// revoked is the revocations bucket in memory, reloaded before the
	// index of a command that may revoke counts as applied.
	revoked revokedCache

	mu     sync.RWMutex // held for writing only while Restore swaps db
	db     *bbolt.DB
	broken error // guarded by mu

	// signed is the latest checkpoint this node signed (DataDir/
	// signed-checkpoint), if hasSigned: no snapshot that contradicts it
	// is installed. Guarded by signedMu, taken after mu.
	signedMu  sync.Mutex
	signed    ledger.Checkpoint
	hasSigned bool
}

func openStateDB(dir string, noSync bool, log *slog.Logger, m *counters) (*stateDB, error) {
	s := &stateDB{path: filepath.Join(dir, stateFile), noSync: noSync, log: log, m: m}
	var err error
	if s.signed, s.hasSigned, err = loadSigned(dir); err != nil {
		return nil, err
	}
	db, err := s.openDB(s.path)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.revoked.load(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("keysvc: %s: %w", s.path, err)
	}
	s.appliedCh = make(chan struct{})
	s.setApplied()
	return s, nil
}

func (s *stateDB) openDB(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         time.Second, // fail, not hang, if another process holds it
		NoSync:          s.noSync,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: 1 << 30, // address space only; spares remaps (which wait for snapshot readers)
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("keysvc: open %s: locked by another process (is another node using this DataDir?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keysvc: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := s.openLayout(tx); err != nil { // layout.go
			return err
		}
		// A database or snapshot written before the drills index (or by an
		// older node) is indexed up to its log's size once, here.
		n, err := state.Setup(tx)
		if n > 0 {
			s.log.Info("keysvc: indexed restore drills from the log", "entries_scanned", n)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("keysvc: init %s: %w", path, err)
	}
	return db, nil
}

func (s *stateDB) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// view runs fn in a read transaction of the current database.
func (s *stateDB) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *stateDB) brokenErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.broken
}

func (s *stateDB) setBroken(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = fmt.Errorf("%w: %w", ErrStateBroken, err)
		s.log.Error("keysvc: state database failed; applying stopped until restart", "err", err)
	}
	return s.broken
}

// Apply implements raft.StateMachine.
func (s *stateDB) Apply(index uint64, data []byte) ([]byte, error) {
	s.mu.RLock()
	db, broken := s.db, s.broken
	s.mu.RUnlock()
	if broken != nil {
		return nil, broken
	}
	if db == nil {
		return nil, ErrClosed
	}
	var (
		applied state.Applied
		logSize uint64
		reject  *state.CommandError
	)
	err := db.Update(func(tx *bbolt.Tx) error {
		var err error
		if applied, err = state.Apply(tx, index, data); err != nil {
			return err
		}
		if sz, err := ledgerdb.Size(tx); err == nil {
			logSize = sz
		}
		return nil
	})
	switch {
	case err == nil:
		s.m.applied.Add(1)
		if s.onKEK != nil && applied.KEKs {
			s.onKEK() // before advance: a waiter that sees index applied sees its KEK changes too
		}
		if applied.Revocations {
			if err := s.revoked.load(db); err != nil {
				return nil, s.setBroken(fmt.Errorf("apply %d: reload revocations: %w", index, err))
			}
		}
		s.logSize.Store(logSize)
		s.advance(index)
		return applied.Result, nil
	case errors.Is(err, state.ErrApplied):
		return nil, nil
	case errors.As(err, &reject):
		// Deterministic rejection: record only that the index was applied.
		if err := db.Update(func(tx *bbolt.Tx) error {
			return state.MarkApplied(tx, index)
		}); err != nil {
			return nil, s.setBroken(fmt.Errorf("apply %d: %w", index, err))
		}
		s.m.applied.Add(1)
		s.m.rejected.Add(1)
		s.advance(index)
		return nil, reject
	default:
		return nil, s.setBroken(fmt.Errorf("apply %d: %w", index, err))
	}
}

// Drills returns the newest drill of every dataset, sorted by dataset, or
// of dataset alone (none if it has no drill). Leader only (else
// *NotLeaderError naming the leader), after every committed entry is
// applied: a drill just acknowledged is in the answer.
func (n *Node) Drills(ctx context.Context, dataset string) ([]state.Drill, error) {
	n.cpMu.Lock()
	err := n.leaderApplied(ctx)
	n.cpMu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []state.Drill
	err = n.state.view(func(tx *bbolt.Tx) (err error) {
		out, err = state.Drills(tx, dataset)
		return err
	})
	return out, err
}

// Snapshot implements raft.StateMachine: a read transaction, streamed by
// WriteTo (bbolt's consistent copy of the whole file) and ended by Release.
func (s *stateDB) Snapshot() (raft.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.broken != nil {
		return nil, s.broken
	}
	if s.db == nil {
		return nil, ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("keysvc: snapshot: %w", err)
	}
	return &dbSnapshot{tx: tx}, nil
}

type dbSnapshot struct {
	once sync.Once
	tx   *bbolt.Tx
}

func (d *dbSnapshot) WriteTo(w io.Writer) (int64, error) { return d.tx.WriteTo(w) }
func (d *dbSnapshot) Release()                           { d.once.Do(func() { d.tx.Rollback() }) }

// stateHead is what Restore compares between the database and a snapshot.
type stateHead struct {
	applied uint64
	cluster string
	size    uint64
}

func readHead(tx *bbolt.Tx) (stateHead, error) {
	applied, cluster, size, err := state.Head(tx)
	return stateHead{applied: applied, cluster: cluster, size: size}, err
}

// Restore implements raft.StateMachine. The stream (a bbolt file written by
// Snapshot) goes to a temporary file beside state.db and is checked against
// the current database and the checkpoint this node signed (judgeSnapshot):
//
//   - if the current database already contains the snapshot's state — it
//     applied at least as far, for the same cluster, and its log extends the
//     snapshot's log (same root at the snapshot's size) — it is kept. This is
//     the restart case: raft restores its latest snapshot at start, and the
//     database on disk is usually newer; raft then replays the commands after
//     the snapshot, which Apply skips up to the database's applied index.
//   - if the snapshot is ahead and its log extends both the database's log
//     and the latest checkpoint this node signed (a lagging or new node
//     installing the leader's snapshot), it replaces state.db: rename over
//     it, sync the directory, reopen.
//   - anything else contradicts what this node applied or signed: it is
//     refused with an error wrapping ErrSnapshotRefused, counted in
//     Metrics.SnapshotsRefused, and state.db is left untouched.
//
// Committed state at a raft index is the same on every node, so keeping a
// database that is ahead is as correct as restoring and replaying, and does
// not move the node's visible state backwards.
func (s *stateDB) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	if err := writeStream(tmp, r); err != nil {
		return fmt.Errorf("keysvc: restore: %w", err)
	}
	defer os.Remove(tmp) // no-op once renamed
	snap, snapHead, snapRoot, err := inspectSnapshot(tmp)
	if err != nil {
		return fmt.Errorf("keysvc: restore: snapshot: %w", err)
	}
	defer snap.Close() // closed before the rename too: a reader's lock would block the reopen

	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedMu.Lock()
	signed, hasSigned := s.signed, s.hasSigned
	s.signedMu.Unlock()
	var verdict snapVerdict
	err = snap.View(func(stx *bbolt.Tx) error {
		judge := func(cur *bbolt.Tx) (err error) {
			verdict, err = judgeSnapshot(cur, stx, snapHead, snapRoot, signed, hasSigned)
			return err
		}
		if s.db == nil {
			return judge(nil)
		}
		err := s.db.View(judge)
		if err != nil && !errors.Is(err, ErrSnapshotRefused) {
			// An unreadable database cannot be compared; the signed
			// checkpoint still is.
			s.log.Warn("keysvc: cannot compare state database with snapshot; checking the signed checkpoint only", "err", err)
			return judge(nil)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrSnapshotRefused) {
			s.m.snapshotsRefused.Add(1)
			s.log.Error("keysvc: snapshot refused; state database unchanged", "err", err,
				"snapshot_applied", snapHead.applied, "snapshot_log_size", snapHead.size)
		}
		return fmt.Errorf("keysvc: restore: %w", err)
	}
	if verdict == snapKeep {
		s.log.Info("keysvc: state database is at or past the snapshot; kept",
			"snapshot_applied", snapHead.applied, "snapshot_log_size", snapHead.size)
		return nil
	}
	if err := snap.Close(); err != nil {
		return fmt.Errorf("keysvc: restore: snapshot: %w", err)
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Warn("keysvc: restore: close state database", "err", err)
		}
		s.db = nil
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return s.restoreFailed(err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(s.path)); err != nil {
		return s.restoreFailed(err)
	}
	db, err := s.openDB(s.path)
	if err != nil {
		return s.restoreFailed(err)
	}
	if err := s.revoked.load(db); err != nil {
		db.Close()
		return s.restoreFailed(err)
	}
	s.db = db
	s.broken = nil
	s.setAppliedLocked()
	s.m.restores.Add(1)
	s.log.Info("keysvc: state restored from snapshot", "applied", snapHead.applied, "log_size", snapHead.size)
	if s.onKEK != nil {
		s.onKEK()
	}
	return nil
}

// advance records that index was applied and wakes the waiters.
func (s *stateDB) advance(index uint64) {
	s.applied.Store(index)
	s.appliedMu.Lock()
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	s.appliedMu.Unlock()
}

// setApplied reads the applied index from the database into s.applied.
func (s *stateDB) setApplied() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.setAppliedLocked()
}

func (s *stateDB) setAppliedLocked() {
	if s.db == nil {
		return
	}
	_ = s.db.View(func(tx *bbolt.Tx) error {
		s.applied.Store(state.AppliedIndex(tx))
		if sz, err := ledgerdb.Size(tx); err == nil {
			s.logSize.Store(sz)
		}
		return nil
	})
}

// appliedWait returns the applied index and a channel closed when it next advances.
func (s *stateDB) appliedWait() (uint64, <-chan struct{}) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	return s.applied.Load(), s.appliedCh
}

// restoreFailed marks the state broken after a failed swap; called with mu held.
func (s *stateDB) restoreFailed(err error) error {
	s.broken = fmt.Errorf("%w: restore: %w", ErrStateBroken, err)
	s.log.Error("keysvc: restore failed", "err", err)
	return s.broken
}

func writeStream(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// inspectSnapshot opens a snapshot file read-only and returns it with its
// head and log root, checking it is a state database. The caller closes it.
func inspectSnapshot(path string) (*bbolt.DB, stateHead, tlog.Hash, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, stateHead{}, tlog.Hash{}, err
	}
	var (
		h    stateHead
		root tlog.Hash
	)
	err = db.View(func(tx *bbolt.Tx) error {
		if !state.HasNodeTable(tx) {
			return errors.New("no nodes bucket")
		}
		if err := state.CheckLayout(tx); err != nil { // layout.go
			return err
		}
		if h, err = readHead(tx); err != nil {
			return err
		}
		root, err = ledgerdb.Root(tx, h.size)
		return err
	})
	if err != nil {
		db.Close()
		return nil, stateHead{}, tlog.Hash{}, err
	}
	return db, h, root, nil
}
