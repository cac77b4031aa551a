package audit_test

// Packs exported from a real in-memory cluster (package keysvc, fake HSMs):
// the verifier must accept what the node writes, and catch tampering with it.

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

type liveCluster struct {
	t    *testing.T
	c    *keysvctest.Cluster
	clk  *clock
	offs *officertest.Set
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newLiveCluster(t *testing.T, nodes int) *liveCluster {
	// Entry times start at the wall clock: the clients' signed requests
	// carry wall-clock times, which verify compares with entry times.
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	c := keysvctest.NewCluster(t, nodes, keysvctest.Options{Configure: func(cfg *keysvc.Config) { cfg.Now = clk.Now }})
	return &liveCluster{t: t, c: c, clk: clk, offs: officertest.New(t)}
}

func (l *liveCluster) init(quorum int, names ...string) {
	in := state.Init{Quorum: quorum, DefaultThreshold: 2, Officers: l.offs.Bundles(names...)}
	if err := l.c.Leader().Init(ctxT(l.t), in, operator); err != nil {
		l.t.Fatal(err)
	}
}

// run has proposer propose ps (signed) and the others approve until it closes.
func (l *liveCluster) run(ps ceremony.Params, proposer string, others ...string) state.Ceremony {
	l.t.Helper()
	n := l.c.Leader()
	p := officertest.Proposal(l.t, "test", proposer, ps, l.clk.Now(), n.Status().StateVersion)
	raw, err := p.Marshal()
	if err != nil {
		l.t.Fatal(err)
	}
	sign := func(name string) []byte { return l.offs.Sign(name, p) }
	c, err := n.Propose(ctxT(l.t), raw, proposer, sign(proposer), officerActor(proposer))
	if err != nil {
		l.t.Fatalf("propose %s: %v", p.Operation(), err)
	}
	for _, o := range others {
		if c.Status != state.StatusPending {
			break
		}
		if c, err = n.Approve(ctxT(l.t), p.ID, o, sign(o), officerActor(o)); err != nil {
			l.t.Fatalf("approve %s by %s: %v", p.Operation(), o, err)
		}
	}
	if c.Status != state.StatusExecuted {
		l.t.Fatalf("%s: %s (%s: %s)", p.Operation(), c.Status, c.Code, c.Reason)
	}
	return c
}

// export writes a pack of entries [from, size of the leader's checkpoint)
// from what the node serves, as `custos audit export` would.
func (l *liveCluster) export(from uint64) ([]byte, []byte) {
	l.t.Helper()
	n := l.c.Leader()
	note, err := n.Checkpoint(ctxT(l.t))
	if err != nil {
		l.t.Fatal(err)
	}
	text, _, _ := bytes.Cut(note, []byte("\n\n"))
	cp, err := ledger.ParseCheckpoint(append(text, '\n'))
	if err != nil {
		l.t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := audit.NewWriter(&buf, audit.Header{Cluster: "test", Origin: ledger.Origin("test"), From: from, To: cp.Size})
	if err != nil {
		l.t.Fatal(err)
	}
	must := func(err error) {
		l.t.Helper()
		if err != nil {
			l.t.Fatal(err)
		}
	}
	keys, err := n.NodeKeys()
	must(err)
	var kt bytes.Buffer
	for _, k := range keys {
		b, err := k.MarshalText()
		must(err)
		kt.Write(b)
	}
	must(w.NodeKeys(kt.String()))
	officers, err := n.Officers()
	must(err)
	for _, o := range officers {
		must(w.Officer(audit.Officer{ID: o.ID, Bundle: o.Bundle, Fingerprint: o.Fingerprint}))
	}
	cers, err := n.Ceremonies()
	must(err)
	for _, c := range cers {
		ac := audit.Ceremony{ID: c.ID, Proposal: c.Proposal, Status: c.Status, Proposed: c.Proposed, Closed: c.Closed, Approvals: []audit.Approval{}}
		for _, a := range c.Approvals {
			ac.Approvals = append(ac.Approvals, audit.Approval{Officer: a.Officer, Signature: string(a.Signature), Entry: a.Entry})
		}
		must(w.Ceremony(ac))
	}
	keks, err := n.KEKs()
	must(err)
	for _, k := range keks {
		for _, v := range k.Versions {
			if v.State != ledger.KEKDestroyed {
				continue
			}
			dc, err := n.DestructionCertificate(k.ID, v.Version)
			must(err)
			out := client.DestructionCertificate{Cluster: dc.Cluster, KEKID: dc.KEKID, Version: dc.Version, PublicKey: dc.PublicKey,
				Ceremony: dc.Ceremony, Approvers: dc.Approvers, Destroyed: dc.Destroyed, Complete: dc.Complete,
				EscrowOfficers: dc.EscrowOfficers, EscrowM: dc.EscrowM}
			for _, h := range dc.Holders {
				out.Holders = append(out.Holders, client.DestroyedHolder{Node: h.Node, Attested: h.Attested, Statement: string(h.Statement), Entry: h.Entry})
			}
			must(w.Certificate(out))
		}
	}
	if from > 0 {
		p, err := n.ProveInclusion(from-1, from)
		must(err)
		last, err := n.Entries(from-1, 1)
		must(err)
		f, err := audit.FrontierFromProof(from, last[0], p.Hashes)
		must(err)
		must(w.Frontier(from, f))
	}
	for i := from; i < cp.Size; {
		es, err := n.Entries(i, 500)
		must(err)
		for _, e := range es {
			if i < cp.Size {
				must(w.Entry(i, e))
				i++
			}
		}
	}
	must(w.Checkpoint(note))
	must(w.Close())
	return buf.Bytes(), note
}

// pin makes the trust file of `custos audit checkpoint`.
func (l *liveCluster) pin() *audit.Trust {
	l.t.Helper()
	n := l.c.Leader()
	note, err := n.Checkpoint(ctxT(l.t))
	if err != nil {
		l.t.Fatal(err)
	}
	text, _, _ := bytes.Cut(note, []byte("\n\n"))
	cp, err := ledger.ParseCheckpoint(append(text, '\n'))
	if err != nil {
		l.t.Fatal(err)
	}
	genesis, err := n.Entries(0, 1)
	if err != nil {
		l.t.Fatal(err)
	}
	proof, err := n.ProveInclusion(0, cp.Size)
	if err != nil {
		l.t.Fatal(err)
	}
	keys, err := n.NodeKeys()
	if err != nil {
		l.t.Fatal(err)
	}
	var kt bytes.Buffer
	for _, k := range keys {
		b, _ := k.MarshalText()
		kt.Write(b)
	}
	trust, err := audit.NewTrust("test", genesis[0], proof.Hashes, kt.String(), note)
	if err != nil {
		l.t.Fatal(err)
	}
	return trust
}

func TestVerifyLiveCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster")
	}
	l := newLiveCluster(t, 3)
	l.init(2, "alice", "bob", "carol")
	trust0 := l.pin()

	policy := ceremony.Policy{Threshold: 2, ActivationTTL: 5 * time.Minute,
		Wrap:   ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}},
		Unwrap: ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}}
	l.run(ceremony.KEKCreate{KEKID: "payroll", Policy: policy}, "alice", "bob")
	client := keysvctest.NewClient("test", identity.RoleAgent, "agent-1", "DE")
	agent := client.Caller()
	wc := wrapkey.Context{"dataset": "hr"}
	ctx := ctxT(t)
	w, err := l.c.Leader().Wrap(ctx, agent, "payroll", wc, []byte("0123456789abcdef0123456789abcdef"), "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.c.Leader().Unwrap(ctx, client.Unwrap("payroll", w.Blob, wc), "payroll", wc, w.Blob, "req-2"); err != nil {
		t.Fatal(err)
	}
	l.run(l.offs.Add("dave"), "alice", "bob")
	l.run(ceremony.QuorumSet{M: 3}, "bob", "carol")
	l.run(ceremony.OfficerRemove{ID: "carol"}, "alice", "bob", "dave")
	l.run(ceremony.KEKDestroy{KEKID: "payroll", Version: 1}, "alice", "bob", "dave")
	keysvctest.WaitFor(t, "every node attests the destruction", func() bool {
		dc, err := l.c.Leader().DestructionCertificate("payroll", 1)
		return err == nil && dc.Complete
	})
	n4 := l.c.Start("n4")
	info := n4.Info()
	l.run(info.NodeAdd(), "alice", "bob", "dave")

	pack, _ := l.export(0)
	r := mustVerify(t, pack, trust0, audit.Options{})
	if r.Partial || r.Pinned.Relation != audit.RelationExtends || r.CeremoniesVerified != 6 || r.StatementsVerified != 3 || r.Certificates != 1 {
		t.Fatalf("report: partial %v, relation %s, %d ceremonies, %d statements, %d certificates",
			r.Partial, r.Pinned.Relation, r.CeremoniesVerified, r.StatementsVerified, r.Certificates)
	}
	if r.State.Quorum != 3 || len(r.State.Nodes) != 4 || r.State.StateVersion != l.c.Leader().Status().StateVersion {
		t.Errorf("state: quorum %d, %d nodes, version %d", r.State.Quorum, len(r.State.Nodes), r.State.StateVersion)
	}

	// The next audit starts where this one ended.
	trust1, err := trust0.Advance(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.c.Leader().Unwrap(ctx, client.Unwrap("payroll", w.Blob, wc), "payroll", wc, w.Blob, "req-3"); err == nil {
		t.Error("unwrap with a destroyed version")
	}
	l.run(ceremony.QuorumSet{M: 2}, "alice", "bob", "dave")
	from := r.To
	pack, _ = l.export(from)
	r = mustVerify(t, pack, trust1, audit.Options{})
	if r.Partial || r.From != from || r.CeremoniesVerified != 1 || r.Denied == 0 {
		t.Fatalf("second report: partial %v, from %d, %d ceremonies, %d denied", r.Partial, r.From, r.CeremoniesVerified, r.Denied)
	}

	// Tampering with the real pack: carol's approval forged into the
	// last ceremony's transcript.
	full, _ := l.export(0)
	ls := splitLines(full)
	var c *audit.Ceremony
	last := -1
	for k, li := range ls {
		if !bytes.HasPrefix(li, []byte(`{"t":"ceremony"`)) {
			continue
		}
		rec, err := audit.DecodeRecord("ceremony", li)
		if err != nil {
			t.Fatal(err)
		}
		cr := rec.(*audit.Ceremony)
		if p, err := ceremony.ParseProposal([]byte(cr.Proposal)); err == nil && p.Params == (ceremony.QuorumSet{M: 2}) {
			c, last = cr, k
		}
	}
	if c == nil || len(c.Approvals) != 3 {
		t.Fatalf("no quorum.set 2 ceremony with three approvals: %+v", c)
	}
	c.Approvals[2].Officer = "carol"
	ls[last] = line(t, c)
	_, err = verify(t, joinLines(ls), trust0, audit.Options{})
	wantFailure(t, err, audit.KindAuthorisation, int64(c.Approvals[2].Entry), "says officer carol's approval was accepted here")
}
