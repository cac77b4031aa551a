// Membership on the wire and in the log: which node certificates the raft
// port and the peer channel accept, and which entries a member may forward
// to the leader in its own name.

package keysvc

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/state"
)

// reverifyEvery is how often established raft and peer connections are
// checked again against membership and revocations.
const reverifyEvery = time.Second

// peerID is the node id a verified node certificate names.
func peerID(cert *x509.Certificate) (string, error) {
	id, err := identity.FromCertificate(cert)
	if err != nil {
		return "", err
	}
	return id.Name, nil
}

// verifyMember accepts a raft or peer-channel connection from (or to) a node
// certificate only if, in this node's replicated state, it names a current
// member (a node registered by genesis or by an executed node.add, not
// removed), is the certificate registered for that node, and neither it
// nor its identity is revoked. Before genesis has been applied here (a new
// node waiting to be added) any node certificate of the cluster is
// accepted: the node has no state to check against yet.
func (n *Node) verifyMember(cert *x509.Certificate) error {
	if err := verifyNodePeer(n.cfg.Cluster)(cert); err != nil {
		return err
	}
	id, _ := identity.FromCertificate(cert)
	fp := identity.Fingerprint(cert)
	if r, revoked := n.Revoked(id, fp); revoked {
		return fmt.Errorf("node %s: certificate revoked by entry %d: %s", id.Name, r.Entry, r.Reason)
	}
	var (
		rec     state.NodeRecord
		found   bool
		genesis bool
	)
	if err := n.state.view(func(tx *bbolt.Tx) (err error) {
		genesis = state.GenesisDone(tx)
		rec, found, err = state.GetNode(tx, id.Name)
		return err
	}); err != nil {
		return err
	}
	switch {
	case !genesis:
		return nil
	case !found || rec.Removed:
		return fmt.Errorf("node %s is not a member of the cluster", id.Name)
	case rec.Cert != "" && rec.Cert != fp:
		return fmt.Errorf("node %s: certificate %s is not the one registered for it (%s)", id.Name, fp, rec.Cert)
	}
	return nil
}

// revokedClient reports whether a client certificate, or its identity, is revoked.
func (n *Node) revokedClient(id identity.Identity, fp string) bool {
	_, revoked := n.Revoked(id, fp)
	return revoked
}

// ErrForgedEntry: a node forwarded an entry it may not write.
var ErrForgedEntry = errors.New("keysvc: entry not in the forwarding node's own name")

// CheckForwarded checks an entry that member node from forwards to the
// leader: an entry whose actor is a node must name from itself (a node acts
// only in its own name); a share release is always from's own; an
// activation must carry a client request whose signature verifies now,
// by the client it names. Errors wrap ErrForgedEntry.
func (n *Node) CheckForwarded(from string, e ledger.Entry) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrForgedEntry, fmt.Sprintf(format, a...))
	}
	self := identity.Identity{Cluster: n.cfg.Cluster, Name: from, Role: identity.RoleNode}
	if e.Actor.Role == string(identity.RoleNode) || e.Type == ledger.TypeRelease {
		id, err := identity.ParseURI(e.Actor.Identity)
		if err != nil || id.Cluster != self.Cluster || id.Role != identity.RoleNode || id.Name != from {
			return bad("node %q may log %s entries only as itself, not as %q", from, e.Type, e.Actor.Identity)
		}
	}
	if e.Type == ledger.TypeActivate && e.Outcome == ledger.OutcomeOK {
		s, err := reqsig.FromDetails(e.Details)
		if err != nil {
			return bad("activation: %v", err)
		}
		vr, err := n.verifyRequest(s)
		if err != nil {
			return bad("activation: %v", err)
		}
		if Actor(vr.Identity, vr.Certificate) != e.Actor || vr.Request.RequestID != e.RequestID {
			return bad("activation names %s, but its request is signed by %s", e.Actor.Identity, vr.Identity)
		}
	}
	return nil
}
