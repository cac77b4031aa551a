package httpapi_test

import (
	"context"
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestAttestations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.sdk(t, identity.RoleAgent, "backup-1", "FR")
	details := map[string]string{"archive": "a1", "dataset": "hr", "sha256": "sha256:00", "size": "10", "target": "s3-ie",
		"region": "IE", "decision": "encrypted-off-region-allowed"}
	i, err := agent.Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, KEKID: "demo", KEKVersion: 1, Details: details})
	if err != nil {
		t.Fatal(err)
	}
	en, err := e.fake.Entry(i)
	if err != nil || en.Type != client.AttestTransfer || en.Actor.Role != "agent" || en.Details["region"] != "IE" || en.KEKID != "demo" || en.Outcome != ledger.OutcomeOK {
		t.Fatalf("transfer entry %+v, %v", en, err)
	}
	i, err = agent.Attest(ctx, client.AttestRequest{Type: client.AttestDrill, Details: map[string]string{"archive": "a1", "dataset": "hr", "result": "hash mismatch", "restore_seconds": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if en, _ := e.fake.Entry(i); en.Outcome != ledger.OutcomeError {
		t.Errorf("a failed drill is logged %s, want error", en.Outcome)
	}
	_, err = agent.Attest(ctx, client.AttestRequest{Type: "kek.unwrap", Details: details})
	wantCode(t, "unknown type", err, 400, client.CodeBadRequest)
	_, err = agent.Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, Details: map[string]string{"archive": "a1"}})
	wantCode(t, "missing details", err, 400, client.CodeBadRequest)
	_, err = e.sdk(t, identity.RoleAuditor, "audit", "FR").Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, Details: details})
	wantCode(t, "auditor", err, 403, client.CodeForbidden)
}
