// Package keysvctest runs in-memory clusters of keysvc nodes for tests: raft
// on one raft.MemNetwork, a fake HSM per node (kept across restarts), a
// DataDir per node in a test temp directory, fast timeouts, bounded waits,
// and a Forwarder that calls the leader's AppendBatch directly (respecting
// Isolate). Its methods fail the test through tb.
package keysvctest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/peer"
	"github.com/custos-eu/custos/raft"
	"github.com/custos-eu/custos/raft/rafttest"
)

// WaitTimeout bounds every wait in this package.
const WaitTimeout = 15 * time.Second

// regions gives node "nI" a distinct EU region.
var regions = []string{"DE", "FR", "NL", "AT", "BE", "IT", "ES", "SE", "PL"}

// Region returns the region of node id ("n1" is DE, "n2" FR, …; others DE).
func Region(id string) string {
	var i int
	if _, err := fmt.Sscanf(id, "n%d", &i); err == nil && i >= 1 && i <= len(regions) {
		return regions[i-1]
	}
	return "DE"
}

// APIAddr is node id's (fake) API base URL.
func APIAddr(id string) string { return "https://" + id + ".custos.test:8201" }

// Operator is the actor tests use for membership changes.
var Operator = ledger.Actor{Identity: "custos://test/operator/ops?region=DE", Role: "operator", Region: "DE"}

// Options adjust a Cluster. The zero value is a cluster "test" allowing
// the regions of n1..n9.
type Options struct {
	Cluster        string
	AllowedRegions []string
	// Configure adjusts each node's configuration before it is opened.
	Configure func(*keysvc.Config)
	// NoForwarder leaves nodes without a Forwarder.
	NoForwarder bool
	// Paused makes an isolated node behave as a paused process towards the
	// in-process Forwarder: a forward to it hangs until its context ends,
	// instead of failing at once.
	Paused bool
	// PeerChannel keeps each node's own peer channel (keysvc/peer over the
	// in-memory raft network, where each node shows its own id) instead of
	// the in-process Forwarder.
	PeerChannel bool
	// CAs, if set, is the CA pool nodes trust for client request
	// signatures, instead of the cluster name's test CA (CA).
	CAs *x509.CertPool
}

// Cluster is a set of in-memory nodes.
type Cluster struct {
	Net  *raft.MemNetwork
	Name string

	tb   testing.TB
	opts Options

	mu       sync.Mutex
	nodes    map[string]*keysvc.Node
	tokens   map[string]hsm.Token
	dirs     map[string]string
	isolated map[string]bool
	ids      []string
}

// NewCluster starts n nodes "n1".."nN": n1 bootstraps, the others are added
// through the leader. Every node is closed when the test ends.
func NewCluster(tb testing.TB, n int, opts Options) *Cluster {
	tb.Helper()
	if opts.Cluster == "" {
		opts.Cluster = "test"
	}
	if opts.AllowedRegions == nil {
		opts.AllowedRegions = regions
	}
	c := &Cluster{
		Net: raft.NewMemNetwork(), Name: opts.Cluster, tb: tb, opts: opts,
		nodes: map[string]*keysvc.Node{}, tokens: map[string]hsm.Token{},
		dirs: map[string]string{}, isolated: map[string]bool{},
	}
	tb.Cleanup(c.closeAll)
	first := c.Start("n1")
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := first.Bootstrap(ctx); err != nil {
		tb.Fatalf("bootstrap n1: %v", err)
	}
	for i := 2; i <= n; i++ {
		c.Join(fmt.Sprintf("n%d", i))
	}
	c.WaitConverged()
	return c
}

// Config returns the configuration Start uses for node id.
func (c *Cluster) Config(id string) keysvc.Config {
	c.mu.Lock()
	tok := c.tokens[id]
	if tok == nil {
		tok = hsmtest.NewFake()
		c.tokens[id] = tok
	}
	dir := c.dirs[id]
	if dir == "" {
		dir = c.tb.TempDir()
		c.dirs[id] = dir
	}
	c.mu.Unlock()
	cfg := keysvc.Config{
		NodeID:         id,
		Region:         Region(id),
		Cluster:        c.Name,
		DataDir:        dir,
		APIAdvertise:   APIAddr(id),
		Token:          tok,
		CAs:            c.CAs(),
		AllowedRegions: c.opts.AllowedRegions,
		Logger:         rafttest.Logger(),
		Raft: keysvc.RaftTuning{
			Memory:             c.Net,
			HeartbeatTimeout:   500 * time.Millisecond,
			ElectionTimeout:    500 * time.Millisecond,
			LeaderLeaseTimeout: 400 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		},
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

// CAs is the pool nodes trust for client request signatures:
// Options.CAs, or the cluster name's test CA.
func (c *Cluster) CAs() *x509.CertPool {
	if c.opts.CAs != nil {
		return c.opts.CAs
	}
	pool := x509.NewCertPool()
	pool.AddCert(CA(c.Name).Certificate())
	return pool
}

// Token returns node id's fake HSM.
func (c *Cluster) Token(id string) hsm.Token {
	c.Config(id) // creates it if needed
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[id]
}

// Start opens node id (again, after Stop: same DataDir, HSM and raft
// storage). It does not add it to the cluster: see Join.
func (c *Cluster) Start(id string) *keysvc.Node {
	c.tb.Helper()
	n, err := keysvc.Open(c.Config(id))
	if err != nil {
		c.tb.Fatalf("open %s: %v", id, err)
	}
	switch {
	case c.opts.PeerChannel:
	case c.opts.NoForwarder:
		n.SetForwarder(nil)
	default:
		n.SetForwarder(&forwarder{c: c, from: id})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.nodes[id]; !ok && !contains(c.ids, id) {
		c.ids = append(c.ids, id)
	}
	c.nodes[id] = n
	return n
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Join starts node id and adds it through the leader.
func (c *Cluster) Join(id string) *keysvc.Node {
	c.tb.Helper()
	n := c.Start(id)
	info := n.Info()
	if err := Retry(func(ctx context.Context) error { return c.Leader().AddNode(ctx, info, Operator) }); err != nil {
		c.tb.Fatalf("add node %s: %v", id, err)
	}
	return n
}

// Stop closes node id; Start restarts it.
func (c *Cluster) Stop(id string) {
	c.tb.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		c.tb.Fatalf("stop %s: not running", id)
	}
	if err := n.Close(); err != nil {
		c.tb.Errorf("close %s: %v", id, err)
	}
}

func (c *Cluster) closeAll() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = map[string]*keysvc.Node{}
	c.mu.Unlock()
	for _, n := range nodes {
		n.Close()
	}
}

// Isolate cuts node id off the network (raft and forwarding) until Heal.
func (c *Cluster) Isolate(id string) {
	c.mu.Lock()
	c.isolated[id] = true
	c.mu.Unlock()
	c.Net.Isolate(id)
}

// Heal reconnects every isolated node.
func (c *Cluster) Heal() {
	c.mu.Lock()
	clear(c.isolated)
	c.mu.Unlock()
	c.Net.Heal()
}

// Node returns running node id, or nil.
func (c *Cluster) Node(id string) *keysvc.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// IDs returns the IDs of the running nodes, in creation order.
func (c *Cluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.ids {
		if c.nodes[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// Running returns the running nodes that are not isolated, in creation order.
func (c *Cluster) Running() []*keysvc.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*keysvc.Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil && !c.isolated[id] {
			out = append(out, n)
		}
	}
	return out
}

// Leader waits until exactly one running, connected node is leader and the
// others that know a leader name it, and returns it.
func (c *Cluster) Leader() *keysvc.Node {
	c.tb.Helper()
	return testwait.Leader(c.tb, WaitTimeout, c.Running, view)
}

// Follower returns a running, connected node that is not the leader.
func (c *Cluster) Follower() *keysvc.Node {
	c.tb.Helper()
	return testwait.Follower(c.tb, WaitTimeout, c.Running, view)
}

func view(n *keysvc.Node) testwait.View {
	return testwait.View{ID: n.Info().ID, IsLeader: n.IsLeader(), Leader: n.Leader().ID}
}

// WaitConverged waits until every running, connected node has the leader's
// log (same size and root) and is Ready.
func (c *Cluster) WaitConverged() {
	c.tb.Helper()
	leader := c.Leader()
	WaitFor(c.tb, "logs to converge", func() bool {
		want, err := leader.TreeHead()
		if err != nil {
			return false
		}
		for _, n := range c.Running() {
			got, err := n.TreeHead()
			if err != nil || got != want || n.Ready() != nil {
				return false
			}
		}
		return true
	})
}

// Append appends e through the leader, retrying while leadership changes.
// Only for tests that tolerate a duplicate entry when an attempt's outcome
// was unknown.
func (c *Cluster) Append(e ledger.Entry) uint64 {
	c.tb.Helper()
	var idx uint64
	err := Retry(func(ctx context.Context) (err error) {
		idx, err = c.Leader().Append(ctx, e)
		return err
	})
	if err != nil {
		c.tb.Fatalf("append: %v", err)
	}
	return idx
}

// forwarder hands a follower's batch to the leader's AppendBatch, as the
// HTTP layer does over mutual TLS, unless either end is isolated.
type forwarder struct {
	c    *Cluster
	from string
}

// ErrUnreachable is what the test forwarder returns across an isolation.
var ErrUnreachable = errors.New("keysvctest: leader unreachable")

func (f *forwarder) ForwardAppend(ctx context.Context, leaderAPI string, entries []ledger.Entry) (uint64, error) {
	f.c.mu.Lock()
	var target *keysvc.Node
	var targetID string
	for id, n := range f.c.nodes {
		if APIAddr(id) == leaderAPI {
			target, targetID = n, id
		}
	}
	cut := f.c.isolated[f.from] || f.c.isolated[targetID]
	paused := f.c.opts.Paused && f.c.isolated[targetID] && !f.c.isolated[f.from]
	f.c.mu.Unlock()
	if paused {
		<-ctx.Done() // sent, and never answered
		return 0, fmt.Errorf("%w: %s: %w", keysvc.ErrNoQuorum, leaderAPI, ctx.Err())
	}
	if target == nil || cut {
		return 0, fmt.Errorf("%w: %s", ErrUnreachable, leaderAPI)
	}
	return target.AppendBatch(ctx, entries)
}

// LeaderCommit asks the leader at leaderAPI what to apply to have seen
// what it committed.
func (f *forwarder) LeaderCommit(ctx context.Context, leaderAPI string) (uint64, error) {
	n, err := f.peer(leaderAPI)
	if err != nil {
		return 0, err
	}
	return n.AppliedCommit(ctx)
}

// peer returns the running node whose API address is api, unless it or
// the caller is isolated.
func (f *forwarder) peer(api string) (*keysvc.Node, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	for id, n := range f.c.nodes {
		if n.Info().APIAddr == api {
			if f.c.isolated[f.from] || f.c.isolated[id] {
				break
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUnreachable, api)
}

func (f *forwarder) SealShare(ctx context.Context, api string, req keysvc.SealRequest) (keysvc.SealResponse, error) {
	n, err := f.peer(api)
	if err != nil {
		return keysvc.SealResponse{}, err
	}
	return n.SealShare(ctx, f.from, req)
}

func (f *forwarder) DiscardShare(ctx context.Context, api string, req keysvc.DiscardRequest) error {
	n, err := f.peer(api)
	if err != nil {
		return err
	}
	return n.DiscardShare(ctx, f.from, req)
}

func (f *forwarder) ReleaseShare(ctx context.Context, api string, req peer.ReleaseRequest) (peer.ReleaseResponse, error) {
	n, err := f.peer(api)
	if err != nil {
		return peer.ReleaseResponse{}, err
	}
	return n.ReleaseShare(ctx, f.from, req)
}

func (f *forwarder) ForwardAttest(ctx context.Context, api string, req keysvc.AttestRequest) error {
	n, err := f.peer(api)
	if err != nil {
		return err
	}
	return n.Attest(ctx, f.from, req, ledger.Actor{Identity: f.from, Role: "node"})
}

// Retry calls op with a context bounded by the time left until it succeeds,
// fails with an error other than a change of leader or quorum, or
// WaitTimeout passes. Only for operations that are idempotent or whose
// duplicates the test tolerates.
func Retry(op func(ctx context.Context) error) error {
	return testwait.Retry(WaitTimeout, func(err error) bool {
		return errors.Is(err, keysvc.ErrNotLeader) || errors.Is(err, keysvc.ErrNoQuorum) || errors.Is(err, ErrUnreachable)
	}, op)
}

// WaitFor polls cond until it holds, failing the test after WaitTimeout.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testwait.For(tb, WaitTimeout, what, cond)
}
