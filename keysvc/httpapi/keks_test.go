package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// A KEK created by ceremony through the API, read back by an agent; the
// read and internal routes' refusals.
func TestKEKRoutes(t *testing.T) {
	s := agentcluster.Serve(t, agentcluster.ServeOptions{})
	c, leaderURL := s.Cluster, s.LeaderURL()
	ctx := context.Background()
	e := &env{pki: s.PKI}
	officers := s.InitOfficers(t, func(role identity.Role, name string) *client.Client { return e.sdk(t, role, name, "DE", leaderURL) })
	pol := ceremony.Policy{Threshold: 2, Wrap: ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}}
	id := officers.Execute(t, ceremony.KEKCreate{KEKID: "payroll", Policy: pol})

	// Auditors get the transcript: officers' bundles and approvals' signatures.
	aud := e.sdk(t, identity.RoleAuditor, "audit", "DE", leaderURL)
	offs, err := aud.Officers(ctx)
	if err != nil || len(offs) != 2 || offs[0].Bundle == "" || offs[0].Fingerprint == "" {
		t.Fatalf("officers: %+v, %v", offs, err)
	}
	if c, err := aud.Ceremony(ctx, id); err != nil || len(c.Approvals) != 2 || c.Approvals[1].Signature == "" {
		t.Fatalf("ceremony transcript: %+v, %v", c, err)
	}
	agent := e.sdk(t, identity.RoleAgent, "agent-1", "DE", leaderURL)
	list, err := agent.KEKs(ctx)
	if err != nil || len(list.KEKs) != 1 || list.KEKs[0].ID != "payroll" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	k, err := agent.KEK(ctx, "payroll")
	if err != nil || len(k.Versions) != 1 || len(k.Versions[0].PublicKey) != 1216 || len(k.Versions[0].Shares) != 2 || k.Versions[0].Shares[0].Statement == "" {
		t.Fatalf("kek: %+v, %v", k, err)
	}
	var back ceremony.Policy
	if err := json.Unmarshal(k.Policy, &back); err != nil || back.Threshold != 2 {
		t.Errorf("policy %s: %v", k.Policy, err)
	}
	_, err = agent.KEK(ctx, "nope")
	wantCode(t, "unknown kek", err, 404, errcode.UnknownKEK)
	_, err = agent.DestructionCertificate(ctx, "payroll", 1)
	wantCode(t, "certificate of an active version", err, 409, errcode.NotDestroyed)
	_, err = agent.DestructionCertificate(ctx, "payroll", 9)
	wantCode(t, "certificate of an unknown version", err, 404, errcode.UnknownKEK)
	resp, _ := call(t, e.as(t, identity.RoleAgent, "agent-1", "DE"), http.MethodGet, leaderURL+"/v1/keks/payroll/versions/x/destruction-certificate", nil)
	if resp.StatusCode != 400 {
		t.Errorf("version x: %d", resp.StatusCode)
	}

	// The API carries no node-to-node call, even from a member node.
	member := e.as(t, identity.RoleNode, c.Follower().Info().ID, keysvctest.Region(c.Follower().Info().ID))
	for _, path := range []string{"/v1/internal/kek/seal", "/v1/internal/kek/release"} {
		if resp, body := call(t, member, http.MethodPost, leaderURL+path, []byte(`{}`)); resp.StatusCode != 404 {
			t.Errorf("%s: %d %s, want 404", path, resp.StatusCode, body)
		}
	}
}
