// Errors returned by Node: sentinels for what callers branch on, typed errors
// where they need data (the leader to forward to, a rejected command).

package keysvc

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

var (
	// ErrNotLeader: the operation must run on the leader and this node is not
	// it. Nothing was proposed. Returned inside a *NotLeaderError, which names
	// the leader and its API address when known.
	ErrNotLeader = errors.New("keysvc: not the leader")

	// ErrNoQuorum: the operation was not confirmed committed by a raft quorum
	// before its deadline, or the leader lost its leadership first. The
	// outcome is unknown (a command already proposed may still commit), so
	// it must be reported as failed, never as done. Errors matching it also
	// match the raft package's ErrNoQuorum or ErrLeadershipLost, or the
	// context's error, when those were the cause.
	ErrNoQuorum = errors.New("keysvc: no quorum: not committed")

	// ErrBatchTooLarge: an AppendBatch over MaxAppendBatch entries or
	// MaxAppendBatchBytes bytes.
	ErrBatchTooLarge = errors.New("keysvc: append batch too large")

	// ErrKeysMismatch: this node's keys differ from the ones registered for
	// it in the cluster state (its ML-DSA seed file or HSM identity key was
	// replaced); it refuses to sign checkpoints nobody could verify.
	ErrKeysMismatch = errors.New("keysvc: node keys differ from the registered ones")

	// ErrNotReady: the node cannot serve yet (no leader known, state not
	// caught up, not bootstrapped). Ready wraps it with the reason.
	ErrNotReady = errors.New("keysvc: node not ready")

	// ErrStateBroken: the state database failed to apply a committed command
	// (an I/O error). The node stops applying, serving and snapshotting so its
	// state cannot diverge; restarting it replays the log from its last
	// good state.
	ErrStateBroken = errors.New("keysvc: state database failed; restart the node")

	// ErrSnapshotRefused: the state machine refused a raft snapshot that
	// contradicts what this node applied or signed: its key-op log is not
	// an extension of the node's log or of the latest checkpoint the node
	// signed, or it is another cluster's. The state is unchanged.
	ErrSnapshotRefused = errors.New("keysvc: snapshot refused")

	// ErrClosed: the node is closed.
	ErrClosed = errors.New("keysvc: node closed")
)

// The state machine's verdicts, as Node's methods return them (defined
// in package state, which documents them).
var (
	ErrAlreadyBootstrapped = state.ErrAlreadyBootstrapped
	ErrNotBootstrapped     = state.ErrNotBootstrapped
	ErrRegionNotAllowed    = state.ErrRegionNotAllowed
	ErrUnknownNode         = state.ErrUnknownNode
	ErrNodeConflict        = state.ErrNodeConflict
	ErrCeremonyRequired    = state.ErrCeremonyRequired
	ErrIdentityRevoked     = state.ErrIdentityRevoked
	ErrLastNode            = state.ErrLastNode
	ErrInvalidNode         = state.ErrInvalidNode
	ErrNotInitialized      = state.ErrNotInitialized
	ErrAlreadyInitialized  = state.ErrAlreadyInitialized
	ErrInvalidInit         = state.ErrInvalidInit
	ErrUnknownKEK          = state.ErrUnknownKEK
)

// NotLeaderError is returned by leader-only operations on another node. It
// matches ErrNotLeader (and raft.ErrNotLeader) with errors.Is. LeaderID and
// LeaderAPI (the leader's API base URL, from the node table) are empty when
// not known. Nothing was proposed: the caller may send the request to
// LeaderAPI.
type NotLeaderError struct {
	LeaderID  string
	LeaderAPI string
}

func (e *NotLeaderError) Error() string {
	switch {
	case e.LeaderID == "":
		return "keysvc: not the leader; no leader known"
	case e.LeaderAPI == "":
		return fmt.Sprintf("keysvc: not the leader; leader is %q (API address unknown)", e.LeaderID)
	}
	return fmt.Sprintf("keysvc: not the leader; leader is %q at %s", e.LeaderID, e.LeaderAPI)
}

// Is reports whether target is ErrNotLeader or raft.ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool {
	return target == ErrNotLeader || target == raft.ErrNotLeader
}

// noQuorum wraps cause as ErrNoQuorum (cause stays matchable).
func noQuorum(what string, cause error) error {
	return fmt.Errorf("%w: %s: %w", ErrNoQuorum, what, cause)
}

// ctxDone describes a wait cut short by ctx: ErrNoQuorum on a deadline (the
// cluster did not confirm in time), the cancellation otherwise.
func ctxDone(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return noQuorum(what, ctx.Err())
	}
	return fmt.Errorf("keysvc: %s: %w", what, ctx.Err())
}
