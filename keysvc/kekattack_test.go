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
		if _, _, err := f.n.Unwrap(ctx, agentDE, id, c, w.Blob, ""); err != nil {
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
		if _, _, err := f.n.Unwrap(ctx, agentDE, id, cx, w.Blob, ""); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}
