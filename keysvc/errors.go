// Errors returned by Node: sentinels for what callers branch on, typed errors
// where they need data (the leader to forward to, a rejected command).

package keysvc

import (
	"context"
	"errors"
	"fmt"

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

	// ErrAlreadyBootstrapped: Bootstrap on a node that already has cluster
	// state (or raft state from another cluster configuration).
	ErrAlreadyBootstrapped = errors.New("keysvc: cluster already bootstrapped")

	// ErrNotBootstrapped: the operation needs the cluster's genesis, which
	// this node's state does not hold (yet).
	ErrNotBootstrapped = errors.New("keysvc: cluster not bootstrapped")

	// ErrRegionNotAllowed: a node's region is not among the cluster's allowed
	// regions. The refusal is logged as a denied entry.
	ErrRegionNotAllowed = errors.New("keysvc: region not allowed in this cluster")

	// ErrUnknownNode: no registered node has that ID.
	ErrUnknownNode = errors.New("keysvc: unknown node")

	// ErrNodeConflict: a node with that ID is (or was) registered with other
	// details or keys; an ID never changes keys.
	ErrNodeConflict = errors.New("keysvc: node id registered with other details")

	// ErrCeremonyRequired: after initialisation a new node is added only by an
	// executed node.add ceremony (a join then finds it registered), and a
	// member is removed only by an executed node.remove ceremony.
	ErrCeremonyRequired = errors.New("keysvc: after initialisation nodes join and leave only by an executed node.add or node.remove ceremony")

	// ErrIdentityRevoked: the node's identity was revoked (its removal
	// revoked it); it cannot be registered again under that id.
	ErrIdentityRevoked = errors.New("keysvc: identity revoked")

	// ErrLastNode: removing the node would leave the cluster without members.
	ErrLastNode = errors.New("keysvc: cannot remove the last node")

	// ErrInvalidNode: a NodeInfo that does not follow the rules in its doc.
	ErrInvalidNode = errors.New("keysvc: invalid node info")

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

// CommandError is the state machine's deterministic rejection of a
// committed command: malformed, of an unknown type or version, or invalid in
// the current state. Every node reaches the same verdict and the state is
// unchanged (beyond recording that the raft index was applied). Node methods
// return it wrapped (in a *raft.CommandError); use errors.As.
type CommandError struct {
	Type string // the command's type, if it could be read
	Err  error
}

func (e *CommandError) Error() string {
	if e.Type == "" {
		return "keysvc: command rejected: " + e.Err.Error()
	}
	return fmt.Sprintf("keysvc: command %q rejected: %v", e.Type, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

func cmdErr(typ string, format string, args ...any) *CommandError {
	return &CommandError{Type: typ, Err: fmt.Errorf(format, args...)}
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
