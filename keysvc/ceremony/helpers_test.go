// Shared fixtures: sample parameters for every operation, proposals, and a
// fake signature scheme (the real one is the officer package's).

package ceremony_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

var (
	t0      = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	testID  = "00112233445566778899aabbccddeeff"
	nodeKey = "custos/prod/node-4+1a2b3c4d+AmFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDEyMzQ1Njc4OQ==\n" +
		"custos/prod/node-4+5e6f7a8b+/wAQZm9vYmFy\n"
	// officerBundle stands for an officer's canonical public key bundle
	// (shortened; this package does not parse it).
	officerBundle = `{"format":"custos-officer-public-key/v1","officer":"dave","classical":"ecdsa-p256","classical_key":"BAAA","mldsa65_key":"AAAA","xwing_key":"AAAA"}`
)

func samplePolicy() ceremony.Policy {
	return ceremony.Policy{
		Threshold:     2,
		ActivationTTL: 5 * time.Minute,
		Wrap:          ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE", "FR"}},
		Unwrap:        ceremony.Access{Identities: []string{"agent/agent-payroll"}, Regions: []string{"FR"}},
		Context:       []string{"classification", "dataset"},
		Escrow:        ceremony.Escrow{Enabled: true, M: 2},
	}
}

// sampleParams has valid parameters for every operation, keyed by a vector
// name; some operations appear more than once.
func sampleParams() []struct {
	name   string
	params ceremony.Params
} {
	bare := ceremony.Policy{Threshold: 3}
	return []struct {
		name   string
		params ceremony.Params
	}{
		{"node.add", ceremony.NodeAdd{ID: "node-4", Region: "DE", RaftAddr: "10.0.0.4:7000",
			APIAddr: "https://node-4.custos.example:8443", Keys: nodeKey, KEM: "a2VtCg=="}},
		{"node.remove", ceremony.NodeRemove{ID: "node-2"}},
		{"officer.add", ceremony.OfficerAdd{ID: "dave", Bundle: officerBundle,
			Fingerprint: "sha256:906bd264e0d05e0e91d620b164ce190f58e46b207627527f62b3235736050563"}},
		{"officer.remove", ceremony.OfficerRemove{ID: "carol"}},
		{"quorum.set", ceremony.QuorumSet{M: 3}},
		{"regions.set", ceremony.RegionsSet{Regions: []string{"DE", "FR", "NL"}}},
		{"kek.create", ceremony.KEKCreate{KEKID: "payroll", Policy: samplePolicy()}},
		{"kek.create/bare", ceremony.KEKCreate{KEKID: "cold.archive_1", Policy: bare}},
		{"kek.rotate", ceremony.KEKRotate{KEKID: "payroll"}},
		{"kek.disable", ceremony.KEKDisable{KEKID: "payroll", Version: 3}},
		{"kek.disable/all", ceremony.KEKDisable{KEKID: "payroll", All: true}},
		{"kek.enable", ceremony.KEKEnable{KEKID: "payroll", Version: 3}},
		{"kek.enable/all", ceremony.KEKEnable{KEKID: "payroll", All: true}},
		{"kek.destroy", ceremony.KEKDestroy{KEKID: "payroll", Version: 1}},
		{"kek.policy", ceremony.KEKPolicy{KEKID: "payroll", Policy: ceremony.Policy{
			Threshold: 3, Wrap: ceremony.Access{Roles: []string{"agent", "operator"}, Identities: []string{"auditor/audit-1"}, Regions: []string{"AT"}},
			Unwrap: ceremony.Access{Identities: []string{"agent/agent-hr", "agent/agent-payroll", "auditor/audit-1"}, Regions: []string{"DE", "FR"}},
		}}},
		{"legal_hold.set", ceremony.LegalHoldSet{KEKID: "payroll", Reason: `case 2026-17 "Müller v. ACME" <litigation> & more`}},
		{"legal_hold.release", ceremony.LegalHoldRelease{KEKID: "payroll", Reason: "case closed"}},
		{"escrow.recover", ceremony.EscrowRecover{KEKID: "payroll", Version: 2, Reason: "all node HSMs lost in the fire at site A"}},
		{"identity.revoke/fingerprint", ceremony.IdentityRevoke{Fingerprint: "sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", Reason: "laptop stolen"}},
		{"identity.revoke/identity", ceremony.IdentityRevoke{Identity: "agent/agent-payroll", Reason: `agent host "db-3" decommissioned`}},
	}
}

func sampleProposal(ps ceremony.Params) ceremony.Proposal {
	return ceremony.Proposal{
		Cluster: "prod", ID: testID, Params: ps, Proposer: "alice",
		Created: t0, Expires: t0.Add(24 * time.Hour), StateVersion: 41,
	}
}

func rotate() ceremony.Proposal { return sampleProposal(ceremony.KEKRotate{KEKID: "payroll"}) }

func testRules() ceremony.Rules {
	return ceremony.Rules{Cluster: "prod", Officers: []string{"alice", "bob", "carol"}, Quorum: 2}
}

// fakeSign is the test signature scheme: SHA-256 over a label, the officer
// and the digest.
func fakeSign(officer string, d [32]byte) []byte {
	h := sha256.New()
	h.Write([]byte("fake-sig\x00" + officer + "\x00"))
	h.Write(d[:])
	return h.Sum(nil)
}

var errBadSig = errors.New("signature mismatch")

func fakeVerify(officer string, d [32]byte, sig []byte) error {
	if !bytes.Equal(sig, fakeSign(officer, d)) {
		return errBadSig
	}
	return nil
}

func approve(p ceremony.Proposal, officer string) ceremony.Approval {
	return ceremony.Approval{ProposalID: p.ID, Officer: officer, Signature: fakeSign(officer, p.Digest())}
}

func mustMarshal(t testing.TB, p ceremony.Proposal) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusalCode returns the code of err's *RefusalError, or a description of
// err if it is not one.
func refusalCode(err error) ceremony.Code {
	var re *ceremony.RefusalError
	if errors.As(err, &re) {
		return re.Code
	}
	return ceremony.Code(fmt.Sprintf("<%T %v>", err, err))
}
