// Screening of proposals and approvals before raft: the refusals the
// state machine would only log, decided without a raft write.

package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Screen returns the refusal the state machine would log for cmd, reading
// tx and changing nothing, for the cases that cost nothing to decide: an officer
// who is not active, an oversized signature, an unparsable or foreign
// proposal, a proposal id already used, an approval of an unknown or
// closed proposal. nil means cmd goes to raft, which decides everything
// again. The entry is the denial to log.
func Screen(tx *bbolt.Tx, cmd *Command) (*CeremonyRefusal, ledger.Entry, error) {
	details := map[string]string{"officer": cmd.Officer}
	var ref *CeremonyRefusal
	refuse := func(code, format string, args ...any) {
		ref = &CeremonyRefusal{Code: code, Reason: Clip(fmt.Sprintf(format, args...))}
	}
	err := func() error {
		switch cmd.Type {
		case ledger.TypePropose:
			details["request"] = "propose"
			sum := sha256.Sum256([]byte(cmd.Proposal))
			details["proposal.sha256"] = hex.EncodeToString(sum[:])
		case ledger.TypeApprove:
			details["request"] = "approve"
			details["proposal.id"] = cmd.ProposalID
		default:
			return nil
		}
		o, found, err := GetOfficer(tx, cmd.Officer)
		if err != nil {
			return err
		}
		if !found || !o.Active {
			refuse(string(ceremony.CodeUnknownOfficer), "%q is not an active officer and may not %s", cmd.Officer, details["request"])
			return nil
		}
		if len(cmd.Signature) > ceremony.MaxSignatureSize {
			refuse(string(ceremony.CodeBadSignature), "%s: signature by %q is %d bytes, over the limit of %d",
				details["request"], cmd.Officer, len(cmd.Signature), ceremony.MaxSignatureSize)
			return nil
		}
		id := cmd.ProposalID
		if cmd.Type == ledger.TypePropose {
			p, err := ceremony.ParseProposal([]byte(cmd.Proposal))
			if err != nil {
				code := string(ceremony.CodeInvalidProposal)
				if c, _ := RefusalCode(err); c != "" {
					code = c
				}
				refuse(code, "%v", err)
				return nil
			}
			details["proposal.id"] = p.ID
			if p.Proposer != cmd.Officer {
				refuse(errcode.NotProposer, "officer %q submitted a proposal by %q", cmd.Officer, p.Proposer)
				return nil
			}
			if _, found, err := GetCeremony(tx, p.ID); err != nil {
				return err
			} else if found {
				refuse(errcode.ProposalExists, "a proposal with id %s was already submitted", p.ID)
			}
			return nil
		}
		c, found, err := GetCeremony(tx, id)
		switch {
		case err != nil:
			return err
		case !found:
			refuse(errcode.UnknownProposal, "no proposal %q", id)
		case c.Status != StatusPending:
			refuse(string(ceremony.CodeClosed), "proposal %s is already %s", id, c.Status)
		}
		return nil
	}()
	if err != nil || ref == nil {
		return nil, ledger.Entry{}, err
	}
	e := ledger.Entry{Type: ledger.TypeDenied, Outcome: ledger.OutcomeDenied,
		Reason: Clip(ref.Code + ": " + ref.Reason), Details: details}
	return ref, e, nil
}
