// The in-memory copy of the revocations the API and raft ports consult
// on every request and handshake, and Node's revocation checks.

package keysvc

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/state"
)

// revokedCache is the state machine's in-memory copy of the revocations
// bucket, replaced (never changed) after every command that may revoke,
// and on open and restore.
type revokedCache struct {
	p atomic.Pointer[state.RevocationSet]
}

// load replaces the copy with db's revocations. On a read failure it keeps
// the last copy and returns the error: revocations only grow, so the last
// copy misses at most the newest.
func (c *revokedCache) load(db *bbolt.DB) error {
	var rs state.RevocationSet
	err := db.View(func(tx *bbolt.Tx) (err error) {
		rs, err = state.ReadRevocations(tx)
		return err
	})
	if err != nil {
		return err
	}
	c.p.Store(&rs)
	return nil
}

func (c *revokedCache) lookup(id identity.Identity, fingerprint string) (state.Revocation, bool) {
	rs := c.p.Load()
	if rs == nil {
		return state.Revocation{}, false
	}
	return rs.Lookup(id, fingerprint)
}

// Revoked reports whether the certificate with fingerprint ("sha256:<hex>",
// identity.Fingerprint; "" to check the identity alone) held by id is
// revoked, by its fingerprint or by id's role and name, as this node has
// applied the state. It reads an in-memory copy, updated as each command
// is applied (before the command's index counts as applied), so it is
// cheap enough for every request and handshake. Safe for concurrent use.
func (n *Node) Revoked(id identity.Identity, fingerprint string) (state.Revocation, bool) {
	return n.state.revoked.lookup(id, fingerprint)
}

// Revocations returns every revocation this node has applied, in log order.
func (n *Node) Revocations() []state.Revocation {
	rs := n.state.revoked.p.Load()
	if rs == nil {
		return nil
	}
	out := make([]state.Revocation, 0, len(*rs))
	for _, r := range *rs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b state.Revocation) int {
		switch {
		case a.Entry < b.Entry:
			return -1
		case a.Entry > b.Entry:
			return 1
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return out
}

// RevokedError is the refusal of a revoked certificate.
type RevokedError struct {
	Identity    identity.Identity
	Fingerprint string
	Revocation  state.Revocation
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate %s of %s was revoked by entry %d: %s", e.Fingerprint, e.Identity, e.Revocation.Entry, e.Revocation.Reason)
}

// CheckRevoked returns a *RevokedError if the certificate with
// fingerprint held by id is revoked, nil otherwise: Revoked as an error.
func (n *Node) CheckRevoked(id identity.Identity, fingerprint string) error {
	if r, ok := n.Revoked(id, fingerprint); ok {
		return &RevokedError{Identity: id, Fingerprint: fingerprint, Revocation: r}
	}
	return nil
}
