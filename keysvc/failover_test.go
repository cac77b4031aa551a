package keysvc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// TestPausedLeaderCostsAnElection: a leader that stops answering (paused,
// not dead: forwards to it hang) holds a follower's appends only until the
// follower learns of the next leader, not until the clients' deadline.
// Appends in flight end with ErrNoQuorum (they reached the old leader);
// the next ones commit through the new leader. The clients' deadline here
// is 30 s, so an append that waited for it would show.
func TestPausedLeaderCostsAnElection(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{Paused: true, Configure: func(cfg *keysvc.Config) {
		cfg.AppendTimeout = 30 * time.Second
	}})
	leader := c.Leader()
	var fol *keysvc.Node
	for _, id := range []string{"n1", "n2", "n3"} {
		if n := c.Node(id); n != nil && n != leader {
			fol = n
			break
		}
	}
	// Load through the follower.
	var (
		mu       sync.Mutex
		inflight []error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := fol.Append(ctx, entry(fmt.Sprintf("load-%d-%d", w, i)))
				cancel()
				if err != nil {
					mu.Lock()
					inflight = append(inflight, err)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	paused := time.Now()
	c.Isolate(leader.Info().ID)
	// The first append through the follower that commits after the pause.
	var back time.Duration
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := fol.Append(ctx, entry("probe"))
		cancel()
		if err == nil {
			back = time.Since(paused)
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("an append waited for the client's deadline: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	c.Heal()
	t.Logf("paused leader %s: appends through %s committed again after %v", leader.Info().ID, fol.Info().ID, back.Round(time.Millisecond))
	for _, err := range inflight {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("an append in flight waited for the client's deadline: %v", err)
		}
		if !errors.Is(err, keysvc.ErrNoQuorum) && !errors.Is(err, keysvc.ErrNotLeader) {
			var nl *keysvc.NotLeaderError
			if !errors.As(err, &nl) {
				t.Errorf("an append in flight failed with %v, want no_quorum (outcome unknown) or no_leader", err)
			}
		}
	}
}

// TestLaggingNodeNeverDeniesWhatExists: a follower cut off while a
// ceremony is proposed cannot say the proposal does not exist: CatchUp fails
// with ErrNotCaughtUp (the API answers 503 not_caught_up, not 404). Once it
// reaches the leader again it catches up and finds it; and a key operation
// on a KEK created meanwhile is served, not refused as unknown_kek.
func TestLaggingNodeNeverDeniesWhatExists(t *testing.T) {
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	ctx := ctxT(t, 30*time.Second)
	f.c.WaitConverged()
	fol := f.c.Follower()
	f.c.Isolate(fol.Info().ID)
	p := f.proposal("alice", ceremony.QuorumSet{M: 2})
	f.mustPropose(p, true)
	if _, found, _ := fol.Ceremony(p.ID); found {
		t.Fatal("the isolated follower has the new proposal already")
	}
	if err := fol.CatchUp(ctx); !errors.Is(err, keysvc.ErrNotCaughtUp) {
		t.Fatalf("CatchUp on a cut-off follower: %v, want ErrNotCaughtUp", err)
	}
	f.c.Heal()
	if err := keysvctest.Retry(func(ctx context.Context) error { return fol.CatchUp(ctx) }); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := fol.Ceremony(p.ID); !found {
		t.Fatal("caught up, and still no proposal")
	}
	// A KEK created through the leader is served at once by a follower.
	f.mustExecute(ceremony.KEKCreate{KEKID: "fresh", Policy: keyOpPolicy(time.Minute)})
	if _, err := f.c.Follower().Wrap(ctx, agentDE, "fresh", wrapkey.Context{"dataset": "hr"}, make([]byte, 32), ""); err != nil {
		t.Fatalf("wrap on a follower right after the KEK was created: %v", err)
	}
}

// TestForwardNeverSentIsNoLeader: over the peer channel, an append whose
// forward never reached the leader (it could not be dialled) is
// ErrNotLeader (no_leader: not done, safe to retry), not ErrNoQuorum; once
// a new leader is elected the same node's appends commit through it.
func TestForwardNeverSentIsNoLeader(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{PeerChannel: true})
	leader := c.Leader()
	var fol *keysvc.Node
	for _, id := range []string{"n1", "n2", "n3"} {
		if n := c.Node(id); n != nil && n != leader {
			fol = n
			break
		}
	}
	c.Isolate(leader.Info().ID)
	// Before the followers elect another leader (200 ms here), nothing can
	// reach the old one; the follower tries again every 100 ms, and the
	// client gives up between two tries.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := fol.Append(ctx, entry("unsent"))
	cancel()
	if err == nil {
		t.Skip("a new leader was elected before the append: nothing to check")
	}
	if errors.Is(err, keysvc.ErrNoQuorum) || !errors.Is(err, keysvc.ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an append that never reached the leader: %v, want no_leader (not sent)", err)
	}
	if err := keysvctest.Retry(func(ctx context.Context) error {
		_, err := fol.Append(ctx, entry("after"))
		return err
	}); err != nil {
		t.Fatalf("appends through the follower after the election: %v", err)
	}
}
