package audit_test

// KEK policies: every verified activation's client must be one the unwrap
// access of the KEK's policy in force at that entry grants.

import (
	"slices"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
)

// payrollPolicy lets agents in DE unwrap, or only the identities ids (in
// DE) when some are given.
func payrollPolicy(ids ...string) ceremony.Policy {
	unwrap := ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}
	if len(ids) > 0 {
		unwrap = ceremony.Access{Identities: ids, Regions: []string{"DE"}}
	}
	return ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute, Wrap: unwrap, Unwrap: unwrap, Context: []string{"dataset"}}
}

// policyLog is three nodes, three officers (quorum 2) and kek payroll
// created with payrollPolicy().
func policyLog(t *testing.T) *synth {
	s := newSynth(t)
	s.registerNode("n2")
	s.registerNode("n3")
	s.init(2, "alice", "bob", "carol")
	s.execute("alice", ceremony.KEKCreate{KEKID: "payroll", Policy: payrollPolicy()}, []string{"alice", "bob"}, ceremonyOpts{})
	s.keyOps(2)
	return s
}

func TestActivationPermitted(t *testing.T) {
	s := policyLog(t)
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	s.release("n3", "n1", idx(a), req, "payroll")
	r, err := verifyAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Policies; got.Checked != 1 || got.Unknown != 0 {
		t.Errorf("policies %+v, want 1 activation checked", got)
	}
	if r.State == nil || len(r.State.KEKs) != 1 || r.State.KEKs[0].ID != "payroll" || r.State.KEKs[0].By != "kek.create" {
		t.Errorf("state keks %+v, want payroll's policy from kek.create", r.State.KEKs)
	}
}

func TestActivationNotPermitted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client *synthClient
		parts  []string
	}{
		{"region", synthClientOf(t, identity.RoleAgent, "backup-fr", "FR"),
			[]string{"custos://test/agent/backup-fr?region=FR", "allows unwrap from DE only, not from FR", "kek.create ceremony executed at entry"}},
		{"officer", synthClientOf(t, identity.RoleOfficer, "alice", "DE"),
			[]string{"grants unwrap to role(s) agent, not to officer/alice", "rotate kek payroll"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := policyLog(t)
			a, _ := s.activate(activation{client: tc.client})
			_, err := verifyAll(t, s)
			wantCode(t, err, audit.CodeActivationNotPermitted, a, tc.parts...)
		})
	}
}

func TestActivationAfterPolicyChange(t *testing.T) {
	s := policyLog(t)
	before, _ := s.activate(activation{}) // permitted then
	c := s.execute("bob", ceremony.KEKPolicy{KEKID: "payroll", Policy: payrollPolicy("agent/restore")}, []string{"bob", "carol"}, ceremonyOpts{})
	s.activate(activation{client: synthAgent(t, "restore")}) // granted by name
	r, err := verifyAll(t, s)
	if err != nil {
		t.Fatalf("activation %d, before the change, and one by agent/restore after it: %v", before, err)
	}
	if r.Policies.Checked != 2 {
		t.Errorf("policies %+v, want 2 checked", r.Policies)
	}
	a, _ := s.activate(activation{})
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationNotPermitted, a, "custos://test/agent/backup?region=DE",
		"kek.policy ceremony executed at entry "+idx(c.Closed), "grants unwrap to identities agent/restore, not to agent/backup")
}

// advanced verifies s from entry 0 and returns the trust file advanced to
// its end, through its JSON.
func advanced(t *testing.T, s *synth, strip bool) *audit.Trust {
	t.Helper()
	n := s.size()
	r := mustVerify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	if strip {
		r.State.KEKs = nil // a state written before the verifier followed policies
	}
	next, err := s.trust(n).Advance(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if next, err = audit.ParseTrust(raw); err != nil {
		t.Fatal(err)
	}
	return next
}

func TestActivationPolicyAcrossPacks(t *testing.T) {
	// The trust file's state carries the policy to a pack that starts
	// after the kek.create.
	s := policyLog(t)
	n := s.size()
	next := advanced(t, s, false)
	a, _ := s.activate(activation{client: synthClientOf(t, identity.RoleAgent, "backup-fr", "FR")})
	_, err := verify(t, s.pack(n, s.size(), packOpts{}), next, audit.Options{})
	wantCode(t, err, audit.CodeActivationNotPermitted, a, "not from FR")

	// Without it the KEK's policy is unknown: counted, not checked.
	s = policyLog(t)
	n = s.size()
	next = advanced(t, s, true)
	s.activate(activation{client: synthClientOf(t, identity.RoleAgent, "backup-fr", "FR")})
	r := mustVerify(t, s.pack(n, s.size(), packOpts{}), next, audit.Options{})
	if got := r.Policies; got.Checked != 0 || got.Unknown != 1 || !slices.Equal(got.UnknownKEKs, []string{"payroll"}) {
		t.Errorf("policies %+v, want 1 activation of payroll unknown", got)
	}
	// ... until a kek.policy in the pack sets it.
	s.execute("alice", ceremony.KEKPolicy{KEKID: "payroll", Policy: payrollPolicy()}, []string{"alice", "bob"}, ceremonyOpts{})
	a, _ = s.activate(activation{client: synthClientOf(t, identity.RoleAgent, "backup-fr", "FR")})
	_, err = verify(t, s.pack(n, s.size(), packOpts{}), next, audit.Options{})
	wantCode(t, err, audit.CodeActivationNotPermitted, a, "kek.policy ceremony", "not from FR")

	// A partial verification follows no policy.
	s = policyLog(t)
	n = s.size()
	s.activate(activation{client: synthClientOf(t, identity.RoleAgent, "backup-fr", "FR")})
	r = mustVerify(t, s.pack(n, s.size(), packOpts{}), s.trust(n), audit.Options{AllowPartial: true})
	if got := r.Policies; got.Checked != 0 || got.Unknown != 1 {
		t.Errorf("partial: policies %+v, want 1 unknown", got)
	}
}

func TestReleaseAfterPolicyChange(t *testing.T) {
	// Permitted when activated; a kek.policy then takes the agent's access
	// away before a peer releases: that peer should have refused.
	s := policyLog(t)
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	s.execute("bob", ceremony.KEKPolicy{KEKID: "payroll", Policy: payrollPolicy("agent/restore")}, []string{"bob", "carol"}, ceremonyOpts{})
	i := s.release("n3", "n1", idx(a), req, "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationNotPermitted, i, "node n3 released its share of kek payroll v1 to node n1 for activation "+idx(a),
		"policy in force at the release", "not to agent/backup")
}
