// Fuzzers: the parser never panics, fails only with *ParseError, and
// accepts only bytes it would write; whatever Marshal writes, the parser
// reads back.

package ceremony_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

func FuzzParseProposal(f *testing.F) {
	v := readVectors(f)
	for _, pv := range v.Proposals {
		f.Add([]byte(pv.Proposal))
	}
	for _, iv := range v.Invalid {
		f.Add([]byte(iv.Proposal))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"operation":"kek.rotate","params":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ceremony.ParseProposal(data)
		if err != nil {
			var pe *ceremony.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid proposal: %v", err)
		}
		out, err := p.Marshal()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted %q but Marshal gives %q, %v", data, out, err)
		}
		if p.Digest() != p.Digest() {
			t.Fatal("digest not deterministic")
		}
		_ = ceremony.Describe(p, 2)
		// Decisions on any accepted proposal are refusals or pending, never a panic.
		rules := ceremony.Rules{Cluster: p.Cluster, Officers: []string{p.Proposer}, Quorum: 1}
		if _, err := ceremony.Evaluate(p, nil, rules, p.Created, p.StateVersion, fakeVerify); err != nil {
			t.Fatalf("Evaluate with no approvals at creation: %v", err)
		}
	})
}

// FuzzMarshalProposal builds proposals from fuzzed fields: Marshal either
// refuses with a *RefusalError or writes bytes ParseProposal reads back to
// the same proposal and digest.
func FuzzMarshalProposal(f *testing.F) {
	f.Add("prod", "00112233445566778899aabbccddeeff", "alice", int64(1772359200000000000), int64(86400e9), uint64(41),
		uint8(0), "payroll", "case \"17\"", uint32(3), 2, int64(300), "agent", "agent/agent-payroll", "FR", "dataset", true)
	f.Add("a", "ffffffffffffffffffffffffffffffff", "z", int64(-1), int64(1), uint64(0),
		uint8(7), "k", "\u2028", uint32(0), 0, int64(-1), "", "x", "", "", false)
	f.Fuzz(func(t *testing.T, cluster, id, proposer string, created, life int64, version uint64,
		op uint8, kek, text string, kv uint32, n int, ttl int64, role, ident, region, ctx string, flag bool) {
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return []string{s}
		}
		access := ceremony.Access{Roles: list(role), Identities: list(ident), Regions: list(region)}
		policy := ceremony.Policy{Threshold: n, ActivationTTL: time.Duration(ttl) * time.Second,
			Wrap: access, Unwrap: access, Context: list(ctx), Escrow: ceremony.Escrow{Enabled: flag, M: n}}
		var params ceremony.Params
		switch op % 8 {
		case 0:
			params = ceremony.KEKCreate{KEKID: kek, Policy: policy}
		case 1:
			params = ceremony.KEKDisable{KEKID: kek, Version: kv, All: flag}
		case 2:
			params = ceremony.LegalHoldSet{KEKID: kek, Reason: text}
		case 3:
			params = ceremony.NodeAdd{ID: kek, Region: region, RaftAddr: role, APIAddr: ident, Keys: text, KEM: text}
		case 4:
			fp := ceremony.BundleFingerprint(text)
			if flag {
				fp = ident
			}
			params = ceremony.OfficerAdd{ID: kek, Bundle: text, Fingerprint: fp}
		case 5:
			params = ceremony.QuorumSet{M: n}
		case 6:
			params = ceremony.RegionsSet{Regions: list(region)}
		case 7:
			params = ceremony.EscrowRecover{KEKID: kek, Version: kv, Reason: text}
		}
		c := time.Unix(0, created)
		p := ceremony.Proposal{Cluster: cluster, ID: id, Params: params, Proposer: proposer,
			Created: c, Expires: c.Add(time.Duration(life)), StateVersion: version}
		b, err := p.Marshal()
		if err != nil {
			var re *ceremony.RefusalError
			if !errors.As(err, &re) {
				t.Fatalf("Marshal error %v is %T", err, err)
			}
			return
		}
		q, err := ceremony.ParseProposal(b)
		if err != nil {
			t.Fatalf("Marshal wrote %q, ParseProposal: %v", b, err)
		}
		if q.Digest() != p.Digest() || !q.Created.Equal(p.Created) || !q.Expires.Equal(p.Expires) {
			t.Fatalf("round trip changed the proposal: %q", b)
		}
	})
}
