// Decisions: whether a new proposal is accepted, whether an approval
// counts, and whether a proposal is ready to execute.

package ceremony

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// VerifyFunc checks that sig is officer's signature over digest, with the
// officer's keys as the cluster state records them (both parts of the
// hybrid signature). It must be deterministic, since it runs inside the
// state machine's Apply: its error text goes into the refusal.
type VerifyFunc func(officer string, digest [32]byte, sig []byte) error

// Approval is one officer's signature over a proposal's digest.
type Approval struct {
	ProposalID string `json:"proposal_id"`
	Officer    string `json:"officer"`   // officer id
	Signature  []byte `json:"signature"` // over Proposal.Digest(); at most MaxSignatureSize bytes
}

// Rules are the parts of the cluster state a decision depends on.
type Rules struct {
	Cluster  string   // this cluster's id
	Officers []string // ids of the active officers (removed ones left out), in any order, no duplicates
	Quorum   int      // M: distinct officers' approvals a proposal needs, 1..len(Officers)
}

// Validate checks r. A decision with invalid rules returns Validate's error,
// which is a plain error, not a refusal: it is the caller's bug.
func (r Rules) Validate() error {
	if err := checkName("cluster", r.Cluster); err != nil {
		return fmt.Errorf("ceremony: invalid rules: %w", err)
	}
	for i, o := range r.Officers {
		if err := checkName("officer", o); err != nil {
			return fmt.Errorf("ceremony: invalid rules: %w", err)
		}
		if slices.Contains(r.Officers[:i], o) {
			return fmt.Errorf("ceremony: invalid rules: officer %q listed twice", o)
		}
	}
	if r.Quorum < 1 || r.Quorum > len(r.Officers) || r.Quorum > MaxQuorum {
		return fmt.Errorf("ceremony: invalid rules: quorum %d with %d officers (want 1 ≤ quorum ≤ officers)", r.Quorum, len(r.Officers))
	}
	return nil
}

// Outcome is a decision on a proposal that was not refused.
type Outcome struct {
	// Ready: at least Quorum distinct active officers approved, before
	// expiry, against the current state version. The state machine
	// executes the proposal now, and closes it.
	Ready bool
	// Approvers are the officers whose approvals count, in approval order.
	Approvers []string
	Quorum    int // M at the time of the decision
}

// String says where the proposal stands, e.g. "pending: 1 of 2 approvals (alice)".
func (o Outcome) String() string {
	state := "pending"
	if o.Ready {
		state = "ready"
	}
	s := fmt.Sprintf("%s: %d of %d approvals", state, len(o.Approvers), o.Quorum)
	if len(o.Approvers) > 0 {
		s += " (" + strings.Join(o.Approvers, ", ") + ")"
	}
	return s
}

// CheckProposal decides whether the state machine accepts a newly submitted
// proposal: valid, for this cluster, proposed by an active officer, made
// against the current state version, not expired, and not created more
// than MaxClockSkew after now (the state machine's time for the command).
// It does not check that the submitter's identity is p.Proposer; the
// caller does. Proposing is not approving: the proposer's approval counts
// only if they also sign one.
//
// Errors are *RefusalError (codes invalid_proposal, invalid_params,
// wrong_cluster, expired, superseded, unknown_officer), or a plain error for
// invalid rules or a zero now.
func CheckProposal(p Proposal, rules Rules, now time.Time, stateVersion uint64) error {
	if err := checkOpen(p, rules, now, stateVersion); err != nil {
		return err
	}
	if p.Created.After(now.Add(MaxClockSkew)) {
		return refuse(CodeInvalidProposal, "proposal %s: created %s, more than %v after now (%s)",
			p.ID, fmtTime(p.Created), MaxClockSkew, fmtTime(now))
	}
	if !slices.Contains(rules.Officers, p.Proposer) {
		return refuse(CodeUnknownOfficer, "proposal %s: proposer %q is not an active officer", p.ID, p.Proposer)
	}
	return nil
}

// CheckApproval decides whether one incoming approval of p is accepted,
// given the approvals already accepted, so that the state machine can log
// each approval as accepted or refused. The proposal must still be open
// (checked as Evaluate does), the approval must name p, come from an active
// officer who has not approved p yet, and carry that officer's valid
// signature over p.Digest(). Signatures are verified last, after the cheap
// checks.
//
// Errors are *RefusalError (the proposal's codes as in Evaluate, then
// wrong_proposal, unknown_officer, duplicate_approver, bad_signature), or a
// plain error for invalid rules, a zero now or a nil verify.
func CheckApproval(p Proposal, accepted []Approval, a Approval, rules Rules, now time.Time, stateVersion uint64, verify VerifyFunc) error {
	if err := checkOpen(p, rules, now, stateVersion); err != nil {
		return err
	}
	if verify == nil {
		return errors.New("ceremony: nil VerifyFunc")
	}
	return checkApproval(p, p.Digest(), accepted, a, rules, verify)
}

// Evaluate decides a proposal given all the approvals accepted for it. It
// refuses the proposal if it is invalid, for another cluster, expired (now
// is at or after Expires) or superseded (stateVersion is not the one it
// was made against); it then re-checks every approval as CheckApproval
// does, including signatures, and refuses on the first that fails (which
// means the caller's state is inconsistent: nothing is counted from a bad
// list). Otherwise it reports the proposal ready once Quorum distinct
// active officers approved it, pending before.
//
// Evaluate is deterministic and pure, for the state machine's Apply: now
// is the time the leader stamped on the command, never a clock read.
// Executing a ready proposal (and anything else that changes what
// proposals act on) must change the state version, which supersedes every
// other open proposal. Errors are *RefusalError, whose Code.Final tells
// whether the proposal can still execute, or a plain error for invalid
// rules, a zero now or a nil verify.
func Evaluate(p Proposal, approvals []Approval, rules Rules, now time.Time, stateVersion uint64, verify VerifyFunc) (Outcome, error) {
	if err := checkOpen(p, rules, now, stateVersion); err != nil {
		return Outcome{}, err
	}
	if verify == nil {
		return Outcome{}, errors.New("ceremony: nil VerifyFunc")
	}
	d := p.Digest()
	approvers := make([]string, 0, len(approvals))
	for i, a := range approvals {
		if err := checkApproval(p, d, approvals[:i], a, rules, verify); err != nil {
			return Outcome{}, err
		}
		approvers = append(approvers, a.Officer)
	}
	return Outcome{Ready: len(approvers) >= rules.Quorum, Approvers: approvers, Quorum: rules.Quorum}, nil
}

// checkOpen checks what every decision needs: valid rules and proposal,
// same cluster, not expired, not superseded.
func checkOpen(p Proposal, rules Rules, now time.Time, stateVersion uint64) error {
	if err := rules.Validate(); err != nil {
		return err
	}
	if now.IsZero() {
		return errors.New("ceremony: zero time for a decision")
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Cluster != rules.Cluster {
		return refuse(CodeWrongCluster, "proposal %s is for cluster %q, this is %q", p.ID, p.Cluster, rules.Cluster)
	}
	if !now.Before(p.Expires) {
		return refuse(CodeExpired, "proposal %s expired at %s (now %s)", p.ID, fmtTime(p.Expires), fmtTime(now))
	}
	if stateVersion != p.StateVersion {
		return refuse(CodeSuperseded, "proposal %s was made against state version %d, the state is now at version %d",
			p.ID, p.StateVersion, stateVersion)
	}
	return nil
}

// checkApproval checks a against p (digest d), given the approvals before it.
func checkApproval(p Proposal, d [32]byte, prior []Approval, a Approval, rules Rules, verify VerifyFunc) error {
	if a.ProposalID != p.ID {
		return refuse(CodeWrongProposal, "approval by %q names proposal %q, not %s", a.Officer, a.ProposalID, p.ID)
	}
	if !slices.Contains(rules.Officers, a.Officer) {
		return refuse(CodeUnknownOfficer, "proposal %s: approver %q is not an active officer", p.ID, a.Officer)
	}
	for _, b := range prior {
		if b.Officer == a.Officer {
			return refuse(CodeDuplicateApprover, "proposal %s: officer %q has already approved it", p.ID, a.Officer)
		}
	}
	if len(a.Signature) == 0 || len(a.Signature) > MaxSignatureSize {
		return refuse(CodeBadSignature, "proposal %s: signature by %q is %d bytes, want 1-%d", p.ID, a.Officer, len(a.Signature), MaxSignatureSize)
	}
	if err := verify(a.Officer, d, a.Signature); err != nil {
		return refuse(CodeBadSignature, "proposal %s: signature by %q does not verify: %v", p.ID, a.Officer, err)
	}
	return nil
}
