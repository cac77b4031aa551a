// With real officer keys (package keysvc/officer): the bundle fingerprint
// rule matches theirs, and decisions work with hybrid signatures. Imported
// by tests only; this package itself needs no crypto but SHA-256.

package ceremony_test

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
)

func TestWithOfficerKeys(t *testing.T) {
	offs := officertest.New(t, "alice", "bob", "carol", "dave")
	verify := offs.Verify()

	dave := offs.Signer("dave").Public()
	add := offs.Add("dave")
	if err := add.Validate(); err != nil {
		t.Fatalf("officer.add with a real bundle: %v", err)
	}
	if got := ceremony.BundleFingerprint(add.Bundle); got != dave.Fingerprint() {
		t.Fatalf("BundleFingerprint = %s, officer package says %s", got, dave.Fingerprint())
	}
	if len(add.Bundle) > ceremony.MaxBundleLen {
		t.Fatalf("a real bundle is %d bytes, over MaxBundleLen", len(add.Bundle))
	}

	p := sampleProposal(add)
	rules := testRules()
	a, b := offs.Approve("alice", p), offs.Approve("bob", p)
	if len(a.Signature) > ceremony.MaxSignatureSize {
		t.Fatalf("a real signature is %d bytes, over MaxSignatureSize", len(a.Signature))
	}
	if err := ceremony.CheckApproval(p, nil, a, rules, t0, 41, verify); err != nil {
		t.Fatal(err)
	}
	out, err := ceremony.Evaluate(p, []ceremony.Approval{a, b}, rules, t0, 41, verify)
	if err != nil || !out.Ready {
		t.Fatalf("Evaluate = %v, %v", out, err)
	}

	// Carol signs with her own key but claims to be bob.
	forged := offs.Approve("carol", p)
	forged.Officer = "bob"
	if err := ceremony.CheckApproval(p, []ceremony.Approval{a}, forged, rules, t0, 41, verify); refusalCode(err) != ceremony.CodeBadSignature {
		t.Fatalf("carol's signature as bob's: %v", err)
	}
	// A signature of another proposal.
	other := sampleProposal(ceremony.OfficerRemove{ID: "carol"})
	moved := offs.Approve("bob", other)
	moved.ProposalID = p.ID
	if err := ceremony.CheckApproval(p, []ceremony.Approval{a}, moved, rules, t0, 41, verify); refusalCode(err) != ceremony.CodeBadSignature {
		t.Fatalf("bob's signature of another proposal: %v", err)
	}
	// Dave is not an officer yet: his valid signature does not count.
	if err := ceremony.CheckApproval(p, nil, offs.Approve("dave", p), rules, t0, 41, verify); refusalCode(err) != ceremony.CodeUnknownOfficer {
		t.Fatalf("dave before being added: %v", err)
	}
}

// BenchmarkEvaluateOfficerKeys is BenchmarkEvaluate with real hybrid
// signatures (ECDSA P-256 + ML-DSA-65): 3 approvals verified per call.
func BenchmarkEvaluateOfficerKeys(b *testing.B) {
	offs := officertest.New(b, "alice", "bob", "carol", "dave", "erin")
	p := benchProposal()
	rules := ceremony.Rules{Cluster: "prod", Officers: []string{"alice", "bob", "carol", "dave", "erin"}, Quorum: 3}
	approvals := []ceremony.Approval{offs.Approve("alice", p), offs.Approve("carol", p), offs.Approve("erin", p)}
	verify := offs.Verify()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := ceremony.Evaluate(p, approvals, rules, t0, 41, verify); err != nil || !out.Ready {
			b.Fatal(out, err)
		}
	}
}
