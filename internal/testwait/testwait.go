// Package testwait holds the waits tests share: polling until a condition
// holds (For, Until), retrying an operation while a cluster changes leader
// (Retry), and finding the leader of a set of nodes (Leader, Follower). The
// waits fail the test through tb when their time is up; all poll through
// package poll.
package testwait

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/poll"
)

var errNotYet = errors.New("not yet")

// For polls cond every 10ms until it holds, failing the test after timeout.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := poll.Until(ctx, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Until polls cond every 100ms until it returns nil, failing the test with
// cond's last error after timeout. It suits conditions that cost a request.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	if poll.Until(ctx, 100*time.Millisecond, func() error { last = cond(); return last }) != nil {
		tb.Fatalf("%s: not within %v: %v", what, timeout, last)
	}
}

// Retry calls op, with a context bounded by the time left, every 20ms until
// it succeeds, fails with an error retryable does not accept, or timeout
// passes; it returns op's last error. Only for idempotent operations (or
// ones whose duplicates the test tolerates): a failed attempt may still have
// taken effect.
func Retry(timeout time.Duration, retryable func(error) bool, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	poll.Until(ctx, 20*time.Millisecond, func() error {
		if last = op(ctx); last != nil && !retryable(last) {
			return poll.Stop(last)
		}
		return last
	})
	return last
}

// View is what one node says about leadership.
type View struct {
	ID       string // the node's own id
	IsLeader bool   // it says it leads
	Leader   string // the id of the leader it knows, or ""
}

// Leader waits until exactly one of the nodes running returns says it leads
// and every node that knows a leader names that one, and returns it. It
// fails the test after timeout.
func Leader[N any](tb testing.TB, timeout time.Duration, running func() []N, view func(N) View) N {
	tb.Helper()
	var leader N
	For(tb, timeout, "a leader", func() bool {
		nodes := running()
		views := make([]View, len(nodes))
		found := -1
		for i, n := range nodes {
			if views[i] = view(n); views[i].IsLeader {
				if found >= 0 {
					return false
				}
				found = i
			}
		}
		if found < 0 {
			return false
		}
		for _, v := range views {
			if v.Leader != "" && v.Leader != views[found].ID {
				return false
			}
		}
		leader = nodes[found]
		return true
	})
	return leader
}

// Follower waits for the leader as Leader does and returns another running
// node, failing the test if there is none.
func Follower[N comparable](tb testing.TB, timeout time.Duration, running func() []N, view func(N) View) N {
	tb.Helper()
	leader := Leader(tb, timeout, running, view)
	for _, n := range running() {
		if n != leader {
			return n
		}
	}
	tb.Fatal("no follower running")
	var none N
	return none
}
