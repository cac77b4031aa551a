package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// TestReadYourWrites: every answer names the log size the node knows
// committed; the SDK sends the largest it has seen, and a node that has
// not applied that much answers 503 not_caught_up instead of a stale read,
// then serves once it has caught up.
func TestReadYourWrites(t *testing.T) {
	srv := agentcluster.Serve(t, agentcluster.ServeOptions{Nodes: 3, Forward: true})
	c, urls := srv.Cluster, srv.URL
	e := &env{pki: srv.PKI}
	ctx := context.Background()
	leader := c.Leader()
	ops := e.sdk(t, identity.RoleOperator, "ops", "FR", urls[leader.Info().ID])
	c.WaitConverged()
	lagging := c.Follower()
	c.Isolate(lagging.Info().ID)
	idx, err := ops.Canary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ops.Seen() <= idx {
		t.Fatalf("the client saw log size %d after its write at index %d", ops.Seen(), idx)
	}
	// Another client (another process, say) that carries the size on.
	reader := e.sdk(t, identity.RoleOperator, "ops", "FR", urls[lagging.Info().ID])
	reader.Saw(ops.Seen())
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = reader.Cluster(short)
	cancel()
	wantCode(t, "a read on a node that has not applied the client's write", err, 503, errcode.NotCaughtUp)
	c.Heal()
	c.WaitConverged()
	if _, err := reader.Cluster(ctx); err != nil {
		t.Fatalf("after catching up: %v", err)
	}
}
