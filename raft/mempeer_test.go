// The peer channel on the in-memory network, and state machines that refuse a snapshot,
// in memory and on disk.

package raft_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

func TestMemoryPeerChannel(t *testing.T) {
	revoked := &x509.Certificate{Subject: pkix.Name{CommonName: "revoked"}}
	c := rafttest.NewCluster(t, 3, rafttest.Options{Configure: func(cfg *raft.Config) {
		cfg.VerifyPeer = func(cert *x509.Certificate) error {
			if cert == revoked {
				return errors.New("revoked")
			}
			return nil
		}
	}})
	n1, n2, n3 := c.Node("n1"), c.Node("n2"), c.Node("n3")
	accepted := make(chan *raft.PeerConn, 4)
	go func() {
		for {
			conn, err := n2.PeerListener().Accept()
			if err != nil {
				return
			}
			accepted <- conn.(*raft.PeerConn)
		}
	}()
	ctx := ctxT(t, rafttest.WaitTimeout)

	out, err := n1.DialPeer(ctx, n2.Addr())
	if err != nil {
		t.Fatalf("DialPeer: %v", err)
	}
	in := <-accepted
	if out.PeerID != "n2" || in.PeerID != "n1" {
		t.Errorf("dialler sees %q, listener sees %q", out.PeerID, in.PeerID)
	}
	go out.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}

	// DropPeer closes the connections of that identity only.
	if got := n2.DropPeer("n1"); got != 1 {
		t.Errorf("DropPeer closed %d, want 1", got)
	}
	if _, err := out.Read(buf); err == nil {
		t.Error("dropped connection still open")
	}

	// A node can be made to claim another identity, or hold a certificate that
	// VerifyPeer refuses.
	c.Net.SetPeerIdentity("n3", "n1", nil)
	fake, err := n3.DialPeer(ctx, n2.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	if got := <-accepted; got.PeerID != "n1" {
		t.Errorf("impostor seen as %q", got.PeerID)
	}
	c.Net.SetPeerIdentity("n3", "n3", revoked)
	if _, err := n3.DialPeer(ctx, n2.Addr()); err == nil {
		t.Error("refused certificate dialled")
	}
	if _, err := n1.DialPeer(ctx, "nowhere"); err == nil {
		t.Error("dialled an unknown address")
	}
	c.Net.Isolate("n1")
	if _, err := n1.DialPeer(ctx, n2.Addr()); err == nil {
		t.Error("isolated node dialled")
	}
	c.Net.Heal()
	n2.PeerListener().Close()
	if _, err := n1.DialPeer(ctx, n2.Addr()); err == nil {
		t.Error("dialled a closed peer listener")
	}
}

// refusing is a Chain whose Restore fails while refuse is set, leaving it unchanged.
type refusing struct {
	*rafttest.Chain
	refuse  atomic.Bool
	refused atomic.Int32
}

func (r *refusing) Restore(rd io.Reader) error {
	if r.refuse.Load() {
		r.refused.Add(1)
		return errors.New("snapshot refused by the state machine")
	}
	return r.Chain.Restore(rd)
}

// A state machine's Restore error refuses a leader's snapshot: the follower's state,
// applied index and log stay as they were, the cluster goes on, and the follower
// catches up once it accepts.
func TestRestoreErrorLeavesStateUnchanged(t *testing.T) {
	n3 := &refusing{Chain: rafttest.NewChain()}
	c := rafttest.NewCluster(t, 3, rafttest.Options{
		NewStateMachine: func(id string) raft.StateMachine {
			if id == "n3" {
				return n3
			}
			return rafttest.NewChain()
		},
		Configure: func(cfg *raft.Config) { cfg.TrailingLogs = 2 },
	})
	c.Apply("first")
	rafttest.WaitFor(t, "n3 to apply", func() bool { return n3.Head() == chainHead("first") })
	if c.Leader().ID() == "n3" {
		t.Skip("n3 leads; the test needs it to follow")
	}
	node := c.Node("n3")
	c.Net.Isolate("n3")
	cmds := []string{"first"}
	for i := range 10 {
		cmds = append(cmds, fmt.Sprintf("c-%d", i))
		c.Apply(cmds[len(cmds)-1])
	}
	if err := c.Leader().Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatal(err)
	}
	before := node.Stats()
	entries := n3.Len()
	n3.refuse.Store(true)
	c.Net.Heal()
	rafttest.WaitFor(t, "n3 to refuse the snapshot", func() bool { return n3.refused.Load() > 0 })
	c.Apply("while refusing")
	cmds = append(cmds, "while refusing")
	st := node.Stats()
	if n3.Len() != entries || n3.Restores() != 0 || st.AppliedIndex != before.AppliedIndex {
		t.Fatalf("after a refused restore: %d entries (had %d), %d restores, applied %d (was %d)",
			n3.Len(), entries, n3.Restores(), st.AppliedIndex, before.AppliedIndex)
	}
	t.Logf("n3 after refusing: last snapshot index %d (was %d), applied %d", st.LastSnapshotIndex, before.LastSnapshotIndex, st.AppliedIndex)
	n3.refuse.Store(false)
	rafttest.WaitFor(t, "n3 to catch up", func() bool { return n3.Head() == chainHead(cmds...) })
	if n3.Restores() == 0 {
		t.Error("n3 caught up without the snapshot")
	}
}

// On disk, a leader's snapshot refused by Restore is removed again: it is not the
// follower's latest snapshot, and a restart does not trip over it.
func TestTCPRefusedSnapshotRemoved(t *testing.T) {
	c := newTCPClusterWith(t, 3, func(cfg *raft.Config) { cfg.TrailingLogs = 2 })
	c.apply("first")
	var victim *tcpNode
	for _, tn := range c.running() {
		if !tn.node.IsLeader() {
			victim = tn
		}
	}
	var sm *refusing
	c.wrap = func(id string, ch *rafttest.Chain) raft.StateMachine {
		if id != victim.id {
			return ch
		}
		sm = &refusing{Chain: ch}
		sm.refuse.Store(true)
		return sm
	}
	c.stop(victim)
	cmds := []string{"first"}
	for i := range 6 {
		cmds = append(cmds, fmt.Sprintf("c-%d", i))
		c.apply(cmds[len(cmds)-1])
	}
	if err := c.leader().node.Snapshot(ctxT(t, rafttest.WaitTimeout)); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	rafttest.WaitFor(t, "the follower to refuse the snapshot", func() bool { return sm.refused.Load() > 1 })
	if st := victim.node.Stats(); st.LastSnapshotIndex != 0 || sm.Restores() != 0 {
		t.Fatalf("after refusing: last snapshot index %d, %d restores; want 0, 0", st.LastSnapshotIndex, sm.Restores())
	}
	c.stop(victim)
	c.start(victim) // a fresh refusing state machine: still no snapshot to trip over
	if sm.Restores() != 0 {
		t.Fatal("refused snapshot restored at start")
	}
	sm.refuse.Store(false)
	c.waitHead(chainHead(cmds...))
}
