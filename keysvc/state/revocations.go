// Revoked certificates and identities: a bucket of the replicated state,
// written only by executed ceremonies (identity.revoke, officer.remove,
// node.remove) and by a node's removal.

package state

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// bucketRevocations holds one JSON Revocation per revoked certificate or
// identity, under "fingerprint:sha256:<hex>" or "identity:<role>/<name>".
// Revocations are never lifted.
var bucketRevocations = []byte("revocations")

// Revocation is a revoked certificate (Fingerprint) or identity (every
// certificate of a role and name, whatever region it names).
type Revocation struct {
	Fingerprint string `json:"fingerprint,omitempty"` // "sha256:<hex>" (identity.Fingerprint)
	Identity    string `json:"identity,omitempty"`    // "<role>/<name>"
	Entry       uint64 `json:"entry"`                 // log index of the entry that revoked it
	Ceremony    string `json:"ceremony,omitempty"`    // the proposal that revoked it, if a ceremony did
	Reason      string `json:"reason"`
	Time        string `json:"time"` // the revoking command's time (timeFormat)
}

// Key is r's key in the revocations bucket (and RevocationSet).
func (r Revocation) Key() string {
	if r.Fingerprint != "" {
		return fingerprintKey(r.Fingerprint)
	}
	return identityKey(r.Identity)
}

func fingerprintKey(fp string) string     { return "fingerprint:" + fp }
func identityKey(principal string) string { return "identity:" + principal }

// principal is how a revocation names an identity: "<role>/<name>".
func principal(role identity.Role, name string) string { return string(role) + "/" + name }

// getRevocation reads the revocation under key, if any.
func getRevocation(tx *bbolt.Tx, key string) (Revocation, bool, error) {
	return getRecord[Revocation](tx, bucketRevocations, key, "revocation")
}

// revoke records r unless its key is already revoked (the first
// revocation stands); it reports whether it recorded r.
func revoke(tx *bbolt.Tx, r Revocation) (bool, error) {
	if _, found, err := getRevocation(tx, r.Key()); err != nil || found {
		return false, err
	}
	return true, putJSON(tx.Bucket(bucketRevocations), r.Key(), r)
}

// revokeRemoved revokes the identity of an officer or node that an entry
// at index (time t) removes, by ceremony pid ("" for a node.remove command
// before initialisation). It returns the details that say so in the entry.
func revokeRemoved(tx *bbolt.Tx, role identity.Role, name string, index uint64, t, pid string) (map[string]string, error) {
	p := principal(role, name)
	reason := fmt.Sprintf("%s %s removed", role, name)
	if pid != "" {
		reason += " by ceremony " + pid
	}
	if _, err := revoke(tx, Revocation{Identity: p, Entry: index, Ceremony: pid, Reason: reason, Time: t}); err != nil {
		return nil, err
	}
	return map[string]string{"revoked.identity": p}, nil
}

// identityRevoked returns the revocation of role/name, if any.
func identityRevoked(tx *bbolt.Tx, role identity.Role, name string) (Revocation, bool, error) {
	return getRevocation(tx, identityKey(principal(role, name)))
}

// executeRevoke carries out an identity.revoke ceremony, pid, whose
// execute entry will be at index. It refuses (code, reason) to revoke a
// member node's identity — node.remove does that, and changes the raft
// configuration with it — or an officer's identity when fewer officers
// with a usable identity than the quorum would remain: no ceremony could
// pass after that, not even one to repair it.
func executeRevoke(tx *bbolt.Tx, ps ceremony.IdentityRevoke, pid string, index uint64, t string) (code, reason string, details map[string]string, err error) {
	r := Revocation{Fingerprint: ps.Fingerprint, Identity: ps.Identity, Entry: index, Ceremony: pid, Reason: ps.Reason, Time: t}
	what := "certificate " + ps.Fingerprint
	if ps.Identity != "" {
		what = "identity " + ps.Identity
		role, name, _ := strings.Cut(ps.Identity, "/")
		switch identity.Role(role) {
		case identity.RoleNode:
			rec, found, err := GetNode(tx, name)
			if err != nil {
				return "", "", nil, err
			}
			if found && !rec.Removed {
				return errcode.NodeMember, fmt.Sprintf("node %s is a member: remove it by a node.remove ceremony, which revokes its identity", name), nil, nil
			}
		case identity.RoleOfficer:
			o, found, err := GetOfficer(tx, name)
			if err != nil {
				return "", "", nil, err
			}
			if found && o.Active {
				usable := 0
				if err := ForOfficers(tx, func(o Officer) error {
					if !o.Active {
						return nil
					}
					_, revoked, err := identityRevoked(tx, identity.RoleOfficer, o.ID)
					if !revoked {
						usable++
					}
					return err
				}); err != nil {
					return "", "", nil, err
				}
				if q := metaInt(tx.Bucket(bucketMeta), keyQuorum); usable-1 < q {
					return errcode.BelowQuorum, fmt.Sprintf("revoking officer %s would leave %d officers able to sign in, fewer than the quorum %d", name, usable-1, q), nil, nil
				}
			}
		}
	}
	if prev, found, err := getRevocation(tx, r.Key()); err != nil {
		return "", "", nil, err
	} else if found {
		return errcode.AlreadyRevoked, fmt.Sprintf("%s was already revoked by entry %d", what, prev.Entry), nil, nil
	}
	if _, err := revoke(tx, r); err != nil {
		return "", "", nil, err
	}
	d := map[string]string{"revoked.reason": ps.Reason}
	if ps.Fingerprint != "" {
		d["revoked.fingerprint"] = ps.Fingerprint
	} else {
		d["revoked.identity"] = ps.Identity
	}
	return "", "", d, nil
}

// executedNodeRemoval returns the executed node.remove ceremony of node id
// that closed after entry after (the node's registration): one that
// removed this registration of the node, not an earlier one.
func executedNodeRemoval(tx *bbolt.Tx, id string, after uint64) (Ceremony, bool, error) {
	var (
		out   Ceremony
		found bool
	)
	err := forRecords(tx, bucketCeremonies, "ceremony", func(c Ceremony) error {
		if found || c.Status != StatusExecuted || c.Closed <= after {
			return nil
		}
		p, err := ceremony.ParseProposal([]byte(c.Proposal))
		if err != nil {
			return nil // not a proposal this version reads: it authorises nothing
		}
		if ps, ok := p.Params.(ceremony.NodeRemove); ok && ps.ID == id {
			out, found = c, true
		}
		return nil
	})
	return out, found, err
}

// RevocationSet is a snapshot of the revocations bucket, by Revocation.Key.
type RevocationSet map[string]Revocation

// ReadRevocations reads every revocation.
func ReadRevocations(tx *bbolt.Tx) (RevocationSet, error) {
	out := RevocationSet{}
	err := tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
		var r Revocation
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("keysvc: revocation record %q: %w", k, err)
		}
		out[string(k)] = r
		return nil
	})
	return out, err
}

// mayRevoke reports whether applying cmd may have revoked something: the
// cache is reloaded after such commands.
func mayRevoke(cmd *Command) bool {
	return cmd != nil && (cmd.Type == ledger.TypePropose || cmd.Type == ledger.TypeApprove || cmd.Type == ledger.TypeNodeRemove)
}
