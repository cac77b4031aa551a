package keysvc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"
	"github.com/custos-eu/custos/keysvc/officer/officertest"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

func testPolicy(t int, escrowM int) ceremony.Policy {
	p := ceremony.Policy{Threshold: t, ActivationTTL: 5 * time.Minute,
		Wrap:   ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}},
		Unwrap: ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}}
	if escrowM > 0 {
		p.Escrow = ceremony.Escrow{Enabled: true, M: escrowM}
	}
	return p
}

// run proposes ps by alice and has bob approve it; it returns the ceremony
// as it stands after bob's approval.
func (f *officers) run(ps ceremony.Params) state.Ceremony {
	f.t.Helper()
	p := f.proposal("alice", ps)
	f.mustPropose(p, true)
	c, err := f.approve("bob", p)
	if err != nil {
		f.t.Fatalf("approve %s: %v", p.Operation(), err)
	}
	return c
}

func (f *officers) mustExecute(ps ceremony.Params) state.Ceremony {
	f.t.Helper()
	c := f.run(ps)
	if c.Status != state.StatusExecuted {
		f.t.Fatalf("%s: %s (%s: %s), want executed", ps.Operation(), c.Status, c.Code, c.Reason)
	}
	return c
}

func (f *officers) mustRefuse(ps ceremony.Params, code string) state.Ceremony {
	f.t.Helper()
	c := f.run(ps)
	if c.Status != state.StatusRefused || c.Code != code {
		f.t.Fatalf("%s: %s (%s: %s), want refused %s", ps.Operation(), c.Status, c.Code, c.Reason, code)
	}
	return c
}

func (f *officers) kek(id string) state.KEK {
	f.t.Helper()
	k, found, err := f.n.KEK(id)
	if err != nil || !found {
		f.t.Fatalf("kek %q: found %v, %v", id, found, err)
	}
	return k
}

// reconstitute opens the shares of version ver on the given nodes' HSMs
// and rebuilds the key.
func (f *officers) reconstitute(id string, ver uint32, nodes ...string) (*wrapkey.Key, error) {
	k := f.kek(id)
	kv, ok := k.Version(ver)
	if !ok {
		f.t.Fatalf("kek %q has no v%d", id, ver)
	}
	v, err := kv.Public(id)
	if err != nil {
		f.t.Fatal(err)
	}
	var shares []threshold.Share
	for _, node := range nodes {
		hs, ok := kv.Share(node)
		if !ok {
			f.t.Fatalf("node %s holds no share", node)
		}
		sh, err := kekhsm.OpenShare(f.c.Token(node), v, hs.Index, hs.Sealed)
		if err != nil {
			return nil, err
		}
		shares = append(shares, *sh)
	}
	return kek.Reconstitute(v, shares)
}

func hasKey(t *testing.T, tok hsm.Token, label string) bool {
	t.Helper()
	labels, err := tok.List()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(labels, func(k hsm.KeyInfo) bool { return k.Label == label })
}

var nodes3 = []string{"n1", "n2", "n3"}

func TestKEKLifecycle(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")

	c := f.mustExecute(ceremony.KEKCreate{KEKID: "payroll", Policy: testPolicy(2, 0)})
	k := f.kek("payroll")
	if len(k.Versions) != 1 || k.Created != c.Closed {
		t.Fatalf("kek record: %+v", k)
	}
	v1 := k.Versions[0]
	if v1.State != ledger.KEKActive || v1.Threshold != 2 || len(v1.Shares) != 3 || v1.Escrow != nil {
		t.Fatalf("v1: state %s t=%d shares %d", v1.State, v1.Threshold, len(v1.Shares))
	}
	// Every node verified and sealed its share, and said so.
	keys, err := f.n.NodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v1.Shares {
		i := slices.IndexFunc(keys, func(k ledger.NodeKey) bool { return strings.HasSuffix(k.Name, "/"+s.Node) })
		text, err := ledger.VerifyStatement(s.Statement, keys[i])
		if err != nil || !strings.Contains(text, "kek payroll\nversion 1\n") {
			t.Errorf("node %s statement: %q, %v", s.Node, text, err)
		}
		if !hasKey(t, f.c.Token(s.Node), kek.Label("payroll", 1)) {
			t.Errorf("node %s has no sealing key", s.Node)
		}
	}
	// Any two nodes rebuild the key; a blob wrapped to v1 unwraps.
	v, _ := v1.Public("payroll")
	ctx := wrapkey.Context{"dataset": "hr"}
	blob, err := v.Wrap(nil, ctx, []byte("data key 32 bytes long, exactly!"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.reconstitute("payroll", 1, "n2", "n3")
	if err != nil {
		t.Fatal(err)
	}
	if dek, err := key.Unwrap(blob, ctx); err != nil || string(dek) != "data key 32 bytes long, exactly!" {
		t.Fatalf("unwrap: %q, %v", dek, err)
	}
	key.Destroy()
	if got := f.entries(ledger.TypeExecute); len(got) == 0 || got[len(got)-1].Details["kek.public_key"] == "" {
		t.Errorf("execute entry lacks the public key hash: %+v", got)
	}

	// Rotate: v2 under the same policy.
	f.mustExecute(ceremony.KEKRotate{KEKID: "payroll"})
	if k = f.kek("payroll"); len(k.Versions) != 2 || k.Versions[1].Version != 2 || k.Versions[1].State != ledger.KEKActive {
		t.Fatalf("after rotate: %+v", k.Versions)
	}

	// Disable, enable.
	f.mustExecute(ceremony.KEKDisable{KEKID: "payroll", Version: 1})
	f.mustRefuse(ceremony.KEKDisable{KEKID: "payroll", Version: 1}, errcode.NothingToChange)
	f.mustExecute(ceremony.KEKEnable{KEKID: "payroll", All: true})
	if k = f.kek("payroll"); k.Versions[0].State != ledger.KEKActive {
		t.Fatalf("v1 after enable: %s", k.Versions[0].State)
	}

	// Legal hold: no disable, no destroy, until released.
	f.mustExecute(ceremony.LegalHoldSet{KEKID: "payroll", Reason: "case 2026-17"})
	f.mustRefuse(ceremony.LegalHoldSet{KEKID: "payroll", Reason: "again"}, errcode.AlreadyHeld)
	f.mustRefuse(ceremony.KEKDestroy{KEKID: "payroll", Version: 1}, errcode.LegalHold)
	f.mustRefuse(ceremony.KEKDisable{KEKID: "payroll", All: true}, errcode.LegalHold)
	f.mustExecute(ceremony.LegalHoldRelease{KEKID: "payroll", Reason: "case closed"})
	f.mustRefuse(ceremony.LegalHoldRelease{KEKID: "payroll", Reason: "again"}, errcode.NotHeld)

	// Destroy v1: every node destroys its key and attests it.
	if _, err := f.n.DestructionCertificate("payroll", 1); !errors.Is(err, keysvc.ErrNotDestroyed) {
		t.Fatalf("certificate before destroy: %v", err)
	}
	sealed := f.kek("payroll").Versions[0]
	f.mustExecute(ceremony.KEKDestroy{KEKID: "payroll", Version: 1})
	var dc keysvc.DestructionCertificate
	keysvctest.WaitFor(t, "every node attests", func() bool {
		dc, err = f.n.DestructionCertificate("payroll", 1)
		return err == nil && dc.Complete
	})
	if len(dc.Holders) != 3 || !slices.Equal(dc.Approvers, []string{"alice", "bob"}) {
		t.Fatalf("certificate: %+v", dc)
	}
	for _, node := range nodes3 {
		if hasKey(t, f.c.Token(node), kek.Label("payroll", 1)) {
			t.Errorf("node %s still holds the v1 sealing key", node)
		}
		hs, _ := sealed.Share(node)
		if _, err := kekhsm.OpenShare(f.c.Token(node), v, hs.Index, hs.Sealed); !errors.Is(err, kek.ErrShareUnavailable) {
			t.Errorf("node %s: old sealed share opens: %v", node, err)
		}
	}
	if got := f.entries(ledger.TypeDestroyed); len(got) != 3 {
		t.Errorf("%d kek.destroyed entries, want 3", len(got))
	}
	if k := f.kek("payroll"); k.Versions[0].State != ledger.KEKDestroyed || k.Versions[0].Shares[0].Sealed != nil {
		t.Errorf("destroyed v1 still has sealed shares in the state")
	}
	f.mustRefuse(ceremony.KEKDestroy{KEKID: "payroll", Version: 1}, errcode.KEKDestroyed)
	f.mustRefuse(ceremony.KEKEnable{KEKID: "payroll", Version: 1}, errcode.KEKDestroyed)
	// v2 is untouched.
	key, err = f.reconstitute("payroll", 2, "n1", "n3")
	if err != nil {
		t.Fatalf("v2 after destroying v1: %v", err)
	}
	key.Destroy()
}

func TestKEKRefusals(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	f.mustRefuse(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(4, 0)}, errcode.InvalidPolicy)
	pol := testPolicy(2, 0)
	pol.Wrap.Regions = []string{"MT"}
	f.mustRefuse(ceremony.KEKCreate{KEKID: "k", Policy: pol}, errcode.InvalidPolicy)
	f.mustRefuse(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 4)}, errcode.InvalidPolicy)
	f.mustRefuse(ceremony.KEKRotate{KEKID: "nope"}, errcode.UnknownKEK)
	f.mustRefuse(ceremony.LegalHoldSet{KEKID: "nope", Reason: "x"}, errcode.UnknownKEK)
	f.mustExecute(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(3, 0)})
	f.mustRefuse(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 0)}, errcode.KEKExists)
	f.mustRefuse(ceremony.KEKDestroy{KEKID: "k", Version: 2}, errcode.UnknownVersion)
	f.mustRefuse(ceremony.KEKEnable{KEKID: "k", All: true}, errcode.NothingToChange)
	f.mustRefuse(ceremony.EscrowRecover{KEKID: "k", Version: 1, Reason: "lost"}, errcode.NoEscrow)
	if _, err := f.n.DestructionCertificate("nope", 1); !errors.Is(err, keysvc.ErrUnknownKEK) {
		t.Errorf("certificate of unknown kek: %v", err)
	}
	// Policy change applies; a threshold the nodes cannot meet is refused.
	f.mustRefuse(ceremony.KEKPolicy{KEKID: "k", Policy: testPolicy(5, 0)}, errcode.InvalidPolicy)
	f.mustExecute(ceremony.KEKPolicy{KEKID: "k", Policy: testPolicy(2, 0)})
	if k := f.kek("k"); k.Policy.Threshold != 2 || k.Versions[0].Threshold != 3 {
		t.Errorf("after policy: policy t=%d, v1 t=%d (want 2, 3)", k.Policy.Threshold, k.Versions[0].Threshold)
	}
}

// A creation that a node cannot take part in fails and leaves no key behind.
func TestKEKCreateFailsCleanly(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	leader := f.n.Info().ID
	var down string
	for _, id := range nodes3 {
		if id != leader {
			down = id
			break
		}
	}
	f.c.Isolate(down)
	c := f.mustRefuse(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 0)}, errcode.KEKCreationFailed)
	if !strings.Contains(c.Reason, down) {
		t.Errorf("reason %q does not name node %s", c.Reason, down)
	}
	if _, found, _ := f.n.KEK("k"); found {
		t.Error("kek recorded after a failed creation")
	}
	for _, id := range nodes3 {
		if id != down && hasKey(t, f.c.Token(id), kek.Label("k", 1)) {
			t.Errorf("node %s kept a sealing key of the failed creation", id)
		}
	}
	f.c.Heal()
	f.mustExecute(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 0)})
}

// A node that is down when a version is destroyed destroys and attests when it returns.
func TestKEKDestroyWhileNodeDown(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	f.mustExecute(ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 0)})
	leader := f.n.Info().ID
	down := "n3"
	if leader == down {
		down = "n2"
	}
	f.c.Stop(down)
	f.mustExecute(ceremony.KEKDestroy{KEKID: "k", Version: 1})
	keysvctest.WaitFor(t, "the running nodes attest", func() bool {
		dc, err := f.n.DestructionCertificate("k", 1)
		return err == nil && len(dc.Holders) == 3 && countAttested(dc) == 2
	})
	dc, _ := f.n.DestructionCertificate("k", 1)
	if dc.Complete {
		t.Fatal("certificate complete with a node down")
	}
	if !hasKey(t, f.c.Token(down), kek.Label("k", 1)) {
		t.Fatal("the stopped node's key is gone already")
	}
	f.c.Start(down)
	keysvctest.WaitFor(t, "the returning node attests", func() bool {
		dc, err := f.n.DestructionCertificate("k", 1)
		return err == nil && dc.Complete
	})
	if hasKey(t, f.c.Token(down), kek.Label("k", 1)) {
		t.Error("the returned node kept its key")
	}
}

func countAttested(dc keysvc.DestructionCertificate) int {
	n := 0
	for _, h := range dc.Holders {
		if h.Attested {
			n++
		}
	}
	return n
}

// Escrow: officers verify their shares; when every node's sealing key is
// gone, an escrow.recover ceremony re-deals the version from the officers'
// shares and an old blob unwraps again.
func TestKEKEscrowRecovery(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	f.mustExecute(ceremony.KEKCreate{KEKID: "vault", Policy: testPolicy(2, 2)})
	kv := f.kek("vault").Versions[0]
	if kv.Escrow == nil || kv.Escrow.M != 2 || !slices.Equal(kv.Escrow.Officers, []string{"alice", "bob", "carol"}) {
		t.Fatalf("escrow: %+v", kv.Escrow)
	}
	v, _ := kv.Public("vault")
	rec, err := kv.Escrow.Record()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"alice", "bob", "carol"} {
		if err := kek.VerifyEscrowShare(v, rec, o, f.signer(o)); err != nil {
			t.Errorf("%s verify-share: %v", o, err)
		}
	}
	ctx := wrapkey.Context{"dataset": "vault"}
	blob, err := v.Wrap(nil, ctx, []byte("an old data key"))
	if err != nil {
		t.Fatal(err)
	}
	// Every node HSM loses its sealing key.
	for _, id := range nodes3 {
		if err := kekhsm.Destroy(f.c.Token(id), "vault", 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.reconstitute("vault", 1, "n1", "n2"); !errors.Is(err, kek.ErrShareUnavailable) {
		t.Fatalf("reconstitute with the keys gone: %v", err)
	}
	share := func(o string) []byte {
		sh, err := kek.OpenEscrowShare(v, rec, o, f.signer(o))
		if err != nil {
			t.Fatal(err)
		}
		defer sh.Zeroize()
		b, _ := sh.MarshalBinary()
		return b
	}
	p := f.proposal("alice", ceremony.EscrowRecover{KEKID: "vault", Version: 1, Reason: "all HSMs lost in the fire"})
	f.mustPropose(p, true)
	// Another officer's share under alice's name is refused.
	if err := f.n.HoldEscrowShare(p.ID, "alice", share("bob")); !errors.Is(err, keysvc.ErrBadEscrowShare) {
		t.Fatalf("bob's share as alice's: %v", err)
	}
	if err := f.n.HoldEscrowShare(p.ID, "alice", share("alice")); err != nil {
		t.Fatal(err)
	}
	if err := f.n.HoldEscrowShare(p.ID, "bob", share("bob")); err != nil {
		t.Fatal(err)
	}
	c, err := f.approve("bob", p)
	if err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("recovery: %v, %s %s %s", err, c.Status, c.Code, c.Reason)
	}
	after := f.kek("vault").Versions[0]
	if !bytes.Equal(after.PublicKey, kv.PublicKey) || len(after.Recovered) != 1 || bytes.Equal(after.Commitments, kv.Commitments) {
		t.Fatalf("recovered version: same key %v, recovered %v, new commitments %v",
			bytes.Equal(after.PublicKey, kv.PublicKey), after.Recovered, !bytes.Equal(after.Commitments, kv.Commitments))
	}
	key, err := f.reconstitute("vault", 1, "n1", "n3")
	if err != nil {
		t.Fatal(err)
	}
	defer key.Destroy()
	if dek, err := key.Unwrap(blob, ctx); err != nil || string(dek) != "an old data key" {
		t.Fatalf("old blob after recovery: %q, %v", dek, err)
	}
	// Officers can verify their (same) shares against the new record.
	nrec, _ := after.Escrow.Record()
	nv, _ := after.Public("vault")
	if err := kek.VerifyEscrowShare(nv, nrec, "carol", f.signer("carol")); err != nil {
		t.Errorf("carol after recovery: %v", err)
	}
}

// A recovery without enough escrow shares is refused and changes nothing.
func TestKEKEscrowRecoveryNeedsShares(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	f.mustExecute(ceremony.KEKCreate{KEKID: "vault", Policy: testPolicy(2, 3)})
	before := f.kek("vault").Versions[0]
	c := f.mustRefuse(ceremony.EscrowRecover{KEKID: "vault", Version: 1, Reason: "drill"}, errcode.KEKCreationFailed)
	if !strings.Contains(c.Reason, "escrow shares") {
		t.Errorf("reason: %q", c.Reason)
	}
	if after := f.kek("vault").Versions[0]; !bytes.Equal(after.Commitments, before.Commitments) {
		t.Error("a refused recovery changed the version")
	}
	// The live shares survived the attempt.
	key, err := f.reconstitute("vault", 1, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	key.Destroy()
}

// BenchmarkKEKCreateCeremony: kek.create proposed and approved on a
// 3-node in-memory cluster with fake HSMs: dealing, three seals with signed
// statements, the checks in Apply and the commit. The SoftHSM cluster's
// figure comes from TestKEKLifecycleOnCluster's log (-v).
func BenchmarkKEKCreateCeremony(b *testing.B) {
	c := keysvctest.NewCluster(b, 3, keysvctest.Options{})
	n := c.Leader()
	offs := officertest.New(b, "alice", "bob")
	ctx := context.Background()
	if err := n.Init(ctx, state.Init{Officers: offs.Bundles("alice", "bob"), Quorum: 2, DefaultThreshold: 2}, operatorActor); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := officertest.Proposal(b, "test", "alice", ceremony.KEKCreate{KEKID: fmt.Sprintf("k%d", i), Policy: testPolicy(2, 0)},
			time.Now(), n.Status().StateVersion)
		raw, _ := p.Marshal()
		if _, err := n.Propose(ctx, raw, "alice", offs.Sign("alice", p), officerActor("alice")); err != nil {
			b.Fatal(err)
		}
		c, err := n.Approve(ctx, p.ID, "bob", offs.Sign("bob", p), officerActor("bob"))
		if err != nil || c.Status != state.StatusExecuted {
			b.Fatalf("%v %s %s", err, c.Code, c.Reason)
		}
	}
}

// Two officers approving the same creation at once: one approval executes
// it, the other finds it closed, and the version's shares all still open.
func TestKEKConcurrentApprovals(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	p := f.proposal("alice", ceremony.KEKCreate{KEKID: "k", Policy: testPolicy(2, 0)})
	f.mustPropose(p, true)
	errs := make(chan error, 2)
	for _, who := range []string{"bob", "carol"} {
		go func() {
			_, err := f.approve(who, p)
			errs <- err
		}()
	}
	var refused int
	for range 2 {
		if err := <-errs; err != nil {
			var r *state.CeremonyRefusal
			if !errors.As(err, &r) || r.Code != string(ceremony.CodeClosed) {
				t.Fatalf("approval: %v", err)
			}
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d approvals refused, want 1", refused)
	}
	for _, pair := range [][]string{{"n1", "n2"}, {"n2", "n3"}, {"n1", "n3"}} {
		key, err := f.reconstitute("k", 1, pair...)
		if err != nil {
			t.Fatalf("nodes %v: %v", pair, err)
		}
		key.Destroy()
	}
}

// One node's HSM lost with t = n: the version is unusable until an escrow
// recovery re-deals it, replacing the surviving nodes' shares too.
func TestKEKEscrowRecoveryPartialLoss(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob", "carol")
	f.init(2, "alice", "bob", "carol")
	pol := testPolicy(3, 2)
	f.mustExecute(ceremony.KEKCreate{KEKID: "vault", Policy: pol})
	kv := f.kek("vault").Versions[0]
	v, _ := kv.Public("vault")
	rec, _ := kv.Escrow.Record()
	if err := kekhsm.Destroy(f.c.Token("n3"), "vault", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reconstitute("vault", 1, "n1", "n2", "n3"); !errors.Is(err, kek.ErrShareUnavailable) {
		t.Fatalf("before recovery: %v", err)
	}
	p := f.proposal("alice", ceremony.EscrowRecover{KEKID: "vault", Version: 1, Reason: "n3's HSM failed"})
	f.mustPropose(p, true)
	for _, o := range []string{"alice", "bob"} {
		sh, err := kek.OpenEscrowShare(v, rec, o, f.signer(o))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := sh.MarshalBinary()
		sh.Zeroize()
		if err := f.n.HoldEscrowShare(p.ID, o, b); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := f.approve("bob", p); err != nil || c.Status != state.StatusExecuted {
		t.Fatalf("recovery: %v %s %s", err, c.Code, c.Reason)
	}
	key, err := f.reconstitute("vault", 1, "n1", "n2", "n3")
	if err != nil {
		t.Fatal(err)
	}
	key.Destroy()
}
