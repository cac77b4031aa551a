package keysvc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

func caller(role identity.Role, name, region string) keysvc.Caller {
	id := identity.Identity{Cluster: "test", Role: role, Name: name, Region: region}
	return keysvc.Caller{ID: id, Actor: ledger.Actor{Identity: id.String(), Role: string(role), Region: region}}
}

// agent signs its requests with a certificate of the "test" cluster's CA.
var (
	agent   = keysvctest.NewClient("test", identity.RoleAgent, "agent-1", "DE")
	agentDE = agent.Caller()
)

func wantKeyOp(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ke *keysvc.KeyOpError
	if !errors.As(err, &ke) || ke.Code != code {
		t.Fatalf("%s: %v, want refusal %s", what, err, code)
	}
	if ke.Entry == 0 {
		t.Errorf("%s: refusal not logged", what)
	}
}

func keyOpPolicy(ttl time.Duration) ceremony.Policy {
	p := testPolicy(2, 0)
	p.ActivationTTL = ttl
	p.Context = []string{"dataset"}
	return p
}

func TestKeyOps(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "payroll", Policy: keyOpPolicy(time.Minute)})
	f.mustExecute(ceremony.KEKCreate{KEKID: "other", Policy: keyOpPolicy(time.Minute)})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	dek := []byte("0123456789abcdef0123456789abcdef")

	w, err := f.n.Wrap(ctx, agentDE, "payroll", c, dek, "req-1")
	if err != nil || w.Version != 1 || w.LogIndex == 0 {
		t.Fatalf("wrap: %+v, %v", w, err)
	}
	// Any node serves an unwrap: a follower activates the key from its own
	// share and a peer's.
	f.c.WaitConverged()
	fol := f.c.Follower()
	got, idx, err := fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, "req-2")
	if err != nil || string(got) != string(dek) || idx <= w.LogIndex {
		t.Fatalf("unwrap: %q %d %v", got, idx, err)
	}
	if _, _, err := fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, "req-3"); err != nil {
		t.Fatal(err)
	}
	if m := fol.Metrics(); m.Activations != 1 || m.KeyCacheHits < 1 || m.CachedKeys != 1 {
		t.Errorf("metrics after two unwraps: %+v activations, %d hits, %d cached", m.Activations, m.KeyCacheHits, m.CachedKeys)
	}
	if es := f.entries(ledger.TypeActivate); len(es) != 1 || es[0].KEKID != "payroll" {
		t.Errorf("activation entries: %+v", es)
	}
	if es := f.entries(ledger.TypeRelease); len(es) != 1 || es[0].Details["to"] != fol.Info().ID || es[0].Details["for"] != agentDE.ID.String() {
		t.Errorf("release entries: %+v", es)
	}

	// Refusals, each logged.
	_, err = f.n.Wrap(ctx, caller(identity.RoleAgent, "agent-1", "FR"), "payroll", c, dek, "")
	wantKeyOp(t, "wrap from FR", err, errcode.RegionDenied)
	_, _, err = fol.Unwrap(ctx, caller(identity.RoleAgent, "agent-1", "FR"), "payroll", c, w.Blob, "")
	wantKeyOp(t, "unwrap from FR", err, errcode.RegionDenied)
	_, _, err = fol.Unwrap(ctx, caller(identity.RoleAuditor, "audit", "DE"), "payroll", c, w.Blob, "")
	wantKeyOp(t, "unwrap by an auditor", err, errcode.AccessDenied)
	_, err = f.n.Wrap(ctx, agentDE, "payroll", wrapkey.Context{"purpose": "x"}, dek, "")
	wantKeyOp(t, "wrap without dataset", err, errcode.ContextMissing)
	_, err = f.n.Wrap(ctx, agentDE, "payroll", c, nil, "")
	wantKeyOp(t, "wrap of nothing", err, errcode.InvalidPlaintext)
	_, err = f.n.Wrap(ctx, agentDE, "nope", c, dek, "")
	wantKeyOp(t, "unknown kek", err, errcode.UnknownKEK)
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("payroll", []byte("not a blob"), c), "payroll", c, []byte("not a blob"), "")
	wantKeyOp(t, "malformed blob", err, errcode.MalformedBlob)
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("other", w.Blob, c), "other", c, w.Blob, "")
	wantKeyOp(t, "blob of another kek", err, errcode.WrongKEK)
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, wrapkey.Context{"dataset": "finance"}), "payroll", wrapkey.Context{"dataset": "finance"}, w.Blob, "")
	wantKeyOp(t, "wrong context", err, errcode.UnwrapFailed)
	tampered := append([]byte(nil), w.Blob...)
	tampered[len(tampered)-1] ^= 1
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("payroll", tampered, c), "payroll", c, tampered, "")
	wantKeyOp(t, "tampered blob", err, errcode.UnwrapFailed)
	if m := fol.Metrics(); m.KeyOpsDenied == 0 {
		t.Error("no denial counted")
	}

	// Datakey, rotation, rewrap.
	plain, dw, err := f.n.DataKey(ctx, agentDE, "payroll", c, false, "")
	if err != nil || len(plain) != 32 {
		t.Fatalf("datakey: %v", err)
	}
	if back, _, err := fol.Unwrap(ctx, agent.Unwrap("payroll", dw.Blob, c), "payroll", c, dw.Blob, ""); err != nil || string(back) != string(plain) {
		t.Fatalf("datakey round trip: %v", err)
	}
	if p, _, err := f.n.DataKey(ctx, agentDE, "payroll", c, true, ""); err != nil || p != nil {
		t.Fatalf("wrapped-only datakey returned a plaintext: %v", err)
	}
	f.mustExecute(ceremony.KEKRotate{KEKID: "payroll"})
	f.c.WaitConverged()
	rw, err := fol.Rewrap(ctx, agent.Rewrap("payroll", w.Blob, c), "payroll", c, w.Blob, "")
	if err != nil || rw.Version != 2 {
		t.Fatalf("rewrap: %+v, %v", rw, err)
	}
	if back, _, err := f.n.Unwrap(ctx, agent.Unwrap("payroll", rw.Blob, c), "payroll", c, rw.Blob, ""); err != nil || string(back) != string(dek) {
		t.Fatalf("unwrap the rewrapped blob: %v", err)
	}
	if w2, err := f.n.Wrap(ctx, agentDE, "payroll", c, dek, ""); err != nil || w2.Version != 2 {
		t.Fatalf("wrap after rotation: %+v, %v", w2, err)
	}

	// Disable v1: refused, and its cached key is purged.
	f.mustExecute(ceremony.KEKDisable{KEKID: "payroll", Version: 1})
	f.c.WaitConverged()
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, "")
	wantKeyOp(t, "unwrap with a disabled version", err, errcode.KEKDisabled)
	keysvctest.WaitFor(t, "the disabled version's key is purged", func() bool {
		return fol.Metrics().CachedKeys <= 1 // v2's, if any
	})
	f.mustExecute(ceremony.KEKDestroy{KEKID: "payroll", Version: 1})
	f.c.WaitConverged()
	_, _, err = fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, "")
	wantKeyOp(t, "unwrap with a destroyed version", err, errcode.KEKDestroyed)

	// Batches: one result per item, one entry per batch (every item's receipt).
	items := []keysvc.WrapItem{{Context: c, Plaintext: dek}, {Context: wrapkey.Context{}, Plaintext: dek}, {Context: c, Plaintext: dek}}
	res := f.n.WrapBatch(ctx, agentDE, "payroll", items, "batch-1")
	if res[0].Err != nil || res[2].Err != nil || res[0].LogIndex == 0 || res[0].LogIndex != res[2].LogIndex {
		t.Fatalf("wrap batch: %+v", res)
	}
	raw, err := f.n.Entries(res[0].LogIndex, 1)
	if err != nil {
		t.Fatal(err)
	}
	if be, err := ledger.ParseEntry(raw[0]); err != nil || be.Details["items"] != "3" || be.Details["ok"] != "2" || be.Details["denied"] != "context_missing:1" {
		t.Errorf("batch entry: %+v, %v", be.Details, err)
	}
	wantKeyOp(t, "batch item without context", res[1].Err, errcode.ContextMissing)
	uitems := []keysvc.UnwrapItem{{Context: c, Blob: res[0].Wrapped.Blob}, {Context: c, Blob: tampered}}
	un := fol.UnwrapBatch(ctx, agent.UnwrapBatch("payroll", uitems), "payroll", uitems, "batch-2")
	if un[0].Err != nil || string(un[0].Plaintext) != string(dek) {
		t.Fatalf("unwrap batch item 0: %+v", un[0])
	}
	wantKeyOp(t, "batch item tampered", un[1].Err, errcode.KEKDestroyed)
}

// Activation per request (TTL 0), too few nodes for the threshold, and a
// peer's own checks before it releases its share.
func TestActivation(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	pol := keyOpPolicy(0)
	pol.Threshold = 3
	f.mustExecute(ceremony.KEKCreate{KEKID: "strict", Policy: pol})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	dek := []byte("0123456789abcdef")
	w, err := f.n.Wrap(ctx, agentDE, "strict", c, dek, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := f.n.Unwrap(ctx, agent.Unwrap("strict", w.Blob, c), "strict", c, w.Blob, ""); err != nil {
			t.Fatal(err)
		}
	}
	if m := f.n.Metrics(); m.Activations != 2 || m.CachedKeys != 0 {
		t.Errorf("ttl 0: %d activations, %d cached, want 2 and 0", m.Activations, m.CachedKeys)
	}
	// t = 3 with a node down: the log still commits, but the shares do not
	// suffice; the refusal is logged.
	var down string
	for _, id := range nodes3 {
		if id != f.n.Info().ID {
			down = id
		}
	}
	f.c.Stop(down)
	_, _, err = f.n.Unwrap(ctx, agent.Unwrap("strict", w.Blob, c), "strict", c, w.Blob, "")
	wantKeyOp(t, "unwrap with a node down and t=3", err, errcode.SharesUnavailable)
}

// No quorum, no unwrap: with the log unable to commit, the operation fails
// and returns no key.
func TestUnwrapFailsClosed(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "k", Policy: keyOpPolicy(time.Minute)})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	w, err := f.n.Wrap(ctx, agentDE, "k", c, []byte("0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.n.Unwrap(ctx, agent.Unwrap("k", w.Blob, c), "k", c, w.Blob, ""); err != nil { // key now cached
		t.Fatal(err)
	}
	leader := f.n.Info().ID
	for _, id := range nodes3 {
		if id != leader {
			f.c.Stop(id)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dek, _, err := f.n.Unwrap(short, agent.Unwrap("k", w.Blob, c), "k", c, w.Blob, "")
	if err == nil || dek != nil {
		t.Fatalf("unwrap without a quorum: %q, %v", dek, err)
	}
	if !errors.Is(err, keysvc.ErrNoQuorum) && !errors.Is(err, keysvc.ErrNotLeader) {
		t.Errorf("unwrap without a quorum: %v, want no quorum or not leader", err)
	}
}

// benchKEK makes a 3-node in-memory cluster with KEK "k" (agents, DE,
// activation TTL 1 minute) for the key-operation benchmarks.
func benchKEK(b *testing.B) *keysvc.Node { return benchKEKTTL(b, time.Minute) }

// benchKEKTTL is benchKEK with the KEK's activation TTL.
func benchKEKTTL(b *testing.B, ttl time.Duration) *keysvc.Node {
	c := keysvctest.NewCluster(b, 3, keysvctest.Options{})
	n := c.Leader()
	offs := officertest.New(b, "alice", "bob")
	ctx := context.Background()
	if err := n.Init(ctx, state.Init{Officers: offs.Bundles("alice", "bob"), Quorum: 2, DefaultThreshold: 2}, operatorActor); err != nil {
		b.Fatal(err)
	}
	p := officertest.Proposal(b, "test", "alice", ceremony.KEKCreate{KEKID: "k", Policy: keyOpPolicy(ttl)}, time.Now(), n.Status().StateVersion)
	raw, _ := p.Marshal()
	if _, err := n.Propose(ctx, raw, "alice", offs.Sign("alice", p), officerActor("alice")); err != nil {
		b.Fatal(err)
	}
	if c, err := n.Approve(ctx, p.ID, "bob", offs.Sign("bob", p), officerActor("bob")); err != nil || c.Status != state.StatusExecuted {
		b.Fatalf("%v %s", err, c.Reason)
	}
	return n
}

// BenchmarkWrap and BenchmarkUnwrap: one operation through the node, log
// entry committed, on the in-memory cluster (parallel callers).
func BenchmarkWrap(b *testing.B) {
	n := benchKEK(b)
	c := wrapkey.Context{"dataset": "hr"}
	dek := make([]byte, 32)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.Wrap(context.Background(), agentDE, "k", c, dek, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUnwrap(b *testing.B) {
	n := benchKEK(b)
	c := wrapkey.Context{"dataset": "hr"}
	w, err := n.Wrap(context.Background(), agentDE, "k", c, make([]byte, 32), "")
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := n.Unwrap(context.Background(), agent.Unwrap("k", w.Blob, c), "k", c, w.Blob, ""); err != nil { // activate once
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := n.Unwrap(context.Background(), agent.Unwrap("k", w.Blob, c), "k", c, w.Blob, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkActivation: unwraps under a KEK with activation TTL 0, so each
// one activates: the kek.activate entry with the signed request, a peer's
// checks and kek.release, the share sealed to this node's KEM key and
// opened, reconstitution, the unwrap and its entry.
func BenchmarkActivation(b *testing.B) {
	n := benchKEKTTL(b, 0)
	c := wrapkey.Context{"dataset": "hr"}
	w, err := n.Wrap(context.Background(), agentDE, "k", c, make([]byte, 32), "")
	if err != nil {
		b.Fatal(err)
	}
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("p%d", par), func(b *testing.B) {
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := n.Unwrap(context.Background(), agent.Unwrap("k", w.Blob, c), "k", c, w.Blob, ""); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkUnwrapBatch100: batches of 100 unwraps (one log entry each);
// the figure that counts is data keys per second (items/s).
func BenchmarkUnwrapBatch100(b *testing.B) {
	n := benchKEK(b)
	c := wrapkey.Context{"dataset": "hr"}
	items := make([]keysvc.UnwrapItem, 100)
	for i := range items {
		w, err := n.Wrap(context.Background(), agentDE, "k", c, make([]byte, 32), "")
		if err != nil {
			b.Fatal(err)
		}
		items[i] = keysvc.UnwrapItem{Context: c, Blob: w.Blob}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, r := range n.UnwrapBatch(context.Background(), agent.UnwrapBatch("k", items), "k", items, "") {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "items/s")
}
