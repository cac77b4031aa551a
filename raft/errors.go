// Errors returned by Node: sentinels for the cases callers branch on, typed errors where
// they need data (the leader to forward to, the index of a rejected command).

package raft

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader: the operation must run on the leader and this node is not it. Nothing
	// was proposed. Returned wrapped in a *NotLeaderError, which names the leader if known.
	ErrNotLeader = errors.New("raft: not the leader")

	// ErrNoQuorum: the operation did not complete before its deadline, either because no
	// leader was known or because a quorum did not acknowledge it in time; the cluster may
	// have lost its quorum. A command proposed before the deadline may still commit later:
	// its outcome is unknown, so it must not be reported as done.
	ErrNoQuorum = errors.New("raft: no quorum before deadline")

	// ErrLeadershipLost: this node stopped being leader before the command committed. Its
	// outcome is unknown: a new leader may still commit it.
	ErrLeadershipLost = errors.New("raft: leadership lost before commit")

	// ErrShutdown: the node is shut down (by Shutdown, or because it was removed from the
	// cluster).
	ErrShutdown = errors.New("raft: node is shut down")

	// ErrBootstrapped: Bootstrap was called on a node that already has raft state.
	ErrBootstrapped = errors.New("raft: node already has state, cannot bootstrap")
)

// NotLeaderError is returned by leader-only operations on a follower or candidate. It
// matches ErrNotLeader with errors.Is. LeaderID and LeaderAddr (the leader's raft
// address, not an API address) are empty when no leader is known.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "raft: not the leader; no leader known"
	}
	return fmt.Sprintf("raft: not the leader; leader is %q at %s", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// CommandError is returned by Node.Apply when the command was committed and applied, and
// the state machine rejected it: Err is what StateMachine.Apply returned on the leader
// (every node applied the command and, being deterministic, reached the same verdict).
// It is never a replication failure.
type CommandError struct {
	Index uint64 // log index of the rejected command
	Err   error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("raft: command at index %d rejected by state machine: %v", e.Index, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }
