// Screening of proposals and approvals before raft: what the state machine
// would only log as a refusal is refused on the leader without a raft
// write, and logged (folded when repeated) as a ceremony.denied entry.

package keysvc

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// screen returns the refusal the state machine would log for cmd
// (state.Screen), or nil: cmd goes to raft, which decides everything again.
func (n *Node) screen(cmd *state.Command) (ref *state.CeremonyRefusal, e ledger.Entry, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		ref, e, err = state.Screen(tx, cmd)
		return err
	})
	return ref, e, err
}

// refuseScreened logs a screened refusal (folded when repeated) and
// returns it; a refusal that cannot be logged is not answered as one.
func (n *Node) refuseScreened(ctx context.Context, ref *state.CeremonyRefusal, e ledger.Entry, actor ledger.Actor) error {
	e.Actor, e.Node = actor, n.cfg.NodeID
	i, err := n.denials.logDenial(ctx, e)
	if err != nil {
		return fmt.Errorf("keysvc: log a refused ceremony request: %w", err)
	}
	ref.Entry = i
	return ref
}
