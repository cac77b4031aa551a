// Describe: a proposal in words, for `custos officer show`.

package ceremony

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Describe says in words exactly what p will do if it executes, who
// proposed it, when it expires, how many approvals it needs (quorum, the
// current M; pass 0 if unknown) and the state version it was made against,
// for an officer to read before signing. Every name, code and number shown
// comes from p, so two proposals with different effects never read the
// same; free text (reasons) is quoted with Go escapes. For an invalid
// proposal it says that nothing will happen, and why.
func Describe(p Proposal, quorum int) string {
	if err := p.Validate(); err != nil {
		return "Invalid proposal; it cannot execute: " + err.(*RefusalError).Msg + "."
	}
	need := "the officer quorum's approvals"
	if quorum == 1 {
		need = "1 approval"
	} else if quorum > 1 {
		need = fmt.Sprintf("%d approvals", quorum)
	}
	return fmt.Sprintf("%s Proposed by %s at %s, expires %s, needs %s, made against state version %d of cluster %s (proposal %s).",
		p.Params.describe(), p.Proposer, humanTime(p.Created), humanTime(p.Expires), need,
		p.StateVersion, p.Cluster, p.ID)
}

func humanTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (p NodeAdd) describe() string {
	sum := sha256.Sum256([]byte(p.Keys))
	kem := sha256.Sum256([]byte(p.KEM))
	cert := ""
	if p.Cert != "" {
		cert = ", TLS certificate " + p.Cert
	}
	return fmt.Sprintf("Add node %q in region %s as a voting member (raft address %s, API %s, checkpoint keys SHA-256 %s, KEM key SHA-256 %s%s); refused unless %s is an allowed region.",
		p.ID, p.Region, p.RaftAddr, p.APIAddr, hex.EncodeToString(sum[:]), hex.EncodeToString(kem[:]), cert, p.Region)
}

func (p NodeRemove) describe() string {
	return fmt.Sprintf("Remove node %q from the cluster: it stops voting and serving, and every certificate of node %s is revoked for good; its record stays so that the checkpoints it signed still verify.", p.ID, p.ID)
}

func (p OfficerAdd) describe() string {
	return fmt.Sprintf("Add officer %q with public key fingerprint %s: %s may then propose and approve ceremonies.", p.ID, p.Fingerprint, p.ID)
}

func (p OfficerRemove) describe() string {
	return fmt.Sprintf("Remove officer %q: %s may no longer propose or approve ceremonies, and every officer certificate of %s is revoked for good; escrow shares already sealed to %s stay usable for the versions they belong to.", p.ID, p.ID, p.ID, p.ID)
}

func (p QuorumSet) describe() string {
	return fmt.Sprintf("Set the officer quorum to %d: every later proposal needs approvals from %d distinct officers.", p.M, p.M)
}

func (p RegionsSet) describe() string {
	return fmt.Sprintf("Set the cluster's allowed regions to %s: nodes may join, and KEK policies may allow use, from these regions only.", strings.Join(p.Regions, ", "))
}

func (p KEKCreate) describe() string {
	escrow := "no officer escrow"
	if p.Policy.Escrow.Enabled {
		escrow = fmt.Sprintf("officer escrow: any %d officers' shares recover it", p.Policy.Escrow.M)
	}
	return fmt.Sprintf("Create KEK %q (version 1), split across the cluster's nodes, one share each, any %d needed to use it; %s; %s.",
		p.KEKID, p.Policy.Threshold, p.Policy.describeUse(), escrow)
}

func (p KEKRotate) describe() string {
	return fmt.Sprintf("Rotate KEK %q: create its next version, split under its current policy, and wrap with it from then on; earlier versions stay as they are.", p.KEKID)
}

func (p KEKDisable) describe() string {
	them, they := "it", "it is"
	if p.All {
		them, they = "them", "they are"
	}
	return fmt.Sprintf("Disable %s: no wrap or unwrap with %s until %s enabled again, and any copy in memory is purged; refused while the KEK is under legal hold.",
		versions(p.KEKID, p.Version, p.All, "every version"), them, they)
}

func (p KEKEnable) describe() string {
	return fmt.Sprintf("Enable %s again, for wrap and unwrap as its policy allows.",
		versions(p.KEKID, p.Version, p.All, "every disabled version"))
}

func versions(id string, version uint32, all bool, every string) string {
	if all {
		return fmt.Sprintf("%s of KEK %q", every, id)
	}
	return fmt.Sprintf("version %d of KEK %q", version, id)
}

func (p KEKDestroy) describe() string {
	return fmt.Sprintf("Destroy version %d of KEK %q: every node deletes its HSM key for that version, so nothing wrapped under it can be unwrapped through the cluster again. This cannot be undone; if the version has officer escrow, its escrow shares can still recover it until they are destroyed too. Refused while the KEK is under legal hold.",
		p.Version, p.KEKID)
}

func (p KEKPolicy) describe() string {
	escrow := "without officer escrow"
	if p.Policy.Escrow.Enabled {
		escrow = fmt.Sprintf("with officer escrow (any %d officers' shares recover a version)", p.Policy.Escrow.M)
	}
	return fmt.Sprintf("Replace the policy of KEK %q: %s. These apply at once; versions created from then on are split with any %d nodes needed, %s.",
		p.KEKID, p.Policy.describeUse(), p.Policy.Threshold, escrow)
}

func (p LegalHoldSet) describe() string {
	return fmt.Sprintf("Place KEK %q under legal hold (reason: %q): none of its versions can be disabled or destroyed until the hold is released.", p.KEKID, p.Reason)
}

func (p LegalHoldRelease) describe() string {
	return fmt.Sprintf("Release the legal hold on KEK %q (reason: %q): its versions can be disabled and destroyed again.", p.KEKID, p.Reason)
}

func (p EscrowRecover) describe() string {
	return fmt.Sprintf("Recover version %d of KEK %q from officer escrow (reason: %q): the officers' escrow shares rebuild it, and it is split again across the cluster's current nodes.",
		p.Version, p.KEKID, p.Reason)
}

func (p IdentityRevoke) describe() string {
	what := fmt.Sprintf("the certificate with fingerprint %s", p.Fingerprint)
	if p.Fingerprint == "" {
		role, name, _ := strings.Cut(p.Identity, "/")
		what = fmt.Sprintf("every certificate of %s %q, in any region", role, name)
	}
	return fmt.Sprintf("Revoke %s (reason: %q): the cluster refuses it on its API and between nodes from then on, for good; refused if it is a member node's (remove the node instead) or would leave fewer usable officers than the quorum.", what, p.Reason)
}

// describeUse describes who may use a KEK under p, and how: everything in
// p but threshold and escrow.
func (p Policy) describeUse() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wrap: %s; unwrap: %s; ", p.Wrap.describe(), p.Unwrap.describe())
	if len(p.Context) == 0 {
		b.WriteString("no required context fields; ")
	} else {
		fmt.Fprintf(&b, "required context: %s; ", strings.Join(p.Context, ", "))
	}
	if p.ActivationTTL == 0 {
		b.WriteString("activation per request (the key is never kept in memory)")
	} else {
		fmt.Fprintf(&b, "activation TTL %s", humanDuration(p.ActivationTTL))
	}
	return b.String()
}

// describe: e.g. "any agent and auditors [audit-1], from DE, FR only", or
// "nobody".
func (a Access) describe() string {
	var parts []string
	for _, r := range a.Roles {
		parts = append(parts, "any "+r)
	}
	for i := 0; i < len(a.Identities); {
		role, _, _ := strings.Cut(a.Identities[i], "/")
		var names []string
		for ; i < len(a.Identities); i++ {
			r, name, _ := strings.Cut(a.Identities[i], "/")
			if r != role {
				break
			}
			names = append(names, name)
		}
		parts = append(parts, role+"s ["+strings.Join(names, ", ")+"]")
	}
	switch len(parts) {
	case 0:
		return "nobody"
	case 1:
	default:
		parts = append(parts[:len(parts)-2], parts[len(parts)-2]+" and "+parts[len(parts)-1])
	}
	return strings.Join(parts, ", ") + ", from " + strings.Join(a.Regions, ", ") + " only"
}

// humanDuration writes d without zero units: 5m, 1h30m, 90s → 1m30s.
func humanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
