package httpapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
)

func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
		t.Errorf("%s: %v, want %d %s", what, err, status, code)
	}
}

// Init, proposals and approvals over mutual TLS against two real nodes,
// through the follower (redirected to the leader).
func TestCeremonyRoutes(t *testing.T) {
	s := agentcluster.Serve(t, agentcluster.ServeOptions{})
	c, fURL := s.Cluster, s.FollowerURL()
	ctx := context.Background()
	e := &env{pki: s.PKI}
	offs := officertest.New(t)
	bundles := offs.Bundles("alice", "bob", "carol")
	sdks := map[string]*client.Client{}
	for _, name := range []string{"alice", "bob", "carol"} {
		sdks[name] = e.sdk(t, identity.RoleOfficer, name, "DE", fURL)
	}
	ops := e.sdk(t, identity.RoleOperator, "ops", "DE", fURL)
	alice, bob := sdks["alice"], sdks["bob"]

	_, err := alice.Ceremonies(ctx)
	wantCode(t, "list before init", err, 409, errcode.NotInitialized)
	in := client.InitRequest{Officers: bundles, Quorum: 2, DefaultThreshold: 2}
	wantCode(t, "init by an officer", alice.Init(ctx, in), 403, errcode.Forbidden)
	wantCode(t, "init with quorum 1", ops.Init(ctx, client.InitRequest{Officers: bundles, Quorum: 1, DefaultThreshold: 2}), 400, errcode.BadRequest)
	if err := ops.Init(ctx, in); err != nil {
		t.Fatalf("init: %v", err)
	}
	wantCode(t, "second init", ops.Init(ctx, in), 409, errcode.Conflict)
	c.WaitConverged() // the follower reads its own state

	st, err := alice.Cluster(ctx)
	if err != nil || !st.Initialized || st.Quorum != 2 || len(st.Officers) != 3 || st.StateVersion != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	propose := func(who string, ps ceremony.Params, sign bool) (ceremony.Proposal, client.Ceremony, error) {
		p := officertest.Proposal(t, "test", who, ps, time.Now(), st.StateVersion)
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pr := client.ProposeRequest{Proposal: string(b)}
		if sign {
			pr.Signature = string(offs.Sign(who, p))
		}
		cer, err := sdks[who].Propose(ctx, pr)
		return p, cer, err
	}

	p, cer, err := propose("alice", ceremony.QuorumSet{M: 3}, true)
	if err != nil || cer.Status != state.StatusPending || len(cer.Approvals) != 1 || cer.Description == "" || cer.Operation != "quorum.set" {
		t.Fatalf("propose: %+v, %v", cer, err)
	}
	b, _ := p.Marshal()
	_, err = bob.Propose(ctx, client.ProposeRequest{Proposal: string(b)})
	wantCode(t, "proposal submitted by another officer", err, 403, client.CodeNotProposer)
	_, err = bob.Approve(ctx, p.ID, client.ApproveRequest{Officer: "carol", Signature: string(offs.Sign("carol", p))})
	wantCode(t, "approval in another officer's name", err, 403, client.CodeForbidden)
	_, err = bob.Approve(ctx, p.ID, client.ApproveRequest{Officer: "bob", Signature: string(offs.Sign("carol", p))})
	wantCode(t, "approval with another's signature", err, 403, string(ceremony.CodeBadSignature))
	_, err = alice.Approve(ctx, p.ID, client.ApproveRequest{Officer: "alice", Signature: string(offs.Sign("alice", p))})
	wantCode(t, "second approval by the proposer", err, 409, string(ceremony.CodeDuplicateApprover))
	_, err = bob.Approve(ctx, "ffffffffffffffffffffffffffffffff", client.ApproveRequest{Officer: "bob", Signature: string(offs.Sign("bob", p))})
	wantCode(t, "approval of an unknown proposal", err, 404, client.CodeUnknownProposal)
	_, err = bob.Approve(ctx, "not-an-id", client.ApproveRequest{Officer: "bob", Signature: "x"})
	wantCode(t, "approval of a malformed id", err, 404, errcode.UnknownProposal)
	_, err = bob.Propose(ctx, client.ProposeRequest{Proposal: `{"cluster":"test"}`})
	wantCode(t, "malformed proposal", err, 400, string(ceremony.CodeInvalidProposal))
	_, err = e.sdk(t, identity.RoleAgent, "agent", "DE", fURL).Ceremonies(ctx)
	wantCode(t, "agent lists ceremonies", err, 403, errcode.Forbidden)

	cer, err = bob.Approve(ctx, p.ID, client.ApproveRequest{Officer: "bob", Signature: string(offs.Sign("bob", p))})
	if err != nil || cer.Status != state.StatusExecuted || len(cer.Approvals) != 2 || cer.Closed == 0 {
		t.Fatalf("approve: %+v, %v", cer, err)
	}
	c.WaitConverged()
	aud := e.sdk(t, identity.RoleAuditor, "audit", "NL", fURL)
	got, err := aud.Ceremony(ctx, p.ID)
	if err != nil || got.Status != state.StatusExecuted || got.Proposal != string(b) {
		t.Fatalf("show: %+v, %v", got, err)
	}
	list, err := aud.Ceremonies(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if st, err := aud.Cluster(ctx); err != nil || st.Quorum != 3 || st.StateVersion != 2 {
		t.Fatalf("status after quorum.set: %+v, %v", st, err)
	}
	_, err = aud.Ceremony(ctx, "ffffffffffffffffffffffffffffffff")
	wantCode(t, "show unknown", err, 404, errcode.UnknownProposal)
}

// A Service without ceremonies answers their routes 501 not_supported_yet,
// after the role check.
func TestCeremonyRoutesWithoutCeremonyService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	off := e.sdk(t, identity.RoleOfficer, "alice", "DE")
	_, err := off.Ceremonies(ctx)
	wantCode(t, "list", err, 501, errcode.NotSupportedYet)
	_, err = off.Propose(ctx, client.ProposeRequest{Proposal: "{}"})
	wantCode(t, "propose", err, 501, errcode.NotSupportedYet)
	_, err = e.sdk(t, identity.RoleAgent, "agent", "DE").Propose(ctx, client.ProposeRequest{Proposal: "{}"})
	wantCode(t, "propose as agent", err, 403, errcode.Forbidden)
	wantCode(t, "init", e.sdk(t, identity.RoleOperator, "ops", "DE").Init(ctx, client.InitRequest{}), 501, errcode.NotSupportedYet)
}
