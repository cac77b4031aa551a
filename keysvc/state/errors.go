// Errors of the state machine: its deterministic verdicts.

package state

import (
	"errors"
	"fmt"
)

// Verdicts on membership commands. The runtime (package keysvc) returns
// them from its methods under the same names.
var (
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
)

// CommandError is the state machine's deterministic rejection of a
// committed command: malformed, of an unknown type or version, or invalid in
// the current state. Every node reaches the same verdict and the state is
// unchanged (beyond recording that the raft index was applied). The runtime
// returns it wrapped (in a *raft.CommandError); use errors.As.
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
