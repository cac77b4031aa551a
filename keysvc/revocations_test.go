package keysvc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

func ident(role identity.Role, name, region string) identity.Identity {
	return identity.Identity{Cluster: "test", Role: role, Name: name, Region: region}
}

// revokedEverywhere waits until every running node reports id (with
// certificate fp) revoked by entry, and returns the leader's record.
func revokedEverywhere(t *testing.T, c *keysvctest.Cluster, id identity.Identity, fp string, entry uint64) state.Revocation {
	t.Helper()
	for _, n := range c.Running() {
		keysvctest.WaitFor(t, n.Info().ID+" applies the revocation of "+id.String(), func() bool {
			r, ok := n.Revoked(id, fp)
			return ok && r.Entry == entry
		})
	}
	r, _ := c.Leader().Revoked(id, fp)
	return r
}

// entryAt returns the log's entry at index.
func (f *officers) entryAt(index uint64) ledger.Entry {
	f.t.Helper()
	raw, err := f.n.Entries(index, 1)
	if err != nil || len(raw) != 1 {
		f.t.Fatalf("entry %d: %v", index, err)
	}
	e, err := ledger.ParseEntry(raw[0])
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// TestIdentityRevoke: an executed identity.revoke is reported by every
// node at once, by identity (every region, every certificate) or by
// fingerprint (that certificate only), and logged in the execute entry;
// what it must not revoke is refused with a stable code.
func TestIdentityRevoke(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	agent := ident(identity.RoleAgent, "agent-1", "FR")
	fp := "sha256:" + strings.Repeat("ab", 32)
	if _, ok := f.n.Revoked(agent, fp); ok {
		t.Fatal("revoked before any revocation")
	}

	c := f.mustExecute(ceremony.IdentityRevoke{Identity: "agent/agent-1", Reason: "host decommissioned"})
	r := revokedEverywhere(t, f.c, agent, "", c.Closed)
	if r.Identity != "agent/agent-1" || r.Reason != "host decommissioned" || r.Ceremony != c.ID || r.Time == "" {
		t.Fatalf("revocation %+v", r)
	}
	// Every certificate of the identity, whatever its region.
	if _, ok := f.n.Revoked(ident(identity.RoleAgent, "agent-1", "DE"), fp); !ok {
		t.Error("agent-1 in another region not revoked")
	}
	for _, other := range []identity.Identity{ident(identity.RoleAgent, "agent-2", "FR"), ident(identity.RoleAuditor, "agent-1", "FR")} {
		if _, ok := f.n.Revoked(other, fp); ok {
			t.Errorf("%s revoked too", other)
		}
	}
	e := f.entryAt(c.Closed)
	if e.Type != ledger.TypeExecute || e.Details["revoked.identity"] != "agent/agent-1" || e.Details["revoked.reason"] != "host decommissioned" {
		t.Fatalf("execute entry %+v", e)
	}

	// By fingerprint: that certificate, whoever holds it; not others of the holder.
	c = f.mustExecute(ceremony.IdentityRevoke{Fingerprint: fp, Reason: "key leaked"})
	auditor := ident(identity.RoleAuditor, "audit", "NL")
	revokedEverywhere(t, f.c, auditor, fp, c.Closed)
	if _, ok := f.n.Revoked(auditor, "sha256:"+strings.Repeat("cd", 32)); ok {
		t.Error("auditor's other certificate revoked")
	}
	if e := f.entryAt(c.Closed); e.Details["revoked.fingerprint"] != fp {
		t.Fatalf("execute entry %+v", e)
	}
	if err := f.n.CheckRevoked(auditor, fp); err == nil || !strings.Contains(err.Error(), "was revoked by entry") {
		t.Fatalf("CheckRevoked: %v", err)
	}

	f.mustRefuse(ceremony.IdentityRevoke{Fingerprint: fp, Reason: "again"}, errcode.AlreadyRevoked)
	f.mustRefuse(ceremony.IdentityRevoke{Identity: "node/n2", Reason: "member"}, errcode.NodeMember)
	// Officers: fine while the quorum can still sign in, refused after.
	f.mustExecute(ceremony.IdentityRevoke{Identity: "officer/carol", Reason: "card lost"})
	f.mustRefuse(ceremony.IdentityRevoke{Identity: "officer/bob", Reason: "would lock the cluster"}, errcode.BelowQuorum)
	if _, ok := f.n.Revoked(ident(identity.RoleOfficer, "bob", "DE"), ""); ok {
		t.Fatal("bob revoked after a refusal")
	}
	if got := len(f.n.Revocations()); got != 3 {
		t.Errorf("%d revocations, want 3: %+v", got, f.n.Revocations())
	}
}

// TestRemovalRevokes: node.remove and officer.remove ceremonies revoke the
// identity they remove, in the same entry; the identity cannot be added
// back under the same name.
func TestRemovalRevokes(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol", "dave")
	f.init(2, "alice", "bob", "carol", "dave")
	n3 := f.c.Node("n3").Info()
	c := f.mustExecute(ceremony.NodeRemove{ID: "n3"})
	f.c.Stop("n3")
	r := revokedEverywhere(t, f.c, ident(identity.RoleNode, "n3", n3.Region), "", c.Closed)
	if r.Identity != "node/n3" || r.Ceremony != c.ID {
		t.Fatalf("node revocation %+v", r)
	}
	if e := f.entryAt(c.Closed); e.Details["revoked.identity"] != "node/n3" || e.Details["node.id"] != "n3" {
		t.Fatalf("execute entry %+v", e)
	}
	if _, ok := f.n.Revoked(ident(identity.RoleNode, "n2", "FR"), ""); ok {
		t.Fatal("n2 revoked")
	}
	// Its join request stays refused; a node.add ceremony for the same id too.
	if err := keysvctest.Retry(func(ctx context.Context) error { return f.c.Leader().AddNode(ctx, n3, keysvctest.Operator) }); !errors.Is(err, keysvc.ErrCeremonyRequired) {
		t.Fatalf("join of a removed node: %v", err)
	}
	f.mustRefuse(n3.NodeAdd(), errcode.IdentityRevoked)

	c = f.mustExecute(ceremony.OfficerRemove{ID: "dave"})
	r = revokedEverywhere(t, f.c, ident(identity.RoleOfficer, "dave", "DE"), "", c.Closed)
	if r.Identity != "officer/dave" || !strings.Contains(r.Reason, "removed") {
		t.Fatalf("officer revocation %+v", r)
	}
	if e := f.entryAt(c.Closed); e.Details["revoked.identity"] != "officer/dave" {
		t.Fatalf("execute entry %+v", e)
	}
	f.mustRefuse(ceremony.OfficerAdd{ID: "dave", Bundle: f.bundle("dave"), Fingerprint: f.signer("dave").Public().Fingerprint()}, errcode.IdentityRevoked)
}

// TestRawNodeRemoveNeedsCeremony: after initialisation the node.remove
// command is refused, logged, unless a node.remove ceremony removed the
// node; it then changes nothing.
func TestRawNodeRemoveNeedsCeremony(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	version := f.n.Status().StateVersion
	err := keysvctest.Retry(func(ctx context.Context) error { return f.c.Leader().RemoveNode(ctx, "n3", keysvctest.Operator) })
	if !errors.Is(err, keysvc.ErrCeremonyRequired) {
		t.Fatalf("raw node.remove after init: %v, want ErrCeremonyRequired", err)
	}
	var denied []ledger.Entry
	for _, e := range f.entries("node.remove") {
		if e.Outcome == ledger.OutcomeDenied && e.Details["node.id"] == "n3" {
			denied = append(denied, e)
		}
	}
	if len(denied) != 1 || !strings.Contains(denied[0].Reason, "node.remove ceremony") {
		t.Fatalf("denied node.remove entries: %+v", denied)
	}
	if len(f.n.Status().Members) != 3 || f.n.Status().StateVersion != version {
		t.Fatalf("a refused node.remove changed the cluster: %+v", f.n.Status())
	}
	if _, ok := f.n.Revoked(ident(identity.RoleNode, "n3", "NL"), ""); ok {
		t.Fatal("n3 revoked by a refused command")
	}
	// After the ceremony, the command completes nothing more: it is ok and
	// changes nothing (no second revocation, no version bump).
	c := f.mustExecute(ceremony.NodeRemove{ID: "n3"})
	version = f.n.Status().StateVersion
	if err := keysvctest.Retry(func(ctx context.Context) error { return f.c.Leader().RemoveNode(ctx, "n3", keysvctest.Operator) }); err != nil {
		t.Fatalf("node.remove after the ceremony: %v", err)
	}
	if f.n.Status().StateVersion != version {
		t.Error("node.remove after the ceremony bumped the state version")
	}
	if r, _ := f.n.Revoked(ident(identity.RoleNode, "n3", "NL"), ""); r.Entry != c.Closed {
		t.Errorf("revocation %+v, want the ceremony's entry %d", r, c.Closed)
	}
}
