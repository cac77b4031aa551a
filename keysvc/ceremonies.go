// The leader side of officers and ceremonies: Init, Propose and Approve
// turn requests into cluster.init, ceremony.propose and ceremony.approve
// commands (package state decides them), and the follow-up of executed
// node ceremonies.

package keysvc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// Init commits cluster.init, once: it names the officers, the quorum, the
// default KEK threshold and (if in.Regions is not nil) replaces the allowed
// regions fixed at bootstrap. Leader only. Its entry names everything an
// auditor needs to start trusting the cluster: officer fingerprints, the
// nodes' key hashes, quorum and regions. A second call is logged as denied
// and returns ErrAlreadyInitialized; invalid input ErrInvalidInit.
func (n *Node) Init(ctx context.Context, in state.Init, actor ledger.Actor) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return err
	}
	if actor.Identity == "" {
		return errors.New("keysvc: init: actor identity is required")
	}
	var regions []string
	if in.Regions != nil {
		regions = slices.Clone(in.Regions)
		slices.Sort(regions)
		regions = slices.Compact(regions)
	}
	res, err := n.propose(ctx, &state.Command{
		Type: ledger.TypeInit, Time: state.FormatTime(n.cfg.Now()), ServedBy: n.cfg.NodeID, Actor: state.ToActorJSON(actor),
		Init: &state.InitJSON{Officers: in.Officers, Quorum: in.Quorum, DefaultThreshold: in.DefaultThreshold, Regions: regions},
	})
	if err != nil {
		return fmt.Errorf("keysvc: init: %w", err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("keysvc: init: %w", err)
	}
	n.log.Info("keysvc: cluster initialized", "officers", len(in.Officers), "quorum", in.Quorum, "entry", res.First)
	return nil
}

// Propose submits a proposal (its canonical bytes) by officer, the
// identity the caller authenticated; sig, if not empty, is officer's
// signature over the proposal's digest and counts as their approval (an
// approval decided like any other, in the same command). Leader only.
// A refused proposal or approval is logged and returned as a
// *CeremonyRefusal; otherwise the ceremony's record is returned, which may
// already be executed (or refused at execution) when the proposer's
// approval reached the quorum. When the proposal is accepted but its
// signature is refused (bad_signature), the proposal stays recorded,
// pending, and the error is that refusal.
func (n *Node) Propose(ctx context.Context, proposal []byte, officer string, sig []byte, actor ledger.Actor) (state.Ceremony, error) {
	p, perr := ceremony.ParseProposal(proposal)
	return n.ceremonyCommand(ctx, &state.Command{Type: ledger.TypePropose, Proposal: string(proposal), Officer: officer, Signature: sig}, actor,
		func() string {
			if perr != nil {
				return ""
			}
			return p.ID
		}())
}

// Approve submits officer's approval (signature over the digest) of
// proposal id. Leader only. Errors as Propose's. When the approval makes
// the proposal ready it executes in the same command; for node.add and
// node.remove the leader then changes the raft configuration, and an error
// then says the registration is done but the raft step failed.
func (n *Node) Approve(ctx context.Context, id, officer string, sig []byte, actor ledger.Actor) (state.Ceremony, error) {
	if !state.IsProposalID(id) {
		return state.Ceremony{}, &state.CeremonyRefusal{Code: errcode.UnknownProposal, Reason: fmt.Sprintf("%q is not a proposal id (32 lowercase hex digits)", id)}
	}
	return n.ceremonyCommand(ctx, &state.Command{Type: ledger.TypeApprove, ProposalID: id, Officer: officer, Signature: sig}, actor, id)
}

func (n *Node) ceremonyCommand(ctx context.Context, cmd *state.Command, actor ledger.Actor, id string) (state.Ceremony, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return state.Ceremony{}, err
	}
	if actor.Identity == "" {
		return state.Ceremony{}, fmt.Errorf("keysvc: %s: actor identity is required", cmd.Type)
	}
	if ok, err := n.Initialized(); err != nil {
		return state.Ceremony{}, err
	} else if !ok {
		return state.Ceremony{}, ErrNotInitialized
	}
	// Refusals that need no raft round cost none (screen.go).
	if ref, e, err := n.screen(cmd); err != nil {
		return state.Ceremony{}, err
	} else if ref != nil {
		return state.Ceremony{}, n.refuseScreened(ctx, ref, e, actor)
	}
	var d *dealt
	if cmd.Type == ledger.TypeApprove {
		// One approval at a time deals and commits: two dealings of one
		// version would replace each other's sealing keys on the nodes.
		n.dealMu.Lock()
		defer n.dealMu.Unlock()
		d = n.prepareApproval(ctx, cmd)
	}
	cmd.Time, cmd.ServedBy, cmd.Actor = state.FormatTime(n.cfg.Now()), n.cfg.NodeID, state.ToActorJSON(actor)
	res, err := n.propose(ctx, cmd)
	if err == nil && cmd.Type == ledger.TypeApprove {
		defer n.afterApproval(d, id)
	}
	if err != nil {
		return state.Ceremony{}, fmt.Errorf("keysvc: %s: %w", cmd.Type, err)
	}
	if res.Outcome != string(ledger.OutcomeOK) {
		return state.Ceremony{}, &state.CeremonyRefusal{Code: res.Code, Reason: res.Reason, Entry: res.First}
	}
	c, found, err := n.Ceremony(id)
	if err != nil {
		return state.Ceremony{}, err
	}
	if !found {
		return state.Ceremony{}, fmt.Errorf("keysvc: %s: ceremony %q not found after commit", cmd.Type, id)
	}
	if c.Status == state.StatusExecuted && res.Op != "" {
		if err := n.followUp(ctx, c, res.Op); err != nil {
			return c, err
		}
	}
	return c, nil
}

// afterApproval, once an approval committed, destroys the sealing keys
// dealt for it (d, if any) unless it executed the proposal, and forgets the
// proposal's escrow shares once it is closed. When the outcome is unknown
// (no quorum) nothing is discarded: the approval may still commit, and an
// orphan key is replaced when the version is next dealt.
func (n *Node) afterApproval(d *dealt, id string) {
	c, found, err := n.Ceremony(id)
	if err != nil {
		n.log.Warn("keysvc: after approval", "proposal", id, "err", err)
		return
	}
	if d != nil && (!found || c.Status != state.StatusExecuted) {
		n.discard(d)
	}
	if !found || c.Status != state.StatusPending {
		n.escrow.drop(id)
	}
}

// followUp makes the raft configuration follow an executed node ceremony.
func (n *Node) followUp(ctx context.Context, c state.Ceremony, op string) error {
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return err
	}
	switch ps := p.Params.(type) {
	case ceremony.NodeAdd:
		if err := n.raft.AddVoter(ctx, ps.ID, ps.RaftAddr); err != nil {
			return fmt.Errorf("keysvc: ceremony %s: node %q registered (entry %d), but not yet a voter: %w", c.ID, ps.ID, c.Closed, n.mapRaftErr("add voter", err))
		}
	case ceremony.NodeRemove:
		if err := n.raft.RemoveServer(ctx, ps.ID); err != nil {
			return fmt.Errorf("keysvc: ceremony %s: node %q marked removed (entry %d), but still in the raft configuration: %w", c.ID, ps.ID, c.Closed, n.mapRaftErr("remove server", err))
		}
	}
	return nil
}

// Initialized reports whether cluster.init has been applied on this node.
func (n *Node) Initialized() (ok bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		ok = state.Initialized(tx)
		return nil
	})
	return ok, err
}

// Ceremony returns the record of proposal id as this node has applied it.
func (n *Node) Ceremony(id string) (c state.Ceremony, found bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		c, found, err = state.GetCeremony(tx, id)
		return err
	})
	return c, found, err
}

// Ceremonies returns every recorded proposal, in id order. A pending one
// may be past its expiry or superseded: it is closed by the next approval
// attempt, and the CLI says so from its times and the state version.
func (n *Node) Ceremonies() ([]state.Ceremony, error) {
	var out []state.Ceremony
	err := n.state.view(func(tx *bbolt.Tx) error {
		return state.ForCeremonies(tx, func(c state.Ceremony) error {
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// Officers returns every officer ever recorded (removed ones inactive), in id order.
func (n *Node) Officers() ([]state.Officer, error) {
	var out []state.Officer
	err := n.state.view(func(tx *bbolt.Tx) error {
		return state.ForOfficers(tx, func(o state.Officer) error {
			out = append(out, o)
			return nil
		})
	})
	return out, err
}
