package testwait_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testwait"
)

type node struct {
	id, knows string
	leads     atomic.Bool
}

func view(n *node) testwait.View {
	return testwait.View{ID: n.id, IsLeader: n.leads.Load(), Leader: n.knows}
}

// Leader waits out a moment with two nodes claiming to lead, and a node
// still naming the old leader, then returns the one every node names.
func TestLeaderWaitsForAgreement(t *testing.T) {
	n1, n2, n3 := &node{id: "n1", knows: "n1"}, &node{id: "n2", knows: "n2"}, &node{id: "n3", knows: "n1"}
	n1.leads.Store(true)
	n2.leads.Store(true)
	var polls atomic.Int32
	running := func() []*node {
		if polls.Add(1) == 3 { // the old leader steps down, n3 hears of n2
			n1.leads.Store(false)
			n1.knows, n3.knows = "n2", "n2"
		}
		return []*node{n1, n2, n3}
	}
	if got := testwait.Leader(t, time.Second, running, view); got != n2 {
		t.Fatalf("Leader = %s, want n2", got.id)
	}
	if polls.Load() < 3 {
		t.Fatalf("Leader returned after %d polls, before the nodes agreed", polls.Load())
	}
	if got := testwait.Follower(t, time.Second, running, view); got == n2 {
		t.Fatal("Follower returned the leader")
	}
}

func TestRetry(t *testing.T) {
	errBusy, errFatal := errors.New("busy"), errors.New("refused")
	busy := func(err error) bool { return errors.Is(err, errBusy) }
	n := 0
	if err := testwait.Retry(time.Second, busy, func(context.Context) error {
		if n++; n < 3 {
			return errBusy
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Retry = %v after %d calls, want nil after 3", err, n)
	}
	n = 0
	if err := testwait.Retry(time.Second, busy, func(context.Context) error { n++; return errFatal }); err != errFatal || n != 1 {
		t.Fatalf("Retry of a refusal = %v after %d calls, want it after 1", err, n)
	}
	if err := testwait.Retry(50*time.Millisecond, busy, func(context.Context) error { return errBusy }); err != errBusy {
		t.Fatalf("Retry past its time = %v, want the last error", err)
	}
}
