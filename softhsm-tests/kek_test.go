package softhsmtests

// The KEK lifecycle on a real 3-node cluster (custosd processes, SoftHSM
// tokens, mutual TLS between nodes): create, rotate, legal hold, destroy
// with its certificate, and recovery from officer escrow after every node's
// sealing key is gone.

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

type kekOfficers struct {
	t       *testing.T
	signers map[string]*officer.Signer
	apis    map[string]*client.Client
}

func loadOfficers(t *testing.T, c *devcluster.Cluster) *kekOfficers {
	o := &kekOfficers{t: t, signers: map[string]*officer.Signer{}, apis: map[string]*client.Client{}}
	for _, name := range []string{"alice", "bob"} {
		s := officertest.Load(t, c.OfficerKey(name), c.PassphraseFile())
		cl, err := c.OfficerClient(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		o.signers[name], o.apis[name] = s, cl
	}
	return o
}

// run has alice propose ps and bob approve it, each giving their escrow
// share when shares holds one; it returns the ceremony after bob's approval.
func (o *kekOfficers) run(ps ceremony.Params, shares map[string][]byte) client.Ceremony {
	t := o.t
	t.Helper()
	for try := 0; ; try++ {
		st := waitStatus(t, o.apis["alice"], func(client.Status) bool { return true })
		p := officertest.Proposal(t, st.Cluster, "alice", ps, time.Now(), st.StateVersion)
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sign := func(name string) string { return string(officertest.Sign(t, o.signers[name], p)) }
		cer, err := o.apis["alice"].Propose(bounded(t, 20*time.Second), client.ProposeRequest{Proposal: string(b), Signature: sign("alice"), EscrowShare: shares["alice"]})
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == string(ceremony.CodeSuperseded) && try < 20 {
			time.Sleep(50 * time.Millisecond) // the node that answered the status was behind
			continue
		}
		if err != nil {
			t.Fatalf("propose %s: %v", ps.Operation(), err)
		}
		cer, err = o.apis["bob"].Approve(bounded(t, 30*time.Second), cer.ID, client.ApproveRequest{Officer: "bob", Signature: sign("bob"), EscrowShare: shares["bob"]})
		if err != nil {
			t.Fatalf("approve %s: %v", ps.Operation(), err)
		}
		return cer
	}
}

func (o *kekOfficers) execute(ps ceremony.Params, shares map[string][]byte) client.Ceremony {
	o.t.Helper()
	cer := o.run(ps, shares)
	if cer.Status != state.StatusExecuted {
		o.t.Fatalf("%s: %s %s: %s", ps.Operation(), cer.Status, cer.Code, cer.Reason)
	}
	return cer
}

// kek reads KEK id until ok holds: a read may reach a node that has not
// applied the latest ceremony yet.
func (o *kekOfficers) kek(id string, ok func(client.KEK) bool) client.KEK {
	o.t.Helper()
	var k client.KEK
	poll(o.t, 15*time.Second, "kek "+id, func() error {
		var err error
		if k, err = o.apis["alice"].KEK(bounded(o.t, 10*time.Second), id); err == nil && !ok(k) {
			err = errors.New("not there yet")
		}
		return err
	})
	return k
}

func publicOf(t *testing.T, id string, v client.KEKVersion) *kek.Version {
	t.Helper()
	c, err := threshold.ParseCommitments(v.Commitments)
	if err != nil {
		t.Fatal(err)
	}
	return &kek.Version{ID: id, Version: v.Version, Threshold: v.Threshold, Shares: len(v.Shares), PublicKey: v.PublicKey, Commitments: c}
}

// withToken opens node id's SoftHSM token in this process (the node must
// be stopped) and calls fn with it.
func withToken(t *testing.T, c *devcluster.Cluster, id string, fn func(hsm.Token)) {
	t.Helper()
	cfg, err := nodecfg.Load(c.ConfigPath(id))
	if err != nil {
		t.Fatal(err)
	}
	old, had := os.LookupEnv("SOFTHSM2_CONF")
	os.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf)
	defer func() {
		if had {
			os.Setenv("SOFTHSM2_CONF", old)
		} else {
			os.Unsetenv("SOFTHSM2_CONF")
		}
	}()
	tok, err := pkcs11.Open(pkcs11.Config{Module: cfg.HSM.Module, TokenLabel: cfg.HSM.TokenLabel, PINFile: cfg.HSM.PINFile})
	if err != nil {
		t.Fatalf("open %s's token: %v", id, err)
	}
	defer tok.Close()
	fn(tok)
}

// openShares opens, in each stopped node's HSM, the sealed shares of v as
// recorded in rec.
func openShares(t *testing.T, c *devcluster.Cluster, v *kek.Version, rec client.KEKVersion, sealed map[string][]byte) ([]threshold.Share, []error) {
	var (
		shares []threshold.Share
		errs   []error
	)
	for _, s := range rec.Shares {
		withToken(t, c, s.Node, func(tok hsm.Token) {
			sh, err := kekhsm.OpenShare(tok, v, s.Index, sealed[s.Node])
			if err != nil {
				errs = append(errs, err)
				return
			}
			shares = append(shares, *sh)
		})
	}
	return shares, errs
}

func restart(t *testing.T, c *devcluster.Cluster) {
	t.Helper()
	for _, n := range c.Nodes {
		if err := c.Start(n.ID); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if err := c.WaitReady(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKEKLifecycleOnCluster(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	if err := c.InitOfficers(bounded(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	o := loadOfficers(t, c)
	waitStatus(t, o.apis["alice"], func(st client.Status) bool { return st.Initialized })
	policy := func(escrowM int) ceremony.Policy {
		p := ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute,
			Wrap:   ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}},
			Unwrap: ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}}
		if escrowM > 0 {
			p.Escrow = ceremony.Escrow{Enabled: true, M: escrowM}
		}
		return p
	}

	// Create and rotate: every node seals a share and signs a statement.
	start := time.Now()
	o.execute(ceremony.KEKCreate{KEKID: "payroll", Policy: policy(0)}, nil)
	t.Logf("kek.create ceremony (propose + approve that deals, seals on 3 SoftHSM nodes, commits): %v", time.Since(start))
	o.execute(ceremony.KEKRotate{KEKID: "payroll"}, nil)
	k := o.kek("payroll", func(k client.KEK) bool { return len(k.Versions) == 2 })
	keys, err := o.apis["alice"].NodeKeys(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range k.Versions {
		if len(v.Shares) != 3 || v.State != ledger.KEKActive {
			t.Fatalf("v%d: %+v", v.Version, v)
		}
		for _, s := range v.Shares {
			i := slices.IndexFunc(keys, func(nk ledger.NodeKey) bool { return strings.HasSuffix(nk.Name, "/"+s.Node) })
			if i < 0 {
				t.Fatalf("no key for node %s", s.Node)
			}
			if _, err := ledger.VerifyStatement([]byte(s.Statement), keys[i]); err != nil {
				t.Errorf("v%d node %s: %v", v.Version, s.Node, err)
			}
		}
	}
	v1 := publicOf(t, "payroll", k.Versions[0])
	ctx := wrapkey.Context{"dataset": "payroll"}

	// Legal hold blocks destruction until released.
	o.execute(ceremony.LegalHoldSet{KEKID: "payroll", Reason: "audit 2026"}, nil)
	if cer := o.run(ceremony.KEKDestroy{KEKID: "payroll", Version: 1}, nil); cer.Status != state.StatusRefused || cer.Code != errcode.LegalHold {
		t.Fatalf("destroy under hold: %s %s", cer.Status, cer.Code)
	}
	o.execute(ceremony.LegalHoldRelease{KEKID: "payroll", Reason: "audit done"}, nil)

	// Escrowed KEK, and a blob wrapped to it, for the recovery below.
	o.execute(ceremony.KEKCreate{KEKID: "vault", Policy: policy(2)}, nil)
	vaultRec := o.kek("vault", func(client.KEK) bool { return true }).Versions[0]
	vault := publicOf(t, "vault", vaultRec)
	vaultBlob, err := vault.Wrap(nil, ctx, []byte("vault data key"))
	if err != nil {
		t.Fatal(err)
	}

	// Destroy payroll v1: a certificate with every node's statement.
	o.execute(ceremony.KEKDestroy{KEKID: "payroll", Version: 1}, nil)
	var dc client.DestructionCertificate
	poll(t, 30*time.Second, "a complete destruction certificate", func() error {
		dc, err = o.apis["alice"].DestructionCertificate(bounded(t, 10*time.Second), "payroll", 1)
		if err == nil && !dc.Complete {
			err = errors.New("not complete yet")
		}
		return err
	})
	if len(dc.Holders) != 3 || strings.Join(dc.Approvers, ",") != "alice,bob" {
		t.Fatalf("certificate: %+v", dc)
	}
	for _, h := range dc.Holders {
		i := slices.IndexFunc(keys, func(nk ledger.NodeKey) bool { return strings.HasSuffix(nk.Name, "/"+h.Node) })
		text, err := ledger.VerifyStatement([]byte(h.Statement), keys[i])
		if err != nil || !strings.Contains(text, "kek share destroyed") || !strings.Contains(text, "ceremony "+dc.Ceremony) {
			t.Errorf("node %s destruction statement: %q, %v", h.Node, text, err)
		}
	}
	o.kek("payroll", func(k client.KEK) bool { return k.Versions[0].Shares[0].Sealed == nil })

	// k holds v1's sealed shares as they were committed: the copies in the
	// raft log and snapshots. No node HSM opens any of them any more.
	if err := c.StopAll(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	sealedOf := func(v client.KEKVersion) map[string][]byte {
		m := map[string][]byte{}
		for _, s := range v.Shares {
			m[s.Node] = s.Sealed
		}
		return m
	}
	got, errs := openShares(t, c, v1, k.Versions[0], sealedOf(k.Versions[0]))
	if len(got) != 0 || len(errs) != 3 {
		t.Fatalf("after destroy %d shares opened", len(got))
	}
	for _, err := range errs {
		if !errors.Is(err, kek.ErrShareUnavailable) {
			t.Errorf("open a destroyed share: %v", err)
		}
	}
	for _, n := range c.Nodes {
		withToken(t, c, n.ID, func(tok hsm.Token) {
			labels, err := tok.List()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{kek.Label("payroll", 2), kek.Label("vault", 1)} {
				if !slices.ContainsFunc(labels, func(l hsm.KeyInfo) bool { return l.Label == want }) {
					t.Errorf("node %s lost %s", n.ID, want)
				}
			}
			// Every node HSM loses the vault key: only escrow can bring it back.
			if err := kekhsm.Destroy(tok, "vault", 1); err != nil {
				t.Fatal(err)
			}
		})
	}
	restart(t, c)
	o = loadOfficers(t, c)

	// Recovery from two officers' escrow shares.
	esc, err := (&state.KEKEscrow{Cluster: vaultRec.Escrow.Cluster, M: vaultRec.Escrow.M, Officers: vaultRec.Escrow.Officers,
		Commitments: vaultRec.Escrow.Commitments, Link: vaultRec.Escrow.Link, Sealed: vaultRec.Escrow.Sealed}).Record()
	if err != nil {
		t.Fatal(err)
	}
	shares := map[string][]byte{}
	for _, name := range []string{"alice", "bob"} {
		sh, err := kek.OpenEscrowShare(vault, esc, name, o.signers[name])
		if err != nil {
			t.Fatal(err)
		}
		shares[name], _ = sh.MarshalBinary()
		sh.Zeroize()
	}
	o.execute(ceremony.EscrowRecover{KEKID: "vault", Version: 1, Reason: "every node HSM lost"}, shares)
	recovered := o.kek("vault", func(k client.KEK) bool { return len(k.Versions[0].Recovered) == 1 }).Versions[0]
	if err := c.StopAll(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	nv := publicOf(t, "vault", recovered)
	got, errs = openShares(t, c, nv, recovered, sealedOf(recovered))
	if len(errs) != 0 {
		t.Fatalf("open recovered shares: %v", errs)
	}
	key, err := kek.Reconstitute(nv, got[:2])
	if err != nil {
		t.Fatal(err)
	}
	defer key.Destroy()
	if dek, err := key.Unwrap(vaultBlob, ctx); err != nil || string(dek) != "vault data key" {
		t.Fatalf("old vault blob after recovery: %q, %v", dek, err)
	}
}
