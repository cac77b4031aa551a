// KEK policies: the verifier follows each KEK's policy through the log
// (set by an executed kek.create, replaced by an executed kek.policy) and
// checks every verified activation's client against the unwrap access in
// force at that entry.

package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// CodeActivationNotPermitted: an activation whose client (verified from
// its signed request) the unwrap access of the KEK's policy in force at
// that entry does not grant, by role or identity, or not from its region.
const CodeActivationNotPermitted = "activation_not_permitted"

// PolicyCounts is what the verifier saw of activations and KEK policies.
type PolicyCounts struct {
	// Checked: verified activations whose client was checked against the
	// unwrap access of the KEK's policy in force.
	Checked uint64 `json:"checked"`
	// Unknown: verified activations of a KEK whose policy the verifier did
	// not follow (created before the pack, with no policy in the trust
	// file's state and no kek.policy in the pack before them; or any KEK in
	// a partial verification): not checked.
	Unknown uint64 `json:"unknown"`
	// UnknownKEKs names those KEKs (at most maxUnknownKEKs).
	UnknownKEKs []string `json:"unknown_keks,omitempty"`
}

const maxUnknownKEKs = 32

// kekPolicy is the policy of a KEK in force, and the entry that set it.
type kekPolicy struct {
	policy ceremony.Policy
	set    uint64
	op     ceremony.Operation // kek.create or kek.policy
}

// setPolicy records the policy an executed kek.create or kek.policy at
// entry i puts in force.
func (st *state) setPolicy(i uint64, op ceremony.Operation, kek string, p ceremony.Policy) {
	st.keks[kek] = &kekPolicy{policy: p, set: i, op: op}
}

// permitted checks the activation e, whose client who was verified from
// its signed request, against the unwrap access of its KEK's policy in
// force; it counts the activations it cannot check.
func (v *verifier) permitted(e *ledger.Entry, who identity.Identity) *ReleaseFinding {
	c := &v.rep.Policies
	kp := v.st.keks[e.KEKID]
	if kp == nil {
		c.Unknown++
		if len(c.UnknownKEKs) < maxUnknownKEKs && !slices.Contains(c.UnknownKEKs, e.KEKID) {
			c.UnknownKEKs = append(c.UnknownKEKs, e.KEKID)
		}
		return nil
	}
	c.Checked++
	a := kp.policy.Unwrap
	role := string(who.Role)
	var why string
	switch {
	case !a.Grants(role, who.Name):
		why = fmt.Sprintf("grants unwrap to %s, not to %s/%s", describeGrant(a), role, who.Name)
	case !a.InRegion(who.Region):
		why = fmt.Sprintf("allows unwrap from %s only, not from %s", strings.Join(a.Regions, ", "), who.Region)
	default:
		return nil
	}
	return finding(CodeActivationNotPermitted, e.Index, "node %s activated kek %s v%d for %s, but the kek's policy in force (set by the %s ceremony executed at entry %d) %s: the nodes should have refused; treat the activation as unauthorised, investigate the serving node %s and every node that released a share for it, and rotate kek %s",
		e.Node, e.KEKID, e.KEKVersion, e.Actor.Identity, kp.op, kp.set, why, e.Node, e.KEKID)
}

// describeGrant says whom a grants, e.g. "roles agent and identities
// auditor/audit-1", or "nobody".
func describeGrant(a ceremony.Access) string {
	var parts []string
	if len(a.Roles) > 0 {
		parts = append(parts, "role(s) "+strings.Join(a.Roles, ", "))
	}
	if len(a.Identities) > 0 {
		parts = append(parts, "identities "+strings.Join(a.Identities, ", "))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, " and ")
}
