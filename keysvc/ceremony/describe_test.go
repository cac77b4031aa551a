// Describe: pinned wording for a few operations, and properties for all.

package ceremony_test

import (
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

const trailer = " Proposed by alice at 2026-03-01T10:00:00Z, expires 2026-03-02T10:00:00Z, needs 2 approvals, " +
	"made against state version 41 of cluster prod (proposal 00112233445566778899aabbccddeeff)."

func TestDescribePinned(t *testing.T) {
	tests := []struct {
		params ceremony.Params
		want   string
	}{
		{ceremony.KEKCreate{KEKID: "payroll", Policy: samplePolicy()},
			`Create KEK "payroll" (version 1), split across the cluster's nodes, one share each, any 2 needed to use it; ` +
				`wrap: any agent, from DE, FR only; unwrap: agents [agent-payroll], from FR only; ` +
				`required context: classification, dataset; activation TTL 5m; officer escrow: any 2 officers' shares recover it.`},
		{ceremony.KEKPolicy{KEKID: "payroll", Policy: ceremony.Policy{
			Threshold: 3, ActivationTTL: 90 * time.Minute,
			Wrap:   ceremony.Access{Roles: []string{"agent", "operator"}, Identities: []string{"auditor/audit-1"}, Regions: []string{"AT"}},
			Unwrap: ceremony.Access{Identities: []string{"agent/agent-hr", "agent/agent-payroll"}, Regions: []string{"DE", "FR"}},
			Escrow: ceremony.Escrow{Enabled: true, M: 3},
		}},
			`Replace the policy of KEK "payroll": wrap: any agent, any operator and auditors [audit-1], from AT only; ` +
				`unwrap: agents [agent-hr, agent-payroll], from DE, FR only; no required context fields; activation TTL 1h30m. ` +
				`These apply at once; versions created from then on are split with any 3 nodes needed, ` +
				`with officer escrow (any 3 officers' shares recover a version).`},
		{ceremony.KEKDestroy{KEKID: "payroll", Version: 1},
			`Destroy version 1 of KEK "payroll": every node deletes its HSM key for that version, so nothing wrapped under it ` +
				`can be unwrapped through the cluster again. This cannot be undone; if the version has officer escrow, its escrow ` +
				`shares can still recover it until they are destroyed too. Refused while the KEK is under legal hold.`},
		{ceremony.KEKDisable{KEKID: "payroll", All: true},
			`Disable every version of KEK "payroll": no wrap or unwrap with them until they are enabled again, and any copy ` +
				`in memory is purged; refused while the KEK is under legal hold.`},
		{ceremony.LegalHoldSet{KEKID: "payroll", Reason: `case "17" <b>`},
			`Place KEK "payroll" under legal hold (reason: "case \"17\" <b>"): none of its versions can be disabled or ` +
				`destroyed until the hold is released.`},
		{ceremony.NodeAdd{ID: "node-4", Region: "DE", RaftAddr: "10.0.0.4:7000", APIAddr: "https://node-4:8443", Keys: "k\n", KEM: "kem"},
			`Add node "node-4" in region DE as a voting member (raft address 10.0.0.4:7000, API https://node-4:8443, ` +
				`checkpoint keys SHA-256 19732980d68fbd00358a0a4d98246c960400b87e4fa2a2e155db98be2b42ed6c, ` +
				`KEM key SHA-256 2080150a7f6914e9d0e9f68651573ee083f73feeebd73cdabe68f24926d4890b); ` +
				`refused unless DE is an allowed region.`},
		{ceremony.QuorumSet{M: 3},
			`Set the officer quorum to 3: every later proposal needs approvals from 3 distinct officers.`},
	}
	for _, tt := range tests {
		t.Run(string(tt.params.Operation()), func(t *testing.T) {
			if got := ceremony.Describe(sampleProposal(tt.params), 2); got != tt.want+trailer {
				t.Fatalf("Describe =\n%s\nwant\n%s", got, tt.want+trailer)
			}
		})
	}
}

func TestDescribeQuorum(t *testing.T) {
	for q, want := range map[int]string{0: "needs the officer quorum's approvals,", 1: "needs 1 approval,", 3: "needs 3 approvals,"} {
		if d := ceremony.Describe(rotate(), q); !strings.Contains(d, want) {
			t.Errorf("Describe(p, %d) = %q, want it to contain %q", q, d, want)
		}
	}
}

// TestDescribeDistinct: different parameters never read the same, and every
// description names the KEK, node or officer it acts on.
func TestDescribeDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, s := range sampleParams() {
		d := ceremony.Describe(sampleProposal(s.params), 2)
		if prev, ok := seen[d]; ok {
			t.Fatalf("%s and %s read the same: %s", prev, s.name, d)
		}
		seen[d] = s.name
		if strings.HasPrefix(d, "Invalid") || !strings.HasSuffix(d, trailer) {
			t.Errorf("%s: %s", s.name, d)
		}
		var subject string
		switch p := s.params.(type) {
		case ceremony.NodeAdd:
			subject = p.ID
		case ceremony.NodeRemove:
			subject = p.ID
		case ceremony.OfficerAdd:
			subject = p.Fingerprint
		case ceremony.OfficerRemove:
			subject = p.ID
		case ceremony.QuorumSet, ceremony.RegionsSet:
		case ceremony.EscrowRecover:
			subject = p.Reason
		case ceremony.IdentityRevoke:
			subject = p.Fingerprint
			if subject == "" {
				_, subject, _ = strings.Cut(p.Identity, "/")
			}
		default:
			subject = `KEK "`
		}
		if !strings.Contains(d, subject) {
			t.Errorf("%s: %q does not mention %q", s.name, d, subject)
		}
	}
}
