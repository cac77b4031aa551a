// The replicated application as the caller supplies it, and its adapter to raft.FSM.

package raft

import (
	"io"
	"log/slog"

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
	sm  StateMachine
	log *slog.Logger
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
	return f.sm.Restore(rc)
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
