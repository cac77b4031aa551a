package httpapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Three real keysvc nodes (in-memory raft), each behind its own API over
// mutual TLS, forwarding through httpapi.Forwarder: the write path, the
// leader redirect and the proofs, end to end.
func TestWithKeysvcNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	srv := agentcluster.Serve(t, agentcluster.ServeOptions{Nodes: 3, Forward: true})
	pki, c, urls := srv.PKI, srv.Cluster, srv.URL
	leader, follower := c.Leader(), c.Follower()
	fURL := urls[follower.Info().ID]
	ctx := context.Background()

	for _, id := range []string{"n1", "n2", "n3"} {
		env := &env{pki: pki}
		sdk := env.sdk(t, identity.RoleAgent, "agent", "DE", urls[id])
		h, err := sdk.Health(ctx)
		if err != nil || h.Leader != leader.Info().ID || h.Node != id {
			t.Errorf("health of %s: %+v, %v", id, h, err)
		}
	}

	e := &env{pki: pki}
	ops := e.sdk(t, identity.RoleOperator, "ops", "FR", fURL)
	idx, err := ops.Canary(ctx)
	if err != nil {
		t.Fatalf("canary through a follower: %v", err)
	}

	aud := e.sdk(t, identity.RoleAuditor, "audit", "NL", fURL)
	note, err := aud.Checkpoint(ctx) // redirected to the leader
	if err != nil {
		t.Fatal(err)
	}
	keys, err := aud.NodeKeys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys: %d, %v", len(keys), err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), keys...)
	if err != nil || signer != ledger.KeyName("test", leader.Info().ID) || cp.Size <= idx {
		t.Fatalf("checkpoint %+v by %q: %v", cp, signer, err)
	}

	c.WaitConverged()
	raw, err := aud.Entries(ctx, idx, 1)
	if err != nil || len(raw) != 1 {
		t.Fatalf("entries: %v", err)
	}
	en, err := ledger.ParseEntry(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	if en.Type != ledger.TypeCanary || en.Node != follower.Info().ID || en.Actor.Identity != "custos://test/operator/ops?region=FR" {
		t.Errorf("canary entry %+v", en)
	}
	p, err := aud.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyInclusion(cp, idx, raw[0], p.Hashes); err != nil {
		t.Errorf("inclusion of the canary: %v", err)
	}

	st, err := aud.Cluster(ctx)
	if err != nil || len(st.Members) != 3 || st.Leader.APIAddr != urls[leader.Info().ID] {
		t.Errorf("cluster %+v, %v", st, err)
	}
	for _, m := range st.Members {
		if !m.Voter || !m.Registered || m.APIAddr != urls[m.ID] {
			t.Errorf("member %+v", m)
		}
	}

	resp, body := call(t, e.as(t, identity.RoleOperator, "ops", "FR"), "GET", fURL+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "custos_ledger_forwarded_entries_total 1") {
		t.Errorf("follower metrics: %d, forwarded count missing", resp.StatusCode)
	}

	// Joining is idempotent: n3 asks again through a follower.
	n3 := e.sdk(t, identity.RoleNode, "n3", keysvctest.Region("n3"), fURL)
	if _, err := n3.Join(ctx, client.NodeInfo(c.Node("n3").Info())); err != nil {
		t.Errorf("join again: %v", err)
	}
}
