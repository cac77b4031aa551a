// Node: one member of the cluster, its storage and transport, and an API that returns
// results rather than raft futures.

package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

const (
	retainSnapshots = 2   // snapshots kept in DataDir/snapshots
	logCacheSize    = 512 // recent log entries kept in memory for replication
	maxPool         = 3   // pooled outbound connections per peer
)

// Server is a member of the cluster configuration.
type Server struct {
	ID       string
	Addr     string
	Nonvoter bool // receives the log but does not vote or count towards a quorum
}

// Stats is a point-in-time view of a node, for health checks and metrics.
type Stats struct {
	State             string // "Follower", "Candidate", "Leader" or "Shutdown"
	Term              uint64
	LeaderID          string // empty if no leader is known
	LeaderAddr        string
	LastLogIndex      uint64    // last index in the log or latest snapshot
	CommitIndex       uint64    // last index known committed
	AppliedIndex      uint64    // last index handed to the state machine
	LastSnapshotIndex uint64    // index of the latest snapshot on this node, 0 if none
	LastContact       time.Time // when this node last heard from a leader (on followers); zero if never
	// TLSRejected counts inbound connections refused at or before the TLS handshake: a
	// handshake that failed, or did not begin within Config.FirstBytesTimeout, or a
	// connection over its address's cap (also counted in TLSOverIPCap).
	TLSRejected uint64
	// TLSOverIPCap counts inbound connections closed unread at accept because their IP
	// address already had Config.MaxHandshakesPerIP handshakes in progress.
	TLSOverIPCap uint64
	// RPCRejected counts inbound raft connections dropped because an RPC failed a check:
	// it claimed another node's id or an address not its own (see Config.PeerID), was
	// malformed, or was an InstallSnapshot refused (also counted in SnapshotRefused).
	RPCRejected     uint64
	SnapshotRefused uint64 // InstallSnapshot RPCs refused: sender not a voter, or Config.AcceptSnapshot
}

// Node is a running raft member. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	raft   *hraft.Raft
	trans  hraft.Transport
	snaps  *snapshotStore
	stream *tlsStream            // nil in memory
	bolt   *raftboltdb.BoltStore // nil in memory
	links  *linkSet              // established connections, for DropPeer and ReverifyPeers
	peers  *peerListener
	guard  *rpcGuard
	ready  atomic.Pointer[hraft.Raft] // raft, once running: read by the RPC checks
	down   atomic.Bool                // Shutdown called

	observer *hraft.Observer
	obsCh    chan hraft.Observation
	obsStop  chan struct{}
	obsDone  chan struct{}
	mu       sync.Mutex
	changed  chan struct{} // closed at the next leadership change

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open validates cfg, opens (or creates) the node's storage, starts listening and runs
// raft. A node with existing state rejoins its cluster; a new one waits to be
// bootstrapped or added by a leader. If a snapshot exists, sm.Restore is called with it
// before Open returns; committed log entries after it are applied once the node learns
// the commit index from a leader.
func Open(cfg Config, sm StateMachine) (*Node, error) {
	if sm == nil {
		return nil, errors.New("raft: nil StateMachine")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger,
		obsCh:   make(chan hraft.Observation, 16),
		obsStop: make(chan struct{}),
		obsDone: make(chan struct{}),
		changed: make(chan struct{}),
		links:   newLinkSet(),
	}
	n.guard = &rpcGuard{
		log:            cfg.Logger,
		bind:           cfg.PeerID != nil,
		addrOf:         n.addrOf,
		acceptSnapshot: n.acceptSnapshot,
	}
	var (
		logs   hraft.LogStore
		stable hraft.StableStore
	)
	if cfg.Memory != nil {
		n.peers = newPeerListener(advertiseAddr(cfg.Addr))
		trans, st, err := cfg.Memory.join(cfg.ID, cfg.Addr, n.peers, n.links, cfg.VerifyPeer)
		if err != nil {
			return nil, err
		}
		n.trans, logs, stable = trans, st.logs, st.logs
		n.snaps = newSnapshotStore(st.snaps, n.log, nil)
	} else if err := n.openDisk(cfg, &logs, &stable); err != nil {
		n.closeResources()
		return nil, err
	}
	r, err := hraft.NewRaft(cfg.raftConfig(), &fsm{sm: sm, log: n.log, snaps: n.snaps}, logs, stable, n.snaps, n.trans)
	if err != nil {
		n.closeResources()
		return nil, fmt.Errorf("raft: start %q: %w", cfg.ID, err)
	}
	n.raft = r
	n.ready.Store(r)
	n.observer = hraft.NewObserver(n.obsCh, true, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.LeaderObservation, hraft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	go n.observe()
	n.log.Info("raft: node open", "config", cfg, "addr", n.Addr())
	return n, nil
}

// openDisk opens the bbolt log and stable store, the file snapshot store and the TLS
// transport for cfg.
func (n *Node) openDisk(cfg Config, logs *hraft.LogStore, stable *hraft.StableStore) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("raft: data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		// Timeout: fail, not hang, if the file is locked. The freelist is not
		// synced (rebuilt on open) and kept as a map: with bbolt's defaults each
		// commit rewrites the whole freelist, which grows with the log's churn.
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("raft: open %s: locked by another process (is another node using this DataDir?): %w", path, err)
	} else if err != nil {
		return fmt.Errorf("raft: open %s: %w", path, err)
	}
	n.bolt = bolt
	cache, err := hraft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		return fmt.Errorf("raft: log cache: %w", err)
	}
	*logs, *stable = cache, bolt
	files, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, newHCLogger(n.log, "raft-snapshot"))
	if err != nil {
		return fmt.Errorf("raft: snapshot store: %w", err)
	}
	n.snaps = newSnapshotStore(files, n.log, func(id string) error {
		// FileSnapshotStore keeps snapshot id in DataDir/snapshots/id.
		if id == "" || id != filepath.Base(id) || id == "." || id == ".." {
			return fmt.Errorf("unexpected snapshot id %q", id)
		}
		return os.RemoveAll(filepath.Join(cfg.DataDir, "snapshots", id))
	})
	n.stream, err = newTLSStream(cfg, n.links, n.guard)
	if err != nil {
		return err
	}
	n.peers = n.stream.peers
	n.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  n.stream,
		MaxPool: maxPool,
		Timeout: cfg.RPCTimeout,
		Logger:  newHCLogger(n.log, "raft-net"),
	})
	return nil
}

// observe turns raft's leader and state observations into closes of n.changed.
func (n *Node) observe() {
	defer close(n.obsDone)
	for {
		select {
		case <-n.obsCh:
			n.mu.Lock()
			close(n.changed)
			n.changed = make(chan struct{})
			n.mu.Unlock()
		case <-n.obsStop:
			return
		}
	}
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the address peers dial to reach this node (with the port actually bound
// if Config.Addr asked for port 0).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Bootstrap forms a new cluster whose configuration is servers (all voters unless marked
// Nonvoter; empty means this node alone). Call it on one fresh node, or on every founding
// node with the same servers. It returns ErrBootstrapped if this node already has raft
// state, which makes a repeated bootstrap harmless.
func (n *Node) Bootstrap(servers []Server) error {
	if len(servers) == 0 {
		servers = []Server{{ID: n.ID(), Addr: n.Addr()}}
	}
	var conf hraft.Configuration
	for _, s := range servers {
		suffrage := hraft.Voter
		if s.Nonvoter {
			suffrage = hraft.Nonvoter
		}
		conf.Servers = append(conf.Servers, hraft.Server{
			Suffrage: suffrage,
			ID:       hraft.ServerID(s.ID),
			Address:  hraft.ServerAddress(s.Addr),
		})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, hraft.ErrCantBootstrap) {
		return ErrBootstrapped
	}
	return n.mapErr("bootstrap", err)
}

// Apply proposes cmd and returns the state machine's result once cmd is committed by a
// quorum and applied on this node. It must run on the leader; if no leader is known it
// waits, within ctx, for one to be elected.
//
// Errors: *NotLeaderError (errors.Is ErrNotLeader) if another node leads, nothing
// proposed; *CommandError if cmd committed and the state machine rejected it;
// ErrNoQuorum when ctx's deadline passes first, ErrLeadershipLost when this node stepped
// down first (for both, cmd may still commit later: the outcome is unknown); ErrShutdown.
// Any error means cmd must not be reported as done. Give ctx a deadline: without one,
// Apply waits for a leader as long as there is none (a proposed command still ends, as
// a leader that cannot reach a quorum for LeaderLeaseTimeout steps down). Apply copies cmd.
func (n *Node) Apply(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := n.awaitLeader(ctx, "apply"); err != nil {
		return nil, err
	}
	timeout, err := enqueueTimeout(ctx, "apply")
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(bytes.Clone(cmd), timeout)
	if err := n.wait(ctx, "apply", f); err != nil {
		return nil, err
	}
	res, ok := f.Response().(applyResult)
	if !ok {
		return nil, fmt.Errorf("raft apply: unexpected state machine response %T", f.Response())
	}
	if res.err != nil {
		return nil, &CommandError{Index: f.Index(), Err: res.err}
	}
	return res.data, nil
}

// Barrier returns once every command committed before it has been applied to this node's
// state machine. Call it on a new leader before serving reads from the state machine.
// Leader only; errors as for Apply.
func (n *Node) Barrier(ctx context.Context) error {
	if err := n.awaitLeader(ctx, "barrier"); err != nil {
		return err
	}
	timeout, err := enqueueTimeout(ctx, "barrier")
	if err != nil {
		return err
	}
	return n.wait(ctx, "barrier", n.raft.Barrier(timeout))
}

// AddVoter adds (or promotes) server id at addr as a voter and returns once the new
// configuration is committed. The new server then catches up from the leader's log or
// a snapshot. A voter that cannot be reached (say, without a valid node certificate)
// still counts towards the quorum size, so add nodes only after checking them. Leader
// only; errors as for Apply.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if err := n.awaitLeader(ctx, "add voter"); err != nil {
		return err
	}
	timeout, err := enqueueTimeout(ctx, "add voter")
	if err != nil {
		return err
	}
	return n.wait(ctx, "add voter", n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeout))
}

// RemoveServer removes server id from the cluster and returns once the new configuration
// is committed. A removed node shuts its raft down; its owner should then call Shutdown.
// Leader only; errors as for Apply.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if err := n.awaitLeader(ctx, "remove server"); err != nil {
		return err
	}
	timeout, err := enqueueTimeout(ctx, "remove server")
	if err != nil {
		return err
	}
	return n.wait(ctx, "remove server", n.raft.RemoveServer(hraft.ServerID(id), 0, timeout))
}

// Snapshot takes a snapshot of the state machine now and compacts the log (keeping
// Config.TrailingLogs entries). It returns nil if nothing was applied since the last one.
// Any node may take one.
func (n *Node) Snapshot(ctx context.Context) error {
	err := n.wait(ctx, "snapshot", n.raft.Snapshot())
	if errors.Is(err, hraft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// Servers returns the latest cluster configuration this node knows, committed or not
// (after Shutdown, the last one it knew).
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapErr("configuration", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Nonvoter: s.Suffrage != hraft.Voter})
	}
	return out, nil
}

// Leader returns the current leader as this node knows it, or empty strings.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader. A new leader may not have applied
// every committed command yet: see Barrier.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// CommitIndex is the last index this node knows committed (cheap, unlike Stats).
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// LeaderChanged returns a channel that is closed at the next change of leader or of this
// node's raft state (follower, candidate, leader, shutdown). Get the channel first, then
// read Leader or IsLeader: a change after that read closes the channel, so none is
// missed. Any number of goroutines may wait on it.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// Stats returns a snapshot of the node's raft state.
func (n *Node) Stats() Stats {
	addr, id := n.raft.LeaderWithID()
	st := Stats{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		LeaderID:     string(id),
		LeaderAddr:   string(addr),
		LastLogIndex: n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastContact:  n.raft.LastContact(),
	}
	if metas, err := n.snaps.List(); err == nil && len(metas) > 0 {
		st.LastSnapshotIndex = metas[0].Index
	}
	if n.stream != nil {
		st.TLSRejected = n.stream.rejected.Load()
		st.TLSOverIPCap = n.stream.perIP.Refused()
	}
	st.RPCRejected = n.guard.rejected.Load()
	st.SnapshotRefused = n.guard.snapshotRefused.Load()
	return st
}

// Shutdown stops raft, closes the transport and the storage. Pending operations fail with
// ErrShutdown or ErrLeadershipLost. It is idempotent and returns the first call's error.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.down.Store(true)
		err := n.raft.Shutdown().Error()
		n.raft.DeregisterObserver(n.observer)
		close(n.obsStop)
		<-n.obsDone
		n.shutdownErr = errors.Join(err, n.closeResources())
		n.log.Info("raft: node shut down", "id", n.cfg.ID)
	})
	return n.shutdownErr
}

// closeResources closes the transport and stores that exist; raft must not be running.
func (n *Node) closeResources() error {
	var errs []error
	if n.cfg.Memory != nil {
		n.cfg.Memory.leave(n.cfg.ID)
		if n.peers != nil {
			n.peers.Close()
		}
		n.links.closeIf(func(*link) bool { return true })
	}
	if c, ok := n.trans.(hraft.WithClose); ok {
		errs = append(errs, c.Close())
	} else if n.stream != nil {
		errs = append(errs, n.stream.Close())
	}
	if n.bolt != nil {
		errs = append(errs, n.bolt.Close())
	}
	return errors.Join(errs...)
}

// addrOf returns the address of server id in this node's latest configuration.
func (n *Node) addrOf(id string) (string, bool) {
	r := n.ready.Load()
	if r == nil {
		return "", false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if string(s.ID) == id {
			return string(s.Address), true
		}
	}
	return "", false
}

// acceptSnapshot decides whether to install a snapshot sent by node from: from must be
// a voter in this node's latest configuration (any sender passes while that is empty,
// on a node never yet part of a cluster), then Config.AcceptSnapshot must accept it.
func (n *Node) acceptSnapshot(from string) error {
	r := n.ready.Load()
	if r == nil {
		return errors.New("raft is not running yet")
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) > 0 && !slices.ContainsFunc(servers, func(s hraft.Server) bool {
		return string(s.ID) == from && s.Suffrage == hraft.Voter
	}) {
		return fmt.Errorf("sender %q is not a voter in this node's configuration", from)
	}
	if n.cfg.AcceptSnapshot != nil {
		return n.cfg.AcceptSnapshot(from)
	}
	return nil
}

// awaitLeader returns nil when this node is the leader, a *NotLeaderError when another
// node is, and waits within ctx while no leader is known.
func (n *Node) awaitLeader(ctx context.Context, op string) error {
	for {
		changed := n.LeaderChanged()
		switch n.raft.State() {
		case hraft.Leader:
			return nil
		case hraft.Shutdown:
			return fmt.Errorf("%s: %w", op, ErrShutdown)
		}
		if addr, id := n.raft.LeaderWithID(); id != "" && string(id) != n.cfg.ID {
			return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctxErr(ctx, op+": no leader known")
		}
	}
}

// wait waits for f within ctx and maps its error. A result that is ready wins over an
// expired ctx, so a committed command is not reported as failed needlessly.
func (n *Node) wait(ctx context.Context, op string, f hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return n.mapErr(op, err)
	case <-ctx.Done():
		select {
		case err := <-done:
			return n.mapErr(op, err)
		default:
			return ctxErr(ctx, op+" not committed")
		}
	}
}

// mapErr turns hashicorp/raft errors into this package's.
func (n *Node) mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader):
		addr, id := n.raft.LeaderWithID()
		if string(id) == n.cfg.ID {
			id, addr = "", ""
		}
		return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	case errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return &NotLeaderError{}
	case errors.Is(err, hraft.ErrLeadershipLost):
		return fmt.Errorf("%s: %w", op, ErrLeadershipLost)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %s not started: %w", ErrNoQuorum, op, context.DeadlineExceeded)
	}
	return fmt.Errorf("raft %s: %w", op, err)
}

// ctxErr describes an operation cut short by ctx: ErrNoQuorum on a deadline, the
// cancellation otherwise.
func ctxErr(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrNoQuorum, what, ctx.Err())
	}
	return fmt.Errorf("raft: %s: %w", what, ctx.Err())
}

// enqueueTimeout is how long raft may take to accept an operation: the time left on
// ctx, or no bound without a deadline.
func enqueueTimeout(ctx context.Context, op string) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(ctx, op+" not started")
	}
	d, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	left := time.Until(d)
	if left <= 0 {
		return 0, fmt.Errorf("%w: %s not started: %w", ErrNoQuorum, op, context.DeadlineExceeded)
	}
	return left, nil
}
