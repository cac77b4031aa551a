// Decisions: every refusal code, and when a proposal is ready.

package ceremony_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

func TestEvaluate(t *testing.T) {
	p := rotate()
	other := p
	other.ID = "ffeeddccbbaa99887766554433221100"
	// Same id and version, different operation: a bait-and-switch attempt
	// with approvals gathered for p.
	switched := p
	switched.Params = ceremony.KEKDestroy{KEKID: "payroll", Version: 1}
	foreign := p
	foreign.Cluster = "staging"
	invalid := p
	invalid.Params = ceremony.KEKRotate{KEKID: "Payroll"}

	withSig := func(a ceremony.Approval, sig []byte) ceremony.Approval { a.Signature = sig; return a }
	forOther := approve(other, "bob")
	forOther.ProposalID = p.ID

	tests := []struct {
		name      string
		p         ceremony.Proposal
		approvals []ceremony.Approval
		rules     func(*ceremony.Rules)
		now       time.Time
		version   uint64
		code      ceremony.Code // "" for no refusal
		ready     bool
		approvers []string
	}{
		{name: "no approvals: pending", p: p, now: t0, version: 41, approvers: []string{}},
		{name: "M-1 approvals: pending", p: p, approvals: []ceremony.Approval{approve(p, "bob")}, now: t0, version: 41,
			approvers: []string{"bob"}},
		{name: "exactly M distinct: ready", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			now: t0.Add(time.Hour), version: 41, ready: true, approvers: []string{"bob", "carol"}},
		{name: "more than M: ready", p: p, approvals: []ceremony.Approval{approve(p, "carol"), approve(p, "alice"), approve(p, "bob")},
			now: t0, version: 41, ready: true, approvers: []string{"carol", "alice", "bob"}},
		{name: "proposer counts only with a signed approval", p: p, approvals: []ceremony.Approval{approve(p, "alice"), approve(p, "bob")},
			now: t0, version: 41, ready: true, approvers: []string{"alice", "bob"}},
		{name: "proposing is not approving", p: p, approvals: []ceremony.Approval{approve(p, "bob")},
			rules: func(r *ceremony.Rules) { r.Quorum = 2; r.Officers = []string{"alice", "bob"} },
			now:   t0, version: 41, approvers: []string{"bob"}},
		{name: "quorum 3 of 3", p: p, approvals: []ceremony.Approval{approve(p, "alice"), approve(p, "bob"), approve(p, "carol")},
			rules: func(r *ceremony.Rules) { r.Quorum = 3 }, now: t0, version: 41, ready: true,
			approvers: []string{"alice", "bob", "carol"}},
		{name: "one nanosecond before expiry: ready", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			now: p.Expires.Add(-1), version: 41, ready: true, approvers: []string{"bob", "carol"}},

		{name: "at expiry: expired", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			now: p.Expires, version: 41, code: ceremony.CodeExpired},
		{name: "after expiry: expired", p: p, approvals: []ceremony.Approval{approve(p, "bob")},
			now: p.Expires.Add(time.Hour), version: 41, code: ceremony.CodeExpired},
		{name: "state version moved: superseded", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			now: t0, version: 42, code: ceremony.CodeSuperseded},
		{name: "state version behind: superseded", p: p, now: t0, version: 40, code: ceremony.CodeSuperseded},
		{name: "duplicate approver", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "bob")},
			now: t0, version: 41, code: ceremony.CodeDuplicateApprover},
		{name: "approver not an officer", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "mallory")},
			now: t0, version: 41, code: ceremony.CodeUnknownOfficer},
		{name: "removed officer", p: p, approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			rules: func(r *ceremony.Rules) { r.Officers = []string{"alice", "bob"} },
			now:   t0, version: 41, code: ceremony.CodeUnknownOfficer},
		{name: "bad signature: another officer's", p: p,
			approvals: []ceremony.Approval{approve(p, "bob"), withSig(approve(p, "carol"), fakeSign("bob", p.Digest()))},
			now:       t0, version: 41, code: ceremony.CodeBadSignature},
		{name: "bad signature: over another proposal", p: p, approvals: []ceremony.Approval{forOther},
			now: t0, version: 41, code: ceremony.CodeBadSignature},
		{name: "bad signature: same id, other operation", p: switched,
			approvals: []ceremony.Approval{approve(p, "bob"), approve(p, "carol")},
			now:       t0, version: 41, code: ceremony.CodeBadSignature},
		{name: "bad signature: empty", p: p, approvals: []ceremony.Approval{withSig(approve(p, "bob"), nil)},
			now: t0, version: 41, code: ceremony.CodeBadSignature},
		{name: "bad signature: oversized", p: p,
			approvals: []ceremony.Approval{withSig(approve(p, "bob"), make([]byte, ceremony.MaxSignatureSize+1))},
			now:       t0, version: 41, code: ceremony.CodeBadSignature},
		{name: "wrong cluster", p: foreign, approvals: []ceremony.Approval{approve(foreign, "bob"), approve(foreign, "carol")},
			now: t0, version: 41, code: ceremony.CodeWrongCluster},
		{name: "approval of another proposal", p: p, approvals: []ceremony.Approval{approve(other, "bob")},
			now: t0, version: 41, code: ceremony.CodeWrongProposal},
		{name: "invalid params", p: invalid, approvals: []ceremony.Approval{approve(invalid, "bob"), approve(invalid, "carol")},
			now: t0, version: 41, code: ceremony.CodeInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := testRules()
			if tt.rules != nil {
				tt.rules(&rules)
			}
			out, err := ceremony.Evaluate(tt.p, tt.approvals, rules, tt.now, tt.version, fakeVerify)
			if tt.code != "" {
				if got := refusalCode(err); got != tt.code {
					t.Fatalf("Evaluate = %v, %v; want refusal %s", out, err, tt.code)
				}
				if out.Ready || out.Approvers != nil {
					t.Fatalf("refused, yet outcome %+v", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if out.Ready != tt.ready || !slices.Equal(out.Approvers, tt.approvers) || out.Quorum != rules.Quorum {
				t.Fatalf("Evaluate = %+v, want ready %v with %q", out, tt.ready, tt.approvers)
			}
		})
	}
}

// TestCheckApproval logs each approval as accepted or refused, one at a
// time, and the decision after each.
func TestCheckApproval(t *testing.T) {
	p := rotate()
	rules := testRules()
	var accepted []ceremony.Approval
	steps := []struct {
		a     ceremony.Approval
		now   time.Time
		code  ceremony.Code
		ready bool
	}{
		{a: approve(p, "mallory"), now: t0, code: ceremony.CodeUnknownOfficer},
		{a: ceremony.Approval{ProposalID: p.ID, Officer: "bob", Signature: []byte("forged")}, now: t0, code: ceremony.CodeBadSignature},
		{a: approve(p, "bob"), now: t0.Add(time.Minute)},
		{a: approve(p, "bob"), now: t0.Add(2 * time.Minute), code: ceremony.CodeDuplicateApprover},
		{a: ceremony.Approval{ProposalID: "00000000000000000000000000000000", Officer: "carol", Signature: fakeSign("carol", p.Digest())},
			now: t0.Add(3 * time.Minute), code: ceremony.CodeWrongProposal},
		{a: approve(p, "carol"), now: p.Expires, code: ceremony.CodeExpired},
		{a: approve(p, "carol"), now: p.Expires.Add(-time.Second), ready: true},
	}
	for i, s := range steps {
		err := ceremony.CheckApproval(p, accepted, s.a, rules, s.now, 41, fakeVerify)
		if s.code != "" {
			if got := refusalCode(err); got != s.code {
				t.Fatalf("step %d: CheckApproval = %v, want %s", i, err, s.code)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: CheckApproval: %v", i, err)
		}
		accepted = append(accepted, s.a)
		out, err := ceremony.Evaluate(p, accepted, rules, s.now, 41, fakeVerify)
		if err != nil || out.Ready != s.ready {
			t.Fatalf("step %d: Evaluate = %v, %v; want ready %v", i, out, err, s.ready)
		}
	}
	// Once the state version moves, no approval is accepted.
	if err := ceremony.CheckApproval(p, nil, approve(p, "carol"), rules, t0, 42, fakeVerify); refusalCode(err) != ceremony.CodeSuperseded {
		t.Fatalf("after a state change: %v", err)
	}
	foreign := p
	foreign.Cluster = "staging"
	if err := ceremony.CheckApproval(foreign, nil, approve(foreign, "carol"), rules, t0, 41, fakeVerify); refusalCode(err) != ceremony.CodeWrongCluster {
		t.Fatalf("other cluster: %v", err)
	}
}

func TestCheckApprovalVerifiesLast(t *testing.T) {
	p := rotate()
	calls := 0
	verify := func(o string, d [32]byte, sig []byte) error { calls++; return fakeVerify(o, d, sig) }
	for _, a := range []ceremony.Approval{approve(p, "mallory"), approve(p, "bob")} {
		_ = ceremony.CheckApproval(p, []ceremony.Approval{approve(p, "bob")}, a, testRules(), t0, 41, verify)
	}
	_ = ceremony.CheckApproval(p, nil, approve(p, "bob"), testRules(), t0, 42, verify)
	if calls != 0 {
		t.Fatalf("verify called %d times for approvals refused on cheap checks", calls)
	}
	var gotOfficer string
	var gotDigest [32]byte
	err := ceremony.CheckApproval(p, nil, approve(p, "carol"), testRules(), t0, 41,
		func(o string, d [32]byte, sig []byte) error {
			gotOfficer, gotDigest = o, d
			return errors.New("pq part fails")
		})
	if refusalCode(err) != ceremony.CodeBadSignature || !strings.Contains(err.Error(), "pq part fails") {
		t.Fatalf("CheckApproval = %v", err)
	}
	if gotOfficer != "carol" || gotDigest != p.Digest() {
		t.Fatalf("verify got officer %q digest %x", gotOfficer, gotDigest)
	}
}

func TestCheckProposal(t *testing.T) {
	p := rotate()
	mod := func(f func(*ceremony.Proposal)) ceremony.Proposal { q := p; f(&q); return q }
	tests := []struct {
		name string
		p    ceremony.Proposal
		now  time.Time
		code ceremony.Code
	}{
		{"ok", p, t0, ""},
		{"ok: created within clock skew", p, t0.Add(-ceremony.MaxClockSkew), ""},
		{"ok: made an hour ago", p, t0.Add(time.Hour), ""},
		{"created too far ahead", p, t0.Add(-ceremony.MaxClockSkew - 1), ceremony.CodeInvalidProposal},
		{"proposer not an officer", mod(func(q *ceremony.Proposal) { q.Proposer = "mallory" }), t0, ceremony.CodeUnknownOfficer},
		{"expired", p, p.Expires, ceremony.CodeExpired},
		{"superseded", mod(func(q *ceremony.Proposal) { q.StateVersion = 40 }), t0, ceremony.CodeSuperseded},
		{"wrong cluster", mod(func(q *ceremony.Proposal) { q.Cluster = "other" }), t0, ceremony.CodeWrongCluster},
		{"invalid params", mod(func(q *ceremony.Proposal) { q.Params = ceremony.QuorumSet{M: 1} }), t0, ceremony.CodeInvalidParams},
		{"invalid proposal", mod(func(q *ceremony.Proposal) { q.ID = "xyz" }), t0, ceremony.CodeInvalidProposal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ceremony.CheckProposal(tt.p, testRules(), tt.now, 41)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := refusalCode(err); got != tt.code {
				t.Fatalf("CheckProposal = %v, want %s", err, tt.code)
			}
		})
	}
}

// TestCallerErrors: broken preconditions are plain errors, never a
// refusal, and never a ready outcome.
func TestCallerErrors(t *testing.T) {
	p := rotate()
	two := []ceremony.Approval{approve(p, "bob"), approve(p, "carol")}
	rules := func(f func(*ceremony.Rules)) ceremony.Rules { r := testRules(); f(&r); return r }
	tests := []struct {
		name   string
		rules  ceremony.Rules
		now    time.Time
		verify ceremony.VerifyFunc
	}{
		{"quorum 0", rules(func(r *ceremony.Rules) { r.Quorum = 0 }), t0, fakeVerify},
		{"quorum above officers", rules(func(r *ceremony.Rules) { r.Quorum = 4 }), t0, fakeVerify},
		{"no officers", rules(func(r *ceremony.Rules) { r.Officers = nil; r.Quorum = 1 }), t0, fakeVerify},
		{"officer listed twice", rules(func(r *ceremony.Rules) { r.Officers = []string{"bob", "carol", "bob"} }), t0, fakeVerify},
		{"bad officer id", rules(func(r *ceremony.Rules) { r.Officers = []string{"bob", "Carol"} }), t0, fakeVerify},
		{"no cluster", rules(func(r *ceremony.Rules) { r.Cluster = "" }), t0, fakeVerify},
		{"zero time", testRules(), time.Time{}, fakeVerify},
		{"nil verify", testRules(), t0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var re *ceremony.RefusalError
			out, err := ceremony.Evaluate(p, two, tt.rules, tt.now, 41, tt.verify)
			if err == nil || errors.As(err, &re) || out.Ready {
				t.Fatalf("Evaluate = %+v, %v; want a plain error", out, err)
			}
			err = ceremony.CheckApproval(p, nil, two[0], tt.rules, tt.now, 41, tt.verify)
			if err == nil || errors.As(err, &re) {
				t.Fatalf("CheckApproval = %v; want a plain error", err)
			}
			if tt.verify != nil {
				err = ceremony.CheckProposal(p, tt.rules, tt.now, 41)
				if err == nil || errors.As(err, &re) {
					t.Fatalf("CheckProposal = %v; want a plain error", err)
				}
			}
		})
	}
}

func TestEvaluateDeterministic(t *testing.T) {
	p := rotate()
	approvals := []ceremony.Approval{approve(p, "bob"), approve(p, "mallory")}
	_, err1 := ceremony.Evaluate(p, approvals, testRules(), t0, 41, fakeVerify)
	_, err2 := ceremony.Evaluate(p, approvals, testRules(), t0, 41, fakeVerify)
	if err1 == nil || err1.Error() != err2.Error() {
		t.Fatalf("errors differ or nil: %v / %v", err1, err2)
	}
	want := `ceremony: refused (unknown_officer): proposal ` + testID + `: approver "mallory" is not an active officer`
	if err1.Error() != want {
		t.Fatalf("error %q, want %q", err1, want)
	}
}

func TestCodes(t *testing.T) {
	codes := ceremony.Codes()
	final := map[ceremony.Code]bool{
		ceremony.CodeInvalidProposal: true, ceremony.CodeInvalidParams: true, ceremony.CodeWrongCluster: true,
		ceremony.CodeExpired: true, ceremony.CodeSuperseded: true, ceremony.CodeClosed: true,
		ceremony.CodeWrongProposal: false, ceremony.CodeUnknownOfficer: false,
		ceremony.CodeDuplicateApprover: false, ceremony.CodeBadSignature: false,
	}
	if len(codes) != len(final) {
		t.Fatalf("Codes() has %d codes, want %d", len(codes), len(final))
	}
	for _, c := range codes {
		f, ok := final[c]
		if !ok {
			t.Fatalf("unexpected code %q", c)
		}
		if c.Final() != f {
			t.Errorf("%s.Final() = %v, want %v", c, c.Final(), f)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for _, tt := range []struct {
		o    ceremony.Outcome
		want string
	}{
		{ceremony.Outcome{Quorum: 2}, "pending: 0 of 2 approvals"},
		{ceremony.Outcome{Approvers: []string{"bob"}, Quorum: 2}, "pending: 1 of 2 approvals (bob)"},
		{ceremony.Outcome{Ready: true, Approvers: []string{"bob", "alice"}, Quorum: 2}, "ready: 2 of 2 approvals (bob, alice)"},
	} {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
