// Behaviour of a cluster on the in-memory network: replication, leader changes, errors,
// snapshots, membership.

package raft_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func chainHead(cmds ...string) [32]byte {
	var h [32]byte
	for _, c := range cmds {
		h = sha256.Sum256(append(h[:], c...))
	}
	return h
}

func TestReplicate(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	var cmds []string
	for i := range 50 {
		cmd := fmt.Sprintf("cmd-%d", i)
		cmds = append(cmds, cmd)
		res := c.Apply(cmd)
		if want := chainHead(cmds...); string(res) != string(want[:]) {
			t.Fatalf("apply %d: result %x, want head %x", i, res, want)
		}
	}
	c.WaitConverged()
	for _, n := range c.Running() {
		ch := c.Chain(n.ID())
		if ch.Len() != 50 || ch.Head() != chainHead(cmds...) {
			t.Errorf("%s: %d entries, head %x; want 50, %x", n.ID(), ch.Len(), ch.Head(), chainHead(cmds...))
		}
	}
}

func TestFollowerNotLeader(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	f := c.Follower()
	ctx := ctxT(t, rafttest.WaitTimeout)

	_, err := f.Apply(ctx, []byte("on follower"))
	var nle *raft.NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("follower Apply: %v, want *NotLeaderError", err)
	}
	if nle.LeaderID != leader.ID() || nle.LeaderAddr != leader.Addr() {
		t.Errorf("NotLeaderError names %q at %q, want %q at %q", nle.LeaderID, nle.LeaderAddr, leader.ID(), leader.Addr())
	}
	for name, op := range map[string]func() error{
		"Barrier":      func() error { return f.Barrier(ctx) },
		"AddVoter":     func() error { return f.AddVoter(ctx, "n9", "n9") },
		"RemoveServer": func() error { return f.RemoveServer(ctx, leader.ID()) },
	} {
		if err := op(); !errors.Is(err, raft.ErrNotLeader) {
			t.Errorf("follower %s: %v, want ErrNotLeader", name, err)
		}
	}
	c.Apply("after")
	c.WaitConverged()
	if ch := c.Chain(f.ID()); ch.Contains([]byte("on follower")) || ch.Len() != 1 {
		t.Errorf("follower chain has %d entries (%q); want only the leader's command", ch.Len(), ch.Entries())
	}
}

func TestLeaderFailover(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.Apply("a")
	old := c.Leader()
	changed := c.Follower().LeaderChanged()
	c.Stop(old.ID())

	select {
	case <-changed:
	case <-time.After(rafttest.WaitTimeout):
		t.Fatal("LeaderChanged did not fire after the leader stopped")
	}
	if nl := c.Leader(); nl.ID() == old.ID() {
		t.Fatalf("leader is still %s", old.ID())
	}
	c.Apply("b")

	c.Start(old.ID()) // fresh state machine, stored log
	c.WaitConverged()
	if ch := c.Chain(old.ID()); ch.Head() != chainHead("a", "b") {
		t.Errorf("restarted %s has %q, want [a b]", old.ID(), ch.Entries())
	}
}

func TestCommandError(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	ctx := ctxT(t, rafttest.WaitTimeout)
	res, err := c.Leader().Apply(ctx, []byte(rafttest.RejectPrefix+"x"))
	var ce *raft.CommandError
	if !errors.As(err, &ce) || !errors.Is(err, rafttest.ErrRejected) {
		t.Fatalf("Apply of a rejected command: %v, want *CommandError wrapping ErrRejected", err)
	}
	if ce.Index == 0 || res != nil {
		t.Errorf("CommandError index %d, result %x; want a log index and no result", ce.Index, res)
	}
	for _, e := range []error{raft.ErrNotLeader, raft.ErrNoQuorum, raft.ErrLeadershipLost, raft.ErrShutdown} {
		if errors.Is(err, e) {
			t.Errorf("application error also matches %v", e)
		}
	}
	c.Apply("ok")
	c.WaitConverged()
	for _, n := range c.Running() {
		if ch := c.Chain(n.ID()); ch.Len() != 1 || ch.Head() != chainHead("ok") {
			t.Errorf("%s: %q, want [ok]", n.ID(), ch.Entries())
		}
	}
}

func TestSnapshotInstall(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{Configure: func(cfg *raft.Config) {
		cfg.TrailingLogs = 4
		cfg.SnapshotThreshold = 8
	}})
	var cmds []string
	for i := range 40 {
		cmds = append(cmds, fmt.Sprintf("s-%d", i))
		c.Apply(cmds[i])
	}
	leader := c.Leader()
	if err := leader.Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if st := leader.Stats(); st.LastSnapshotIndex < 40 {
		t.Fatalf("last snapshot index %d, want ≥ 40", st.LastSnapshotIndex)
	}

	// The leader kept 4 entries after the snapshot: n4 can only catch up from it.
	c.Join("n4")
	cmds = append(cmds, "after-join")
	c.Apply("after-join")
	c.WaitConverged()
	n4 := c.Chain("n4")
	if n4.Restores() == 0 {
		t.Error("n4 caught up without installing a snapshot")
	}
	if n4.Head() != chainHead(cmds...) {
		t.Errorf("n4 has %d entries, want %d", n4.Len(), len(cmds))
	}

	// A node restarted with a snapshot in its store restores it before Open returns.
	f := c.Follower()
	if err := f.Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatalf("follower snapshot: %v", err)
	}
	c.Stop(f.ID())
	c.Start(f.ID())
	if ch := c.Chain(f.ID()); ch.Restores() != 1 || ch.Len() < 40 {
		t.Errorf("restarted %s: %d restores, %d entries right after Open; want 1, ≥ 40", f.ID(), ch.Restores(), ch.Len())
	}
	c.WaitConverged()
}

func TestMembership(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	f := c.Follower()
	if err := leader.RemoveServer(ctxT(t, rafttest.WaitTimeout), f.ID()); err != nil {
		t.Fatalf("remove %s: %v", f.ID(), err)
	}
	servers, err := leader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 {
		t.Fatalf("servers after remove: %+v", servers)
	}
	for _, s := range servers {
		if s.ID == f.ID() || s.Nonvoter {
			t.Errorf("unexpected server %+v", s)
		}
	}
	c.Stop(f.ID())
	c.Apply("two nodes")

	c.Join("n4")
	c.WaitConverged()
	if servers, _ := c.Leader().Servers(); len(servers) != 3 {
		t.Errorf("servers after join: %+v", servers)
	}
	if ch := c.Chain("n4"); !ch.Contains([]byte("two nodes")) {
		t.Error("n4 missing the command applied before it joined")
	}
}

// An isolated leader's command never reports success and never reaches the state.
func TestIsolatedLeader(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.Apply("before")
	old := c.Leader()
	c.Net.Isolate(old.ID())

	bound := 3 * time.Second
	start := time.Now()
	res, err := old.Apply(ctxT(t, bound), []byte("lost"))
	if err == nil {
		t.Fatalf("isolated leader reported success (%x)", res)
	}
	if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNoQuorum) && !errors.Is(err, raft.ErrNotLeader) {
		t.Errorf("isolated leader: %v, want ErrLeadershipLost, ErrNoQuorum or ErrNotLeader", err)
	}
	if el := time.Since(start); el > bound+2*time.Second {
		t.Errorf("Apply returned after %v, bound was %v", el, bound)
	}

	var nl *raft.Node
	rafttest.WaitFor(t, "a new leader among the others", func() bool {
		for _, n := range c.Running() {
			if n != old && n.IsLeader() {
				nl = n
				return true
			}
		}
		return false
	})
	if _, err := nl.Apply(ctxT(t, rafttest.WaitTimeout), []byte("after")); err != nil {
		t.Fatalf("apply on new leader: %v", err)
	}
	c.Net.Heal()
	c.WaitConverged()
	for _, n := range c.Running() {
		ch := c.Chain(n.ID())
		if ch.Contains([]byte("lost")) || ch.Head() != chainHead("before", "after") {
			t.Errorf("%s: %q, want [before after]", n.ID(), ch.Entries())
		}
	}
}

func TestMemoryQuorumLoss(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	for _, n := range c.Running() {
		if n != leader {
			c.Stop(n.ID())
		}
	}
	bound := 2 * time.Second
	start := time.Now()
	res, err := leader.Apply(ctxT(t, bound), []byte("no quorum"))
	if err == nil {
		t.Fatalf("Apply without quorum succeeded (%x)", res)
	}
	if el := time.Since(start); el > bound+2*time.Second {
		t.Errorf("Apply returned after %v, bound was %v", el, bound)
	}
	t.Logf("first Apply: %v", err)
	// Once stepped down, the node knows no leader and waits for one until the deadline.
	if _, err := leader.Apply(ctxT(t, 500*time.Millisecond), []byte("still none")); !errors.Is(err, raft.ErrNoQuorum) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Apply: %v, want ErrNoQuorum and DeadlineExceeded", err)
	}
	if ch := c.Chain(leader.ID()); ch.Len() != 0 {
		t.Errorf("state changed without quorum: %q", ch.Entries())
	}
}

func TestBootstrapAndShutdown(t *testing.T) {
	c := rafttest.NewCluster(t, 1, rafttest.Options{})
	n := c.Leader()
	if err := n.Bootstrap(nil); !errors.Is(err, raft.ErrBootstrapped) {
		t.Errorf("second Bootstrap: %v, want ErrBootstrapped", err)
	}
	c.Apply("x")
	if err := n.Barrier(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Errorf("barrier: %v", err)
	}
	if st := n.Stats(); st.State != "Leader" || st.LeaderID != n.ID() || st.AppliedIndex < st.CommitIndex || st.CommitIndex == 0 {
		t.Errorf("stats %+v", st)
	}
	changed := n.LeaderChanged()
	c.Stop(n.ID())
	if err := n.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Error("LeaderChanged not closed by shutdown")
	}
	if _, err := n.Apply(ctxT(t, time.Second), []byte("y")); !errors.Is(err, raft.ErrShutdown) {
		t.Errorf("Apply after Shutdown: %v, want ErrShutdown", err)
	}
	if st := n.Stats(); st.State != "Shutdown" {
		t.Errorf("state after Shutdown: %q", st.State)
	}
}
