// Parameters and policies: Validate accepts the samples and refuses each
// broken rule with an error that names it.

package ceremony_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

func TestParamsValidate(t *testing.T) {
	for _, s := range sampleParams() {
		if err := s.params.Validate(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	long := strings.Repeat("a", 64)
	node := sampleParams()[0].params.(ceremony.NodeAdd)
	nodeWith := func(f func(*ceremony.NodeAdd)) ceremony.NodeAdd { n := node; f(&n); return n }
	officer := sampleParams()[2].params.(ceremony.OfficerAdd)
	officerWith := func(f func(*ceremony.OfficerAdd)) ceremony.OfficerAdd { o := officer; f(&o); return o }
	tests := []struct {
		name   string
		params ceremony.Params
		msg    string // in the error
	}{
		{"node id empty", nodeWith(func(n *ceremony.NodeAdd) { n.ID = "" }), "node id"},
		{"node id too long", nodeWith(func(n *ceremony.NodeAdd) { n.ID = long }), "1-63"},
		{"node id dots", nodeWith(func(n *ceremony.NodeAdd) { n.ID = "node..4" }), `".."`},
		{"node id ends with dash", nodeWith(func(n *ceremony.NodeAdd) { n.ID = "node-" }), "start and end"},
		{"node region lower case", nodeWith(func(n *ceremony.NodeAdd) { n.Region = "de" }), "EU/EEA"},
		{"node region outside EU/EEA", nodeWith(func(n *ceremony.NodeAdd) { n.Region = "US" }), "EU/EEA"},
		{"node region EL (use GR)", nodeWith(func(n *ceremony.NodeAdd) { n.Region = "EL" }), "EU/EEA"},
		{"raft address with space", nodeWith(func(n *ceremony.NodeAdd) { n.RaftAddr = "10.0.0.4 7000" }), "raft address"},
		{"raft address missing", nodeWith(func(n *ceremony.NodeAdd) { n.RaftAddr = "" }), "raft address"},
		{"api address http", nodeWith(func(n *ceremony.NodeAdd) { n.APIAddr = "http://node-4:8443" }), "https base URL"},
		{"api address with path", nodeWith(func(n *ceremony.NodeAdd) { n.APIAddr = "https://node-4:8443/v1" }), "https base URL"},
		{"api address with user", nodeWith(func(n *ceremony.NodeAdd) { n.APIAddr = "https://u@node-4:8443" }), "https base URL"},
		{"api address with query", nodeWith(func(n *ceremony.NodeAdd) { n.APIAddr = "https://node-4:8443?x" }), "https base URL"},
		{"keys missing", nodeWith(func(n *ceremony.NodeAdd) { n.Keys = "" }), "keys"},
		{"keys with a tab", nodeWith(func(n *ceremony.NodeAdd) { n.Keys = "a\tb" }), "keys"},
		{"keys too long", nodeWith(func(n *ceremony.NodeAdd) { n.Keys = strings.Repeat("k", ceremony.MaxNodeKeysLen+1) }), "keys"},
		{"node.remove id", ceremony.NodeRemove{ID: "Node-2"}, "node id"},
		{"officer id", officerWith(func(o *ceremony.OfficerAdd) { o.ID = "dave smith" }), "officer id"},
		{"officer bundle missing", officerWith(func(o *ceremony.OfficerAdd) { o.Bundle = "" }), "bundle"},
		{"officer bundle not ASCII", officerWith(func(o *ceremony.OfficerAdd) { o.Bundle = "clé" }), "bundle"},
		{"officer bundle with newline", officerWith(func(o *ceremony.OfficerAdd) { o.Bundle += "\n" }), "one line"},
		{"officer bundle too long", officerWith(func(o *ceremony.OfficerAdd) { o.Bundle = strings.Repeat("b", ceremony.MaxBundleLen+1) }), "bundle"},
		{"officer fingerprint missing", officerWith(func(o *ceremony.OfficerAdd) { o.Fingerprint = "" }), "not the bundle's"},
		{"officer fingerprint of another bundle", officerWith(func(o *ceremony.OfficerAdd) { o.Bundle = strings.Replace(o.Bundle, "dave", "eve", 1) }), "not the bundle's"},
		{"officer fingerprint upper-case hex", officerWith(func(o *ceremony.OfficerAdd) { o.Fingerprint = strings.ToUpper(o.Fingerprint) }), "not the bundle's"},
		{"officer.remove id", ceremony.OfficerRemove{ID: ""}, "officer id"},
		{"quorum 0", ceremony.QuorumSet{M: 0}, "quorum m 0"},
		{"quorum 1", ceremony.QuorumSet{M: 1}, "one officer alone"},
		{"quorum 256", ceremony.QuorumSet{M: 256}, "2-255"},
		{"regions empty", ceremony.RegionsSet{}, "at least one"},
		{"regions unsorted", ceremony.RegionsSet{Regions: []string{"FR", "DE"}}, "sorted"},
		{"regions duplicate", ceremony.RegionsSet{Regions: []string{"DE", "DE"}}, "sorted and without duplicates"},
		{"regions bad code", ceremony.RegionsSet{Regions: []string{"CH"}}, `"CH"`},
		{"kek id empty", ceremony.KEKRotate{}, "kek id"},
		{"kek id upper case", ceremony.KEKRotate{KEKID: "Payroll"}, "kek id"},
		{"kek id too long", ceremony.KEKRotate{KEKID: long + "a"}, "1-64"},
		{"kek.create policy", ceremony.KEKCreate{KEKID: "k"}, "policy: threshold 0"},
		{"kek.policy policy", ceremony.KEKPolicy{KEKID: "k", Policy: ceremony.Policy{Threshold: 1}}, "policy: threshold 1"},
		{"kek.policy kek id", ceremony.KEKPolicy{KEKID: "", Policy: samplePolicy()}, "kek id"},
		{"disable: neither version nor all", ceremony.KEKDisable{KEKID: "k"}, "version (at least 1) or all"},
		{"disable: both version and all", ceremony.KEKDisable{KEKID: "k", Version: 2, All: true}, "one or the other"},
		{"enable: neither version nor all", ceremony.KEKEnable{KEKID: "k"}, "version (at least 1) or all"},
		{"enable: both version and all", ceremony.KEKEnable{KEKID: "k", Version: 2, All: true}, "one or the other"},
		{"destroy version 0", ceremony.KEKDestroy{KEKID: "k"}, "at least 1"},
		{"destroy kek id", ceremony.KEKDestroy{KEKID: "k/1", Version: 1}, "kek id"},
		{"hold: no reason", ceremony.LegalHoldSet{KEKID: "k"}, "reason is required"},
		{"hold: reason with newline", ceremony.LegalHoldSet{KEKID: "k", Reason: "a\nb"}, "U+000A"},
		{"hold: reason with bidi override", ceremony.LegalHoldSet{KEKID: "k", Reason: "case \u202edlohesaeler"}, "U+202E"},
		{"hold: reason with zero-width space", ceremony.LegalHoldSet{KEKID: "k", Reason: "a\u200bb"}, "U+200B"},
		{"hold: reason with ANSI escape", ceremony.LegalHoldSet{KEKID: "k", Reason: "\x1b[2Jok"}, "U+001B"},
		{"hold: reason not UTF-8", ceremony.LegalHoldSet{KEKID: "k", Reason: "\xff"}, "UTF-8"},
		{"hold: reason too long", ceremony.LegalHoldSet{KEKID: "k", Reason: strings.Repeat("r", ceremony.MaxTextLen+1)}, "limit"},
		{"release: no reason", ceremony.LegalHoldRelease{KEKID: "k"}, "reason is required"},
		{"release: kek id", ceremony.LegalHoldRelease{Reason: "done"}, "kek id"},
		{"recover: version 0", ceremony.EscrowRecover{KEKID: "k", Reason: "lost"}, "at least 1"},
		{"recover: no reason", ceremony.EscrowRecover{KEKID: "k", Version: 1}, "reason is required"},
		{"revoke: neither", ceremony.IdentityRevoke{Reason: "r"}, "set one"},
		{"revoke: both", ceremony.IdentityRevoke{Fingerprint: "sha256:" + strings.Repeat("a", 64), Identity: "agent/a", Reason: "r"}, "one or the other"},
		{"revoke: fingerprint upper case", ceremony.IdentityRevoke{Fingerprint: "sha256:" + strings.Repeat("A", 64), Reason: "r"}, "lowercase hex"},
		{"revoke: fingerprint short", ceremony.IdentityRevoke{Fingerprint: "sha256:abcd", Reason: "r"}, "64 hex"},
		{"revoke: fingerprint other hash", ceremony.IdentityRevoke{Fingerprint: "sha1:" + strings.Repeat("a", 64), Reason: "r"}, "sha256:"},
		{"revoke: identity without role", ceremony.IdentityRevoke{Identity: "agent-1", Reason: "r"}, "<role>/<name>"},
		{"revoke: identity bad role", ceremony.IdentityRevoke{Identity: "admin/root", Reason: "r"}, `role "admin"`},
		{"revoke: identity as URI", ceremony.IdentityRevoke{Identity: "custos://prod/agent/a?region=DE", Reason: "r"}, "identity"},
		{"revoke: no reason", ceremony.IdentityRevoke{Identity: "agent/a"}, "reason is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v; want an error mentioning %q", err, tt.msg)
			}
			if refusalCode(sampleProposal(tt.params).Validate()) != ceremony.CodeInvalidParams {
				t.Fatalf("proposal Validate does not refuse with invalid_params")
			}
		})
	}
	// A reason may hold any printable text, quotes and non-ASCII letters included.
	if err := (ceremony.LegalHoldSet{KEKID: "k", Reason: `Zoë's "case" <№ 17> & co — 東京`}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyValidate(t *testing.T) {
	with := func(f func(*ceremony.Policy)) ceremony.Policy { p := samplePolicy(); f(&p); return p }
	ok := []struct {
		name string
		p    ceremony.Policy
	}{
		{"sample", samplePolicy()},
		{"bare", ceremony.Policy{Threshold: 2}},
		{"threshold 255", with(func(p *ceremony.Policy) { p.Threshold = 255 })},
		{"ttl per request", with(func(p *ceremony.Policy) { p.ActivationTTL = 0 })},
		{"ttl max", with(func(p *ceremony.Policy) { p.ActivationTTL = ceremony.MaxActivationTTL })},
		{"no escrow", with(func(p *ceremony.Policy) { p.Escrow = ceremony.Escrow{} })},
		{"nobody may wrap", with(func(p *ceremony.Policy) { p.Wrap = ceremony.Access{} })},
		{"several roles", with(func(p *ceremony.Policy) { p.Wrap.Roles = []string{"agent", "auditor", "officer"} })},
	}
	for _, tt := range ok {
		if err := tt.p.Validate(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	bad := []struct {
		name string
		p    ceremony.Policy
		msg  string
	}{
		{"threshold 0", with(func(p *ceremony.Policy) { p.Threshold = 0 }), "threshold 0"},
		{"threshold 1", with(func(p *ceremony.Policy) { p.Threshold = 1 }), "no single node"},
		{"threshold 256", with(func(p *ceremony.Policy) { p.Threshold = 256 }), "2-255"},
		{"ttl negative", with(func(p *ceremony.Policy) { p.ActivationTTL = -time.Second }), "activation ttl"},
		{"ttl fraction", with(func(p *ceremony.Policy) { p.ActivationTTL = 1500 * time.Millisecond }), "whole seconds"},
		{"ttl too long", with(func(p *ceremony.Policy) { p.ActivationTTL = ceremony.MaxActivationTTL + time.Second }), "activation ttl"},
		{"wrap without regions", with(func(p *ceremony.Policy) { p.Wrap.Regions = nil }), "wrap regions: required"},
		{"unwrap regions for nobody", with(func(p *ceremony.Policy) { p.Unwrap.Identities = nil }), "unwrap regions: set, but unwrap is granted to nobody"},
		{"unknown role", with(func(p *ceremony.Policy) { p.Wrap.Roles = []string{"admin"} }), `role "admin"`},
		{"roles unsorted", with(func(p *ceremony.Policy) { p.Wrap.Roles = []string{"auditor", "agent"} }), "wrap roles must be sorted"},
		{"identity without role", with(func(p *ceremony.Policy) { p.Unwrap.Identities = []string{"agent-payroll"} }), "<role>/<name>"},
		{"identity with bad role", with(func(p *ceremony.Policy) { p.Unwrap.Identities = []string{"root/x"} }), `role "root"`},
		{"identity with bad name", with(func(p *ceremony.Policy) { p.Unwrap.Identities = []string{"agent/Payroll"} }), "name"},
		{"identity twice", with(func(p *ceremony.Policy) { p.Unwrap.Identities = []string{"agent/a", "agent/a"} }), "without duplicates"},
		{"identity redundant with role", with(func(p *ceremony.Policy) { p.Wrap.Identities = []string{"agent/agent-payroll"} }), "redundant"},
		{"region lower case", with(func(p *ceremony.Policy) { p.Unwrap.Regions = []string{"fr"} }), `"fr"`},
		{"regions unsorted", with(func(p *ceremony.Policy) { p.Wrap.Regions = []string{"FR", "DE"} }), "sorted"},
		{"context key upper case", with(func(p *ceremony.Policy) { p.Context = []string{"Dataset"} }), "context field"},
		{"context key leading digit", with(func(p *ceremony.Policy) { p.Context = []string{"1dataset"} }), "context field"},
		{"context unsorted", with(func(p *ceremony.Policy) { p.Context = []string{"dataset", "classification"} }), "sorted"},
		{"context too many", with(func(p *ceremony.Policy) {
			p.Context = nil
			for i := range ceremony.MaxListLen + 1 {
				p.Context = append(p.Context, fmt.Sprintf("f%03d", i))
			}
		}), "over the limit"},
		{"escrow m 1", with(func(p *ceremony.Policy) { p.Escrow.M = 1 }), "one officer's share"},
		{"escrow m 0", with(func(p *ceremony.Policy) { p.Escrow.M = 0 }), "escrow m 0"},
		{"escrow m without escrow", with(func(p *ceremony.Policy) { p.Escrow.Enabled = false }), "escrow disabled"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v; want an error mentioning %q", err, tt.msg)
			}
		})
	}
}
