package ceremony_test

import (
	"fmt"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

// A KEK rotation proposed by alice and approved by bob and carol, decided
// as the state machine would, one approval at a time.
func Example() {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	p := ceremony.Proposal{
		Cluster: "prod", ID: "00112233445566778899aabbccddeeff", // ceremony.NewID(rand.Reader)
		Params: ceremony.KEKRotate{KEKID: "payroll"}, Proposer: "alice",
		Created: now, Expires: now.Add(24 * time.Hour), StateVersion: 41,
	}
	rules := ceremony.Rules{Cluster: "prod", Officers: []string{"alice", "bob", "carol"}, Quorum: 2}
	fmt.Println(ceremony.Describe(p, rules.Quorum))

	var accepted []ceremony.Approval
	for i, officer := range []string{"bob", "bob", "carol"} {
		a := ceremony.Approval{ProposalID: p.ID, Officer: officer, Signature: fakeSign(officer, p.Digest())}
		at := now.Add(time.Duration(i+1) * time.Minute)
		if err := ceremony.CheckApproval(p, accepted, a, rules, at, 41, fakeVerify); err != nil {
			fmt.Println(err)
			continue
		}
		accepted = append(accepted, a)
		out, err := ceremony.Evaluate(p, accepted, rules, at, 41, fakeVerify)
		fmt.Println(out, err)
	}
	// Output:
	// Rotate KEK "payroll": create its next version, split under its current policy, and wrap with it from then on; earlier versions stay as they are. Proposed by alice at 2026-03-01T10:00:00Z, expires 2026-03-02T10:00:00Z, needs 2 approvals, made against state version 41 of cluster prod (proposal 00112233445566778899aabbccddeeff).
	// pending: 1 of 2 approvals (bob) <nil>
	// ceremony: refused (duplicate_approver): proposal 00112233445566778899aabbccddeeff: officer "bob" has already approved it
	// ready: 2 of 2 approvals (bob, carol) <nil>
}
