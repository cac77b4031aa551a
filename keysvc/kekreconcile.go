// Keeping each node's HSM in line with the KEK records: after a version is
// destroyed, every node that held a share destroys its sealing key and
// attests it with a signed statement, committed as a kek.destroyed entry.
// A node that was down does so when it returns.

package keysvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// reconcileEvery is how often a node re-checks without a wake-up (a failed
// attestation is retried then).
const reconcileEvery = 10 * time.Second

// wakeKEK drops the decoded KEK records and asks the reconciler to look at
// the records again.
func (n *Node) wakeKEK() {
	n.kekRecs.invalidate()
	select {
	case n.kekWake <- struct{}{}:
	default:
	}
}

// reconcile runs until the node closes.
func (n *Node) reconcile() {
	defer close(n.reconcileDone)
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-n.stopWatch:
			return
		case <-n.kekWake:
		case <-t.C:
		}
		n.purgeInactive()
		n.pruneEscrow()
		if err := n.destroyPending(); err != nil && !n.closed.Load() {
			n.log.Warn("keysvc: destroying kek shares", "err", err)
		}
	}
}

// pendingDestruction is a destroyed version this node has not attested.
type pendingDestruction struct {
	id       string
	version  uint32
	proposal string
}

// destroyPending destroys this node's sealing keys of destroyed versions it
// has not attested yet, and attests each.
func (n *Node) destroyPending() error {
	var todo []pendingDestruction
	if err := n.state.view(func(tx *bbolt.Tx) error {
		return state.ForKEKs(tx, func(k state.KEK) error {
			for _, v := range k.Versions {
				if _, holds := v.Share(n.cfg.NodeID); holds && v.State == ledger.KEKDestroyed && !v.Attested(n.cfg.NodeID) {
					todo = append(todo, pendingDestruction{k.ID, v.Version, v.DestroyCeremony})
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}
	var errs []error
	for _, p := range todo {
		if err := kekhsm.Destroy(n.cfg.Token, p.id, p.version); err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
			errs = append(errs, err)
			continue
		}
		n.log.Info("keysvc: destroyed kek sealing key", "kek", p.id, "version", p.version, "ceremony", p.proposal)
		stmt, err := n.keys.signStatement(ledger.ShareDestroyedStatement(n.cfg.Cluster, n.cfg.NodeID, p.id, p.version, p.proposal))
		if err != nil {
			return err
		}
		req := AttestRequest{KEKID: p.id, Version: p.version, Statement: stmt}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.AppendTimeout)
		err = n.attest(ctx, req)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("attest destruction of kek %q v%d: %w", p.id, p.version, err))
		}
	}
	return errors.Join(errs...)
}

// attest commits req on the leader: here, or through the forwarder.
func (n *Node) attest(ctx context.Context, req AttestRequest) error {
	if n.raft.IsLeader() {
		return n.Attest(ctx, n.cfg.NodeID, req, n.actor)
	}
	f := n.forwarder()
	l := n.Leader()
	if f == nil || l.APIAddr == "" {
		return errors.New("no leader to attest to")
	}
	return f.ForwardAttest(ctx, l.APIAddr, req)
}

// KEKs returns every KEK record, in id order.
func (n *Node) KEKs() ([]state.KEK, error) {
	var out []state.KEK
	err := n.state.view(func(tx *bbolt.Tx) error {
		return state.ForKEKs(tx, func(k state.KEK) error {
			out = append(out, k)
			return nil
		})
	})
	return out, err
}

// KEK returns KEK id's record as this node has applied it.
func (n *Node) KEK(id string) (k state.KEK, found bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		k, found, err = state.GetKEK(tx, id)
		return err
	})
	return k, found, err
}

// DestructionCertificate is what is known of a destroyed version's
// destruction: the ceremony and its approvers, and for each node that held
// a share its signed statement or that it has not attested yet.
type DestructionCertificate struct {
	Cluster   string            `json:"cluster"`
	KEKID     string            `json:"kek_id"`
	Version   uint32            `json:"version"`
	PublicKey []byte            `json:"public_key"`
	Ceremony  string            `json:"ceremony"`
	Approvers []string          `json:"approvers"`
	Destroyed uint64            `json:"destroyed"` // log index of the ceremony.execute entry
	Holders   []DestroyedHolder `json:"holders"`
	Complete  bool              `json:"complete"` // every holder has attested
	// Escrow, when the version was escrowed: the officers whose sealed
	// escrow shares remain (in the log), m of whom could still recover it.
	EscrowOfficers []string `json:"escrow_officers,omitempty"`
	EscrowM        int      `json:"escrow_m,omitempty"`
}

// DestroyedHolder is one share holder's part of a certificate.
type DestroyedHolder struct {
	Node      string `json:"node"`
	Attested  bool   `json:"attested"`
	Statement []byte `json:"statement,omitempty"` // signed note
	Entry     uint64 `json:"entry,omitempty"`     // log index of its kek.destroyed entry
}

// ErrNotDestroyed: a destruction certificate asked of a version that is not destroyed.
var ErrNotDestroyed = errors.New("keysvc: kek version is not destroyed")

// DestructionCertificate returns the certificate of version ver of KEK id:
// errNoKEK (wrapped) if there is no such version, ErrNotDestroyed if it is
// not destroyed.
func (n *Node) DestructionCertificate(id string, ver uint32) (DestructionCertificate, error) {
	var dc DestructionCertificate
	err := n.state.view(func(tx *bbolt.Tx) error {
		k, found, err := state.GetKEK(tx, id)
		if err != nil {
			return err
		}
		v, ok := k.Version(ver)
		if !found || !ok {
			return fmt.Errorf("%w: kek %q v%d", ErrUnknownKEK, id, ver)
		}
		if v.State != ledger.KEKDestroyed {
			return fmt.Errorf("%w: kek %q v%d is %s", ErrNotDestroyed, id, ver, v.State)
		}
		dc = DestructionCertificate{Cluster: state.Cluster(tx), KEKID: id, Version: ver,
			PublicKey: v.PublicKey, Ceremony: v.DestroyCeremony, Destroyed: v.Destroyed, Complete: true}
		c, found, err := state.GetCeremony(tx, v.DestroyCeremony)
		if err != nil {
			return err
		}
		if found {
			for _, a := range c.Approvals {
				dc.Approvers = append(dc.Approvers, a.Officer)
			}
		}
		for _, s := range v.Shares {
			h := DestroyedHolder{Node: s.Node}
			for _, d := range v.Destructions {
				if d.Node == s.Node {
					h.Attested, h.Statement, h.Entry = true, d.Statement, d.Entry
				}
			}
			dc.Complete = dc.Complete && h.Attested
			dc.Holders = append(dc.Holders, h)
		}
		if v.Escrow != nil {
			dc.EscrowOfficers, dc.EscrowM = v.Escrow.Officers, v.Escrow.M
		}
		return nil
	})
	return dc, err
}

// IsMember reports whether id is a registered node that was not removed:
// the check every internal route makes, cheaper than Status.
func (n *Node) IsMember(id string) bool {
	var ok bool
	_ = n.state.view(func(tx *bbolt.Tx) error {
		r, found, err := state.GetNode(tx, id)
		ok = err == nil && found && !r.Removed
		return nil
	})
	return ok
}
