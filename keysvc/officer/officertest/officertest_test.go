package officertest_test

import (
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
)

func TestSet(t *testing.T) {
	offs := officertest.New(t, "alice")
	if offs.Signer("alice") != offs.Signer("alice") {
		t.Fatal("a second Signer call made a new key")
	}
	add := offs.Add("bob")
	if add.Validate() != nil || ceremony.BundleFingerprint(add.Bundle) != offs.Signer("bob").Public().Fingerprint() || add.Bundle != offs.Bundle("bob") {
		t.Fatalf("officer.add of bob: %+v", add)
	}
	p := officertest.Proposal(t, "test", "alice", add, time.Now(), 1)
	verify := offs.Verify()
	a := offs.Approve("alice", p)
	if err := verify(a.Officer, p.Digest(), a.Signature); err != nil {
		t.Fatalf("alice's approval: %v", err)
	}
	if err := verify("bob", p.Digest(), a.Signature); err == nil {
		t.Fatal("alice's signature verified as bob's")
	}
	if err := verify("carol", p.Digest(), a.Signature); err == nil {
		t.Fatal("an officer without a key verified")
	}
	if officertest.Shared(t).Signer("alice") != officertest.Shared(t).Signer("alice") || officertest.Shared(t).Signer("alice") == offs.Signer("alice") {
		t.Fatal("Shared is not one set apart from New's")
	}
}
