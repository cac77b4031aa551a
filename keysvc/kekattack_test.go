package keysvc_test

// A compromised node must not be able to shred a live KEK version: not a
// leader with an unapproved "recovery", not a member with discards.

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// A leader with an unapproved escrow.recover proposal (which it could
// record itself) cannot make nodes replace their live keys.
func TestSealNeedsQuorumApproval(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "payroll", Policy: keyOpPolicy(0)})
	f.mustExecute(ceremony.KEKCreate{KEKID: "vault", Policy: func() ceremony.Policy { p := keyOpPolicy(0); p.Escrow = ceremony.Escrow{Enabled: true, M: 2}; return p }()})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	for _, id := range []string{"payroll", "vault"} {
		p := f.proposal("alice", ceremony.EscrowRecover{KEKID: id, Version: 1, Reason: "x"})
		if _, err := f.propose(p, false); err != nil {
			t.Fatal(err)
		}
		f.c.WaitConverged()
		v, shares, err := kek.Deal(rand.Reader, id, 1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		cm, _ := v.Commitments.MarshalBinary()
		leader := f.n.Info().ID
		for i, n := range f.c.Running() {
			enc, _ := shares[i].MarshalBinary()
			// Even with an officer's name and a bogus signature: no quorum.
			_, err := n.SealShare(ctx, leader, keysvc.SealRequest{Proposal: p.ID, Officer: "bob", Signature: []byte("{}"), Dealing: "x",
				KEKID: id, Version: 1, Threshold: 2, PublicKey: v.PublicKey, Commitments: cm, Share: enc})
			if !errors.Is(err, keysvc.ErrSealRefused) {
				t.Fatalf("%s: node %s sealed for an unapproved recovery: %v", id, n.Info().ID, err)
			}
		}
		w, err := f.n.Wrap(ctx, agentDE, id, c, []byte("0123456789abcdef"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.n.Unwrap(ctx, agent.Unwrap(id, w.Blob, c), id, c, w.Blob, ""); err != nil {
			t.Fatalf("%s after the attempt: %v", id, err)
		}
	}
}

// Members that are not the leader cannot discard keys, even while a
// version is being dealt: every committed version still unwraps.
func TestDiscardOnlyFromLeaderForItsDealing(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	ctx := ctxT(t, 60*time.Second)
	for round := range 3 {
		id := "k" + string(rune('a'+round))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, n := range f.c.Running() {
			if n == f.n {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					for _, from := range []string{n.Info().ID, f.n.Info().ID} { // itself, and posing as the leader without the dealing id
						err := n.DiscardShare(context.Background(), from, keysvc.DiscardRequest{KEKID: id, Version: 1, Dealing: "guess"})
						if err == nil {
							t.Errorf("node %s discarded on a request claiming %s", n.Info().ID, from)
						}
					}
				}
			}()
		}
		f.mustExecute(ceremony.KEKCreate{KEKID: id, Policy: keyOpPolicy(0)})
		f.c.WaitConverged()
		close(stop)
		wg.Wait()
		cx := wrapkey.Context{"dataset": "hr"}
		w, err := f.n.Wrap(ctx, agentDE, id, cx, []byte("0123456789abcdef"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.n.Unwrap(ctx, agent.Unwrap(id, w.Blob, cx), id, cx, w.Blob, ""); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}

// An unwrap racing a disable is answered only if its entry precedes the
// disable: one whose entry landed after it is withdrawn, its key withheld.
func TestNoUnwrapAnsweredAfterDisable(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "payroll", Policy: keyOpPolicy(time.Hour)})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	dek := []byte("0123456789abcdef0123456789abcdef")
	w, err := f.n.Wrap(ctx, agentDE, "payroll", c, dek, "")
	if err != nil {
		t.Fatal(err)
	}
	f.c.WaitConverged()
	fol := f.c.Follower()
	if _, _, err := fol.Unwrap(ctx, agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, ""); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var oks []uint64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, i, err := fol.Unwrap(context.Background(), agent.Unwrap("payroll", w.Blob, c), "payroll", c, w.Blob, ""); err == nil {
					mu.Lock()
					oks = append(oks, i)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	cer := f.mustExecute(ceremony.KEKDisable{KEKID: "payroll", Version: 1})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	after := 0
	for _, i := range oks {
		if i > cer.Closed {
			after++
		}
	}
	t.Logf("disable executed at entry %d; %d successful unwraps, %d of them logged after the disable", cer.Closed, len(oks), after)
	if after > 0 {
		t.Errorf("%d plaintexts released with entries after the disable committed", after)
	}
}

// With activation TTL 0 a batch activates each version once, not per item;
// an expired cached key is destroyed, not left beside its successor.
func TestActivationsAreBounded(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "zero", Policy: keyOpPolicy(0)})
	f.mustExecute(ceremony.KEKCreate{KEKID: "short", Policy: keyOpPolicy(time.Second)})
	ctx := ctxT(t, 30*time.Second)
	c := wrapkey.Context{"dataset": "hr"}
	w, err := f.n.Wrap(ctx, agentDE, "zero", c, []byte("0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	items := make([]keysvc.UnwrapItem, 50)
	for i := range items {
		items[i] = keysvc.UnwrapItem{Context: c, Blob: w.Blob}
	}
	before := f.n.Metrics().Activations
	for _, r := range f.n.UnwrapBatch(ctx, agent.UnwrapBatch("zero", items), "zero", items, "") {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := f.n.Metrics().Activations - before; got != 1 {
		t.Errorf("a batch of 50 under ttl 0 activated %d times, want 1", got)
	}
	if m := f.n.Metrics(); m.CachedKeys != 0 {
		t.Errorf("ttl 0 left %d keys cached", m.CachedKeys)
	}
	w, err = f.n.Wrap(ctx, agentDE, "short", c, []byte("0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := f.n.Unwrap(ctx, agent.Unwrap("short", w.Blob, c), "short", c, w.Blob, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if m := f.n.Metrics(); m.CachedKeys > 1 {
		t.Errorf("%d keys cached for one version: expired keys were not destroyed", m.CachedKeys)
	}
}
