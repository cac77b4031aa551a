// Package rafttest runs in-memory raft clusters for tests: nodes of package raft on one
// raft.MemNetwork, with fast timeouts, bounded waits and cleanup through testing.TB.
// Chain is a small deterministic state machine to replicate.
package rafttest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/raft"
)

// WaitTimeout bounds every wait in this package.
const WaitTimeout = 10 * time.Second

// Options adjust a Cluster. The zero value runs Chain state machines.
type Options struct {
	// NewStateMachine returns the state machine for a node being opened (again, after a
	// restart). Default: a fresh Chain.
	NewStateMachine func(id string) raft.StateMachine
	// Configure adjusts each node's configuration before it is opened.
	Configure func(*raft.Config)
}

// Cluster is a set of in-memory nodes. Its methods fail the test through tb on error
// and are safe for concurrent use.
type Cluster struct {
	tb   testing.TB
	opts Options
	Net  *raft.MemNetwork

	mu    sync.Mutex
	nodes map[string]*raft.Node
	sms   map[string]raft.StateMachine
	ids   []string // in creation order
}

// NewCluster opens n nodes "n1".."nN", bootstraps them as voters and waits for a leader.
// Every node is shut down when the test ends.
func NewCluster(tb testing.TB, n int, opts Options) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, opts: opts, Net: raft.NewMemNetwork(), nodes: map[string]*raft.Node{}, sms: map[string]raft.StateMachine{}}
	tb.Cleanup(c.shutdownAll)
	var servers []raft.Server
	for i := 1; i <= n; i++ {
		node := c.Start(fmt.Sprintf("n%d", i))
		servers = append(servers, raft.Server{ID: node.ID(), Addr: node.Addr()})
	}
	if err := c.Node("n1").Bootstrap(servers); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	c.Leader()
	return c
}

// Config returns the configuration Start uses for node id: fast timeouts suited to an
// in-memory network under the race detector, then Options.Configure.
func (c *Cluster) Config(id string) raft.Config {
	cfg := raft.Config{
		ID:                 id,
		Memory:             c.Net,
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Logger:             Logger(),
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

// Start opens node id (again, if it was stopped: it restarts from the network's stored
// state with a fresh state machine). It does not add it to the cluster: see Join.
func (c *Cluster) Start(id string) *raft.Node {
	c.tb.Helper()
	sm := raft.StateMachine(NewChain())
	if c.opts.NewStateMachine != nil {
		sm = c.opts.NewStateMachine(id)
	}
	node, err := raft.Open(c.Config(id), sm)
	if err != nil {
		c.tb.Fatalf("open %s: %v", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sms[id]; !ok {
		c.ids = append(c.ids, id)
	}
	c.nodes[id], c.sms[id] = node, sm
	return node
}

// Join starts node id and adds it as a voter through the leader.
func (c *Cluster) Join(id string) *raft.Node {
	c.tb.Helper()
	node := c.Start(id)
	if err := Retry(func(ctx context.Context) error { return c.Leader().AddVoter(ctx, id, node.Addr()) }); err != nil {
		c.tb.Fatalf("add voter %s: %v", id, err)
	}
	return node
}

// Stop shuts node id down; Start restarts it.
func (c *Cluster) Stop(id string) {
	c.tb.Helper()
	c.mu.Lock()
	node := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if node == nil {
		c.tb.Fatalf("stop %s: not running", id)
	}
	if err := node.Shutdown(); err != nil {
		c.tb.Errorf("shutdown %s: %v", id, err)
	}
}

// Node returns running node id, or nil.
func (c *Cluster) Node(id string) *raft.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// StateMachine returns node id's current state machine.
func (c *Cluster) StateMachine(id string) raft.StateMachine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

// Chain returns node id's state machine as a *Chain (the default).
func (c *Cluster) Chain(id string) *Chain {
	c.tb.Helper()
	ch, ok := c.StateMachine(id).(*Chain)
	if !ok {
		c.tb.Fatalf("state machine of %s is %T, not *Chain", id, c.StateMachine(id))
	}
	return ch
}

// Running returns the running nodes in creation order.
func (c *Cluster) Running() []*raft.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*raft.Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader waits until the running nodes that know a leader all name the same running
// node, which says it is leader, and returns it.
func (c *Cluster) Leader() *raft.Node {
	c.tb.Helper()
	return testwait.Leader(c.tb, WaitTimeout, c.Running, view)
}

// Follower returns a running node that is not the leader.
func (c *Cluster) Follower() *raft.Node {
	c.tb.Helper()
	return testwait.Follower(c.tb, WaitTimeout, c.Running, view)
}

func view(n *raft.Node) testwait.View {
	id, _ := n.Leader()
	return testwait.View{ID: n.ID(), IsLeader: n.IsLeader(), Leader: id}
}

// WaitConverged waits until every running node's Chain has the leader's head and length.
func (c *Cluster) WaitConverged() {
	c.tb.Helper()
	WaitFor(c.tb, "chains to converge", func() bool {
		var want *Chain
		for _, n := range c.Running() {
			ch := c.Chain(n.ID())
			if want == nil {
				want = ch
				continue
			}
			if ch.Head() != want.Head() || ch.Len() != want.Len() {
				return false
			}
		}
		return true
	})
}

// Apply proposes cmd on the leader, failing the test on error, and returns the result.
// It retries while leadership changes (Chain ignores a command applied twice).
func (c *Cluster) Apply(cmd string) []byte {
	c.tb.Helper()
	var res []byte
	err := Retry(func(ctx context.Context) (err error) {
		res, err = c.Leader().Apply(ctx, []byte(cmd))
		return err
	})
	if err != nil {
		c.tb.Fatalf("apply %q: %v", cmd, err)
	}
	return res
}

// Retry calls op, with a context bounded by the time left, until it succeeds, fails
// with an error other than a change of leader or quorum, or WaitTimeout passes. Only
// for idempotent operations: a failed attempt may still have taken effect.
func Retry(op func(ctx context.Context) error) error {
	return testwait.Retry(WaitTimeout, func(err error) bool {
		return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNoQuorum)
	}, op)
}

func (c *Cluster) shutdownAll() {
	for _, n := range c.Running() {
		if err := n.Shutdown(); err != nil {
			c.tb.Errorf("shutdown %s: %v", n.ID(), err)
		}
	}
}

// WaitFor polls cond until it holds, failing the test after WaitTimeout.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testwait.For(tb, WaitTimeout, what, cond)
}

// Logger returns the logger for test nodes: warnings and errors on stderr when tests run
// with -v, nothing otherwise (raft is noisy when tests kill nodes on purpose).
func Logger() *slog.Logger {
	if testing.Testing() && testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}
