// The replicated application as the caller supplies it, and its adapter to raft.FSM.

package raft

import (
	"io"
	"log/slog"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// StateMachine is the replicated application. Every node applies the same committed
// commands in the same order, so Apply must be deterministic: no clock reads, no
// randomness, no HSM calls, no network, no I/O other than the state machine's own store.
// Whatever varies (time, random ids, nonces) is decided by the proposer and carried
// inside the command. The same commands in the same order must give the same state and
// the same results on every node.
//
// Raft calls Apply, Snapshot and Restore from one goroutine, never concurrently with one
// another; Snapshot.WriteTo runs concurrently with later Apply calls.
type StateMachine interface {
	// Apply applies the committed command cmd at log index index. Indexes increase; after
	// Restore they continue just past the snapshot. On the leader, the result or error is
	// returned to the proposer by Node.Apply (an error as a *CommandError); an error does
	// not stop replication and every node reaches the same verdict. Apply must not retain
	// cmd, nor modify the result after returning it.
	Apply(index uint64, cmd []byte) ([]byte, error)

	// Snapshot returns a cheap point-in-time handle on the state (for example a read
	// transaction); the expensive work belongs in Snapshot.WriteTo.
	Snapshot() (Snapshot, error)

	// Restore replaces the whole state with the one read from r, a stream written by
	// Snapshot.WriteTo on this or another node. It runs when a lagging node installs a
	// leader's snapshot and when a node starts with a snapshot on disk.
	//
	// An error refuses the snapshot, and Restore must then leave the state exactly as it
	// was. A leader's snapshot refused so is not installed: the node keeps its log and
	// applied index, the leader gets the error and retries later, and the received
	// snapshot is removed from DataDir (with Memory it stays as the node's latest
	// in-memory snapshot). At start, a refused snapshot on disk is skipped for the
	// next older one; Open fails if none is accepted.
	Restore(r io.Reader) error
}

// Snapshot is a point-in-time view of a StateMachine.
type Snapshot interface {
	// WriteTo streams the state to w. It may run concurrently with StateMachine.Apply.
	WriteTo(w io.Writer) (int64, error)
	// Release frees the handle. It is always called, whether or not WriteTo was.
	Release()
}

// applyResult is what fsm.Apply returns to raft, and raft hands back to the proposer.
type applyResult struct {
	data []byte
	err  error
}

// fsm adapts a StateMachine to hashicorp/raft's FSM.
type fsm struct {
	sm    StateMachine
	log   *slog.Logger
	snaps *snapshotStore
}

func (f *fsm) Apply(l *hraft.Log) any {
	data, err := f.sm.Apply(l.Index, l.Data)
	if err != nil {
		f.log.Debug("raft: state machine rejected command", "index", l.Index, "err", err)
	}
	return applyResult{data: data, err: err}
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot{s}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	err := f.sm.Restore(rc)
	if err != nil {
		f.log.Error("raft: state machine refused snapshot", "err", err)
		f.snaps.restoreFailed()
	}
	return err
}

type fsmSnapshot struct{ s Snapshot }

func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { s.s.Release() }

// snapshotStore wraps a node's snapshot store so that a snapshot received from a leader
// and refused by StateMachine.Restore does not stay behind: hashicorp/raft writes a
// received snapshot to the store before it asks the state machine to restore it, and
// one left there would be restored first at the next start and would push the node's
// own snapshots out of the store's retention. Safe for concurrent use.
type snapshotStore struct {
	hraft.SnapshotStore
	log    *slog.Logger
	remove func(id string) error // nil: the store cannot remove one (memory)

	mu      sync.Mutex
	created map[string]bool // snapshots written since Open
	opened  string          // the last snapshot opened, which Restore is reading
}

func newSnapshotStore(inner hraft.SnapshotStore, log *slog.Logger, remove func(id string) error) *snapshotStore {
	return &snapshotStore{SnapshotStore: inner, log: log, remove: remove, created: map[string]bool{}}
}

func (s *snapshotStore) Create(version hraft.SnapshotVersion, index, term uint64, conf hraft.Configuration,
	confIndex uint64, trans hraft.Transport) (hraft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	return &recordedSink{SnapshotSink: sink, s: s}, nil
}

func (s *snapshotStore) Open(id string) (*hraft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	s.opened = id
	s.mu.Unlock()
	return s.SnapshotStore.Open(id)
}

// restoreFailed removes the snapshot Restore was reading if it was written since Open,
// that is, received from a leader (at start, the snapshots restored are older; the node's
// own new snapshots are never restored while it runs).
func (s *snapshotStore) restoreFailed() {
	s.mu.Lock()
	id := s.opened
	ours := s.created[id]
	delete(s.created, id)
	s.mu.Unlock()
	if !ours || s.remove == nil {
		return
	}
	if err := s.remove(id); err != nil {
		s.log.Error("raft: cannot remove refused snapshot", "snapshot", id, "err", err)
		return
	}
	s.log.Warn("raft: removed snapshot refused by the state machine", "snapshot", id)
}

type recordedSink struct {
	hraft.SnapshotSink
	s *snapshotStore
}

func (r *recordedSink) Close() error {
	if err := r.SnapshotSink.Close(); err != nil {
		return err
	}
	r.s.mu.Lock()
	r.s.created[r.ID()] = true
	r.s.mu.Unlock()
	return nil
}
