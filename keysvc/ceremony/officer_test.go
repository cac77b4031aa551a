// With real officer keys (package keysvc/officer): the bundle fingerprint
// rule matches theirs, and decisions work with hybrid signatures. Imported
// by tests only; this package itself needs no crypto but SHA-256.

package ceremony_test

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/officer"
)

func generateOfficers(t testing.TB, names ...string) map[string]*officer.Signer {
	t.Helper()
	signers := map[string]*officer.Signer{}
	for _, n := range names {
		s, err := officer.Generate(officer.Config{Name: n})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		signers[n] = s
	}
	return signers
}

// officerVerify is the VerifyFunc the state machine would pass: the
// officer's recorded public key, and both parts of the signature.
func officerVerify(keys map[string]*officer.PublicKey) ceremony.VerifyFunc {
	return func(name string, d [32]byte, sig []byte) error {
		s, err := officer.ParseSignature(sig)
		if err != nil {
			return err
		}
		return keys[name].Verify(d, s)
	}
}

func officerApprove(t testing.TB, p ceremony.Proposal, s *officer.Signer) ceremony.Approval {
	t.Helper()
	sig, err := s.Sign(p.Digest())
	if err != nil {
		t.Fatal(err)
	}
	return ceremony.Approval{ProposalID: p.ID, Officer: s.Public().Name(), Signature: sig.Marshal()}
}

func TestWithOfficerKeys(t *testing.T) {
	signers := generateOfficers(t, "alice", "bob", "carol", "dave")
	keys := map[string]*officer.PublicKey{}
	for n, s := range signers {
		keys[n] = s.Public()
	}
	verify := officerVerify(keys)

	dave := signers["dave"].Public()
	add := ceremony.OfficerAdd{ID: "dave", Bundle: string(dave.Marshal()), Fingerprint: dave.Fingerprint()}
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
	a, b := officerApprove(t, p, signers["alice"]), officerApprove(t, p, signers["bob"])
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
	forged := officerApprove(t, p, signers["carol"])
	forged.Officer = "bob"
	if err := ceremony.CheckApproval(p, []ceremony.Approval{a}, forged, rules, t0, 41, verify); refusalCode(err) != ceremony.CodeBadSignature {
		t.Fatalf("carol's signature as bob's: %v", err)
	}
	// A signature of another proposal.
	other := sampleProposal(ceremony.OfficerRemove{ID: "carol"})
	moved := officerApprove(t, other, signers["bob"])
	moved.ProposalID = p.ID
	if err := ceremony.CheckApproval(p, []ceremony.Approval{a}, moved, rules, t0, 41, verify); refusalCode(err) != ceremony.CodeBadSignature {
		t.Fatalf("bob's signature of another proposal: %v", err)
	}
	// Dave is not an officer yet: his valid signature does not count.
	if err := ceremony.CheckApproval(p, nil, officerApprove(t, p, signers["dave"]), rules, t0, 41, verify); refusalCode(err) != ceremony.CodeUnknownOfficer {
		t.Fatalf("dave before being added: %v", err)
	}
}

// BenchmarkEvaluateOfficerKeys is BenchmarkEvaluate with real hybrid
// signatures (ECDSA P-256 + ML-DSA-65): 3 approvals verified per call.
func BenchmarkEvaluateOfficerKeys(b *testing.B) {
	signers := generateOfficers(b, "alice", "bob", "carol", "dave", "erin")
	keys := map[string]*officer.PublicKey{}
	for n, s := range signers {
		keys[n] = s.Public()
	}
	p := benchProposal()
	rules := ceremony.Rules{Cluster: "prod", Officers: []string{"alice", "bob", "carol", "dave", "erin"}, Quorum: 3}
	approvals := []ceremony.Approval{officerApprove(b, p, signers["alice"]), officerApprove(b, p, signers["carol"]), officerApprove(b, p, signers["erin"])}
	verify := officerVerify(keys)
	b.ReportAllocs()
	for b.Loop() {
		if out, err := ceremony.Evaluate(p, approvals, rules, t0, 41, verify); err != nil || !out.Ready {
			b.Fatal(out, err)
		}
	}
}
