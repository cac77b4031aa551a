// KEK policies: the verifier follows each KEK's policy through the log
// (set by an executed kek.create, replaced by an executed kek.policy) and
// checks every verified activation's client against the unwrap access in
// force at that entry.

package audit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// CodeActivationNotPermitted: an activation whose client (verified from
// its signed request) the unwrap access of the KEK's policy in force at
// that entry does not grant, by role or identity, or not from its region;
// or a share release for such a client after a kek.policy took its access
// away (peers check the policy in force when they release).
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

// policyOf checks entry e, which ShareReleases found nothing wrong with,
// against its KEK's policy when it is an ok activation that verified, or
// an ok release for one.
func (v *verifier) policyOf(e *ledger.Entry) *ReleaseFinding {
	if e.Outcome != ledger.OutcomeOK {
		return nil
	}
	act := e.Index
	switch e.Type {
	case ledger.TypeActivate:
	case ledger.TypeRelease:
		a, err := strconv.ParseUint(e.Details["activation"], 10, 64)
		if err != nil {
			return nil
		}
		act = a
	default:
		return nil
	}
	who, ok := v.releases.verified(act)
	if !ok {
		return nil
	}
	return v.permitted(e, act, who)
}

// permitted checks the activation or release e, for the activation at
// entry act whose client who was verified from its signed request,
// against the unwrap access of its KEK's policy in force at e; it counts
// the activations it cannot check.
func (v *verifier) permitted(e *ledger.Entry, act uint64, who identity.Identity) *ReleaseFinding {
	c := &v.rep.Policies
	release := e.Type == ledger.TypeRelease
	kp := v.st.keks[e.KEKID]
	if kp == nil {
		if release {
			return nil
		}
		c.Unknown++
		if len(c.UnknownKEKs) < maxUnknownKEKs && !slices.Contains(c.UnknownKEKs, e.KEKID) {
			c.UnknownKEKs = append(c.UnknownKEKs, e.KEKID)
		}
		return nil
	}
	if !release {
		c.Checked++
	}
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
	if release {
		return finding(CodeActivationNotPermitted, e.Index, "node %s released its share of kek %s v%d to node %s for activation %d by %s, but the kek's policy in force at the release (set by the %s ceremony executed at entry %d) %s: the peer should have refused; investigate node %s and node %s, and rotate kek %s",
			e.Node, e.KEKID, e.KEKVersion, e.Details["to"], act, who, kp.op, kp.set, why, e.Node, e.Details["to"], e.KEKID)
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
