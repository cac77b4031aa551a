// Node: one Custos cluster member — its keys, replicated state, raft, the
// group-commit batcher, the peer channel — and the API the HTTP layer and
// custosd use.

package keysvc

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/peer"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// readyLag is how many committed raft entries a node may have left to apply
// and still call itself ready.
const readyLag = 1024

// Forwarder is the node's channel to its peers, which are named by their
// API address (the node table's key for them). ForwardAppend sends a
// follower's batch of entries to the leader and returns the index of the
// first entry once the leader reports them committed; it must return an
// error unless the leader confirmed the commit. SealShare, DiscardShare and
// ReleaseShare reach a peer (Node.SealShare, DiscardShare, ReleaseShare
// there), ForwardAttest the leader (Node.Attest). Open sets it to the peer
// channel (peerchannel.go); tests may set another (SetForwarder).
type Forwarder interface {
	ForwardAppend(ctx context.Context, leaderAPI string, entries []ledger.Entry) (first uint64, err error)
	SealShare(ctx context.Context, peerAPI string, req SealRequest) (SealResponse, error)
	DiscardShare(ctx context.Context, peerAPI string, req DiscardRequest) error
	ForwardAttest(ctx context.Context, leaderAPI string, req AttestRequest) error
	ReleaseShare(ctx context.Context, peerAPI string, req peer.ReleaseRequest) (peer.ReleaseResponse, error)
	// LeaderCommit asks the leader at leaderAPI what to apply to have seen
	// what it committed (AppliedCommit there).
	LeaderCommit(ctx context.Context, leaderAPI string) (uint64, error)
}

// Node is a running cluster member. Its methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	keys  *nodeKeys
	state *stateDB
	raft  *raft.Node
	b     *batcher
	m     *counters
	// denials logs refusals, folding repeats (denials.go).
	denials *denialFolder
	fwd     atomic.Pointer[Forwarder]
	// The peer channel (peerchannel.go): its server, and its client, which
	// is the Forwarder unless a test sets another.
	peerSrv *peer.Server
	peerCli *peer.Client
	// escrow holds officers' escrow shares for a recovery (leader only).
	escrow        escrowShares
	dealMu        sync.Mutex    // serialises approvals on the leader (see ceremonyCommand)
	kc            keyCache      // activated KEK versions
	releasing     sync.Map      // activation index -> struct{}: releases being decided (see ReleaseShare)
	released      releasedSet   // activations this node released for lately
	verifiedCerts certCache     // client certificates whose chain verified lately
	kekRecs       kekCache      // decoded KEK records for key operations
	dealings      sync.Map      // HSM label -> id of the dealing this node last sealed under it
	kekWake       chan struct{} // a KEK changed: reconcile HSM keys with the state
	reconcileDone chan struct{}
	actor         ledger.Actor // this node, as the actor of what it does itself
	// certFingerprint is identity.Fingerprint of the node's TLS certificate
	// ("" without TLS).
	certFingerprint string

	leaderGen atomic.Uint64 // changes at every change of leader or raft state
	acked     atomic.Uint64 // log size covering every append this node had acknowledged

	cpMu         sync.Mutex
	cpBarrierGen uint64 // leaderGen at the last Barrier before signing
	cpHead       ledger.Checkpoint
	cpNote       []byte

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stopWatch chan struct{}
	watchDone chan struct{}
}

// Open opens the node: its HSM keys (creating the identity key and the sealed
// ML-DSA seed on first start), its state database and raft. A node with state
// rejoins its cluster; a new one waits for Bootstrap or for a leader to add
// it (AddNode). If raft has a snapshot, it is restored before Open returns
// (see the state machine's Restore for how a newer database is kept).
func Open(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("keysvc: data dir: %w", err)
	}
	n := &Node{
		cfg:           cfg,
		log:           cfg.Logger.With("node", cfg.NodeID),
		m:             newCounters(),
		stopWatch:     make(chan struct{}),
		kekWake:       make(chan struct{}, 1),
		reconcileDone: make(chan struct{}),
		watchDone:     make(chan struct{}),
	}
	leaf, _ := leafOf(cfg.Certificate)
	if leaf != nil {
		n.certFingerprint = identity.Fingerprint(leaf)
	}
	n.actor = Actor(identity.Identity{Cluster: cfg.Cluster, Name: cfg.NodeID, Role: identity.RoleNode, Region: cfg.Region}, leaf)
	var err error
	if n.keys, err = loadNodeKeys(cfg.Token, cfg.DataDir, cfg.Cluster, cfg.NodeID); err != nil {
		return nil, err
	}
	if n.state, err = openStateDB(cfg.DataDir, cfg.Raft.Memory != nil, n.log, n.m); err != nil {
		n.keys.zero()
		return nil, err
	}
	n.state.onKEK = n.wakeKEK
	fail := func(err error) (*Node, error) {
		n.state.close()
		n.keys.zero()
		return nil, err
	}
	var cluster string
	if err := n.state.view(func(tx *bbolt.Tx) error {
		cluster = state.Cluster(tx)
		return nil
	}); err != nil {
		return fail(err)
	}
	if cluster != "" && cluster != cfg.Cluster {
		return fail(fmt.Errorf("keysvc: %s holds the state of cluster %q, not %q", cfg.DataDir, cluster, cfg.Cluster))
	}
	if err := checkLayout(n.state, cfg.DataDir); err != nil {
		return fail(err)
	}
	rc := cfg.raftConfig()
	if rc.VerifyPeer != nil {
		rc.VerifyPeer = n.verifyMember
		rc.PeerID = peerID
	}
	if n.raft, err = raft.Open(rc, n.state); err != nil {
		return fail(err)
	}
	n.b = newBatcher(cfg.GroupCommit, cfg.AppendTimeout, n.m, n.commitBatch)
	n.denials = newDenialFolder(cfg.DenialFoldWindow, cfg.Now, n.log, n.Append,
		func(k uint64) { n.m.denialsFolded.Add(k) })
	n.startPeerChannel()
	go n.watch()
	go n.reconcile()
	n.wakeKEK() // a node that was down destroys what was destroyed meanwhile
	n.log.Info("keysvc: node open", "config", cfg, "raft_addr", n.raft.Addr())
	return n, nil
}

func raftDir(dataDir string) string { return filepath.Join(dataDir, "raft") }

// watch counts changes of leader or raft state, and logs them.
func (n *Node) watch() {
	defer close(n.watchDone)
	reverify := time.NewTicker(reverifyEvery)
	defer reverify.Stop()
	for {
		ch := n.raft.LeaderChanged()
		n.leaderGen.Add(1)
		id, _ := n.raft.Leader()
		n.log.Info("keysvc: leader", "leader", id, "self", n.raft.IsLeader())
		if !n.raft.IsLeader() {
			n.escrow.drop("") // escrow shares serve only the leader that received them
		}
		n.purgeKeys(nil) // activated keys do not outlive a change of leader
	wait:
		for {
			select {
			case <-ch:
				break wait
			case <-reverify.C:
				// Connections of nodes removed or revoked since they
				// connected are closed; new handshakes are refused at once.
				n.raft.ReverifyPeers()
			case <-n.stopWatch:
				return
			}
		}
	}
}

// Actor returns the actor to log for a request made with a certificate
// holding id (leaf may be nil): identity URI, role, region and
// "sha256:<hex>" certificate fingerprint.
func Actor(id identity.Identity, leaf *x509.Certificate) ledger.Actor {
	a := ledger.Actor{Identity: id.String(), Role: string(id.Role), Region: id.Region}
	if leaf != nil {
		a.CertFingerprint = identity.Fingerprint(leaf)
	}
	return a
}

// bound gives ctx the default deadline if it has none.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.cfg.AppendTimeout)
}

// Bootstrap forms a new cluster with this node as its only voter, then
// commits the genesis command: the cluster name, its allowed regions
// (Config.AllowedRegions, which must include this node's region) and this
// node's registration, logged as a "cluster.genesis" and a "node.add" entry
// with this node as actor. It returns ErrAlreadyBootstrapped if the node has
// cluster state or belongs to a raft configuration with other members; a
// bootstrap interrupted between the two steps is completed by calling it again.
func (n *Node) Bootstrap(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.checkOpen(); err != nil {
		return err
	}
	regions := slices.Clone(n.cfg.AllowedRegions)
	slices.Sort(regions)
	regions = slices.Compact(regions)
	if len(regions) == 0 {
		return errors.New("keysvc: bootstrap: AllowedRegions is empty")
	}
	if !slices.Contains(regions, n.cfg.Region) {
		return fmt.Errorf("keysvc: bootstrap: this node's region %s: %w", n.cfg.Region, ErrRegionNotAllowed)
	}
	if done, err := n.genesisDone(); err != nil {
		return err
	} else if done {
		return ErrAlreadyBootstrapped
	}
	if err := n.raft.Bootstrap(nil); errors.Is(err, raft.ErrBootstrapped) {
		servers, err := n.raft.Servers()
		if err != nil {
			return n.mapRaftErr("bootstrap", err)
		}
		if len(servers) != 1 || servers[0].ID != n.cfg.NodeID {
			return ErrAlreadyBootstrapped
		}
		n.log.Info("keysvc: raft already bootstrapped alone; completing genesis")
	} else if err != nil {
		return n.mapRaftErr("bootstrap", err)
	}
	info := n.Info()
	_, err := n.propose(ctx, &state.Command{
		Type:           ledger.TypeGenesis,
		Time:           state.FormatTime(n.cfg.Now()),
		ServedBy:       n.cfg.NodeID,
		Actor:          state.ToActorJSON(n.actor),
		Cluster:        n.cfg.Cluster,
		AllowedRegions: regions,
		Node:           &info,
	})
	if errors.Is(err, ErrAlreadyBootstrapped) {
		return ErrAlreadyBootstrapped
	}
	if err != nil {
		return fmt.Errorf("keysvc: bootstrap: %w", err)
	}
	n.log.Info("keysvc: cluster bootstrapped", "cluster", n.cfg.Cluster, "allowed_regions", regions)
	return nil
}

func (n *Node) genesisDone() (done bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		done = state.GenesisDone(tx)
		return nil
	})
	return done, err
}

// Info describes this node for the node table: what a joining node sends to
// the leader, which passes it to AddNode.
func (n *Node) Info() state.NodeInfo {
	return state.NodeInfo{
		ID:       n.cfg.NodeID,
		Region:   n.cfg.Region,
		RaftAddr: n.raft.Addr(),
		APIAddr:  n.cfg.APIAdvertise,
		Keys:     n.keys.text,
		KEM:      base64.StdEncoding.EncodeToString(n.keys.kemPub),
		Cert:     n.certFingerprint,
	}
}

// AddNode registers a node and makes it a voter. Leader only. The state
// machine checks the node (its region must be among the cluster's allowed
// regions, else ErrRegionNotAllowed; an ID registered with other details is
// ErrNodeConflict; a malformed info ErrInvalidNode) and logs a "node.add"
// entry with actor, ok or denied, in the same command that registers it.
// Only then is it added to the raft configuration. Calling it again with the
// same info is harmless, and completes an addition whose raft step failed.
//
// The caller must have checked who the node is (its certificate) and that
// adding it is authorised; a voter that cannot be reached still counts
// towards the quorum.
func (n *Node) AddNode(ctx context.Context, info state.NodeInfo, actor ledger.Actor) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return err
	}
	if actor.Identity == "" {
		return errors.New("keysvc: add node: actor identity is required")
	}
	res, err := n.propose(ctx, &state.Command{
		Type:     ledger.TypeNodeAdd,
		Time:     state.FormatTime(n.cfg.Now()),
		ServedBy: n.cfg.NodeID,
		Actor:    state.ToActorJSON(actor),
		Node:     &info,
	})
	if err != nil {
		return fmt.Errorf("keysvc: add node %q: %w", info.ID, err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("keysvc: add node %q: %w", info.ID, err)
	}
	if err := n.raft.AddVoter(ctx, info.ID, info.RaftAddr); err != nil {
		return fmt.Errorf("keysvc: add node %q: registered (entry %d), but not yet a voter: %w", info.ID, res.First, n.mapRaftErr("add voter", err))
	}
	n.log.Info("keysvc: node added", "id", info.ID, "region", info.Region, "raft_addr", info.RaftAddr, "entry", res.First)
	return nil
}

// RemoveNode marks node id removed in the node table (logging a
// "node.remove" entry with actor; ErrUnknownNode or ErrLastNode when denied)
// and then removes it from the raft configuration. Leader only. A removed
// node's keys stay in NodeKeys, as they signed earlier checkpoints. Removing
// the leader itself makes it step down once the change commits.
func (n *Node) RemoveNode(ctx context.Context, id string, actor ledger.Actor) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return err
	}
	if actor.Identity == "" {
		return errors.New("keysvc: remove node: actor identity is required")
	}
	res, err := n.propose(ctx, &state.Command{
		Type:     ledger.TypeNodeRemove,
		Time:     state.FormatTime(n.cfg.Now()),
		ServedBy: n.cfg.NodeID,
		Actor:    state.ToActorJSON(actor),
		NodeID:   id,
	})
	if err != nil {
		return fmt.Errorf("keysvc: remove node %q: %w", id, err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("keysvc: remove node %q: %w", id, err)
	}
	if err := n.raft.RemoveServer(ctx, id); err != nil {
		return fmt.Errorf("keysvc: remove node %q: marked removed (entry %d), but still in the raft configuration: %w", id, res.First, n.mapRaftErr("remove server", err))
	}
	n.log.Info("keysvc: node removed", "id", id, "entry", res.First)
	return nil
}

// propose encodes cmd, commits it through raft and decodes the result.
func (n *Node) propose(ctx context.Context, cmd *state.Command) (state.Result, error) {
	data, err := state.Encode(cmd)
	if err != nil {
		return state.Result{}, err
	}
	out, err := n.raft.Apply(ctx, data)
	if err != nil {
		return state.Result{}, n.mapRaftErr(cmd.Type, err)
	}
	return state.DecodeResult(out)
}

// mapRaftErr turns the raft package's errors into this package's, keeping
// the cause matchable.
func (n *Node) mapRaftErr(op string, err error) error {
	var nl *raft.NotLeaderError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nl):
		return n.notLeader(nl.LeaderID)
	case errors.Is(err, raft.ErrNoQuorum), errors.Is(err, raft.ErrLeadershipLost):
		return noQuorum(op, err)
	case errors.Is(err, raft.ErrShutdown):
		return fmt.Errorf("%w: %s: %w", ErrClosed, op, err)
	}
	return err
}

// notLeader builds the *NotLeaderError for leader id ("" if unknown).
func (n *Node) notLeader(id string) *NotLeaderError {
	if id == n.cfg.NodeID {
		id = ""
	}
	return &NotLeaderError{LeaderID: id, LeaderAPI: n.apiAddrOf(id)}
}

func (n *Node) apiAddrOf(id string) string {
	if id == "" {
		return ""
	}
	var api string
	_ = n.state.view(func(tx *bbolt.Tx) error {
		rec, found, err := state.GetNode(tx, id)
		if found && err == nil {
			api = rec.APIAddr
		}
		return err
	})
	return api
}

func (n *Node) checkOpen() error {
	if n.closed.Load() {
		return ErrClosed
	}
	return nil
}

// leaderOnly returns a *NotLeaderError unless this node leads.
func (n *Node) leaderOnly() error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if n.raft.IsLeader() {
		return nil
	}
	id, _ := n.raft.Leader()
	return n.notLeader(id)
}

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft.IsLeader() }

// Leader returns the leader as this node knows it.
func (n *Node) Leader() Leader {
	id, _ := n.raft.Leader()
	return Leader{ID: id, APIAddr: n.apiAddrOf(id)}
}

// SetForwarder replaces (or, with nil, removes) the node's channel to its
// peers, which Open sets to the peer channel on the raft listener
// (peerchannel.go). Tests use it to run nodes in one process without one.
// Without a Forwarder, Append on a follower returns *NotLeaderError.
func (n *Node) SetForwarder(f Forwarder) {
	if f == nil {
		n.fwd.Store(nil)
		return
	}
	n.fwd.Store(&f)
}

func (n *Node) forwarder() Forwarder {
	if p := n.fwd.Load(); p != nil {
		return *p
	}
	return nil
}

// Append logs e and returns its index once a raft quorum has committed it.
// The node stamps e.Time (the proposing leader's clock, kept non-decreasing
// along the log) and e.Index; e.Node defaults to this node. Entries are
// batched with concurrent Appends into one raft command (group commit).
//
// On a follower, Append forwards the entry (batched too) to the leader
// through the Forwarder, or returns *NotLeaderError without one. If ctx has
// no deadline, Config.AppendTimeout applies. Errors: *ledger.ParseError for
// an entry breaking the entry rules (nothing queued); ErrNoQuorum when the
// commit was not confirmed in time (the outcome is unknown, never a success);
// *NotLeaderError; ErrClosed. The types "cluster.genesis", "node.add" and
// "node.remove" are the state machine's own and are refused.
func (n *Node) Append(ctx context.Context, e ledger.Entry) (uint64, error) {
	return n.submit(ctx, []ledger.Entry{e}, false)
}

// AppendBatch is Append for several entries, which get consecutive indexes
// from first on. It is what a leader's API calls for a follower's forwarded
// batch: it never forwards, and on a follower returns *NotLeaderError. At
// most MaxAppendBatch entries and MaxAppendBatchBytes bytes.
func (n *Node) AppendBatch(ctx context.Context, entries []ledger.Entry) (first uint64, err error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	return n.submit(ctx, entries, true)
}

func (n *Node) submit(ctx context.Context, entries []ledger.Entry, leaderOnly bool) (uint64, error) {
	if err := n.checkOpen(); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, errors.New("keysvc: append: no entries")
	}
	if len(entries) > MaxAppendBatch {
		return 0, fmt.Errorf("%w: %d entries", ErrBatchTooLarge, len(entries))
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	now := n.cfg.Now()
	req := &appendReq{
		entries:    make([]ledger.Entry, len(entries)),
		raws:       make([][]byte, len(entries)),
		leaderOnly: leaderOnly,
		enqueued:   time.Now(),
		done:       make(chan appendRes, 1),
	}
	for i, e := range entries {
		if state.Reserved(e.Type) {
			return 0, fmt.Errorf("keysvc: append entry %d: type %q is reserved for the state machine", i, e.Type)
		}
		e.Index = 0
		e.Time = now
		if e.Node == "" {
			e.Node = n.cfg.NodeID
		}
		raw, err := e.Marshal()
		if err != nil {
			return 0, fmt.Errorf("keysvc: append entry %d: %w", i, err)
		}
		req.entries[i], req.raws[i] = e, raw
		req.bytes += len(raw)
	}
	if req.bytes > MaxAppendBatchBytes {
		return 0, fmt.Errorf("%w: %d bytes", ErrBatchTooLarge, req.bytes)
	}
	first, err := n.b.submit(ctx, req)
	if err != nil {
		n.m.appendFailures.Add(uint64(len(entries)))
		return 0, err
	}
	n.m.appends.Add(uint64(len(entries)))
	n.m.commitLatency.observe(time.Since(req.enqueued).Seconds())
	n.sawCommitted(first + uint64(len(entries)))
	return first, nil
}

// commitBatch commits reqs (one batch) and answers each: through raft on the
// leader, through the Forwarder on a follower. AppendBatch requests are never
// forwarded.
func (n *Node) commitBatch(ctx context.Context, reqs []*appendReq) {
	f := n.forwarder()
	if f == nil || n.raft.IsLeader() {
		sent := claim(reqs)
		if len(sent) == 0 {
			return
		}
		first, err := n.proposeBatch(ctx, sent)
		var nl *NotLeaderError
		if f == nil || !errors.As(err, &nl) {
			deliver(sent, first, err)
			return
		}
		// This node no longer leads; nothing was proposed: forward instead.
		unsend(sent)
	}
	var fwd, local []*appendReq
	for _, r := range reqs {
		if r.leaderOnly {
			local = append(local, r)
		} else {
			fwd = append(fwd, r)
		}
	}
	if len(local) > 0 {
		id, _ := n.raft.Leader()
		deliver(local, 0, n.notLeader(id))
	}
	if len(fwd) > 0 {
		sent, first, err := n.forwardBatch(ctx, f, fwd)
		deliver(sent, first, err)
	}
}

// proposeBatch proposes reqs' entries as one ledger.append command.
func (n *Node) proposeBatch(ctx context.Context, reqs []*appendReq) (uint64, error) {
	count := 0
	for _, r := range reqs {
		count += len(r.raws)
	}
	entries := make([]json.RawMessage, 0, count)
	for _, r := range reqs {
		for _, raw := range r.raws {
			entries = append(entries, raw)
		}
	}
	cmd := &state.Command{Type: state.CmdLedgerAppend, Entries: entries}
	res, err := n.propose(ctx, cmd)
	if errors.Is(err, ErrNotLeader) {
		return 0, err // nothing proposed
	}
	n.m.batches.Add(1)
	n.m.batchEntries.Add(uint64(count))
	n.m.batchSize.observe(float64(count))
	if err == nil && res.Count != uint64(count) {
		err = fmt.Errorf("keysvc: append: state machine logged %d entries of %d", res.Count, count)
	}
	if err != nil {
		n.m.batchFailures.Add(1)
		return 0, err
	}
	return res.First, nil
}

// forwardBatch sends reqs' entries to the leader, waiting within ctx for one
// to be known; if this node becomes the leader meanwhile, it proposes them.
// It returns the requests it sent (those no waiter gave up on first) and
// their outcome.
func (n *Node) forwardBatch(ctx context.Context, f Forwarder, reqs []*appendReq) ([]*appendReq, uint64, error) {
	for {
		changed := n.raft.LeaderChanged()
		sent := claim(reqs)
		if len(sent) == 0 {
			return nil, 0, nil // every waiter gave up before anything was sent
		}
		if n.raft.IsLeader() {
			first, err := n.proposeBatch(ctx, sent)
			return sent, first, err
		}
		if id, _ := n.raft.Leader(); id != "" && id != n.cfg.NodeID {
			api := n.apiAddrOf(id)
			if api == "" {
				unsend(sent)
				return reqs, 0, n.notLeader(id)
			}
			var entries []ledger.Entry
			for _, r := range sent {
				entries = append(entries, r.entries...)
			}
			first, err := n.forwardOnce(ctx, f, api, entries, changed)
			if errors.Is(err, ErrNotLeader) {
				unsend(sent) // it never reached the leader
			}
			if errors.Is(err, ErrNotLeader) && ctx.Err() == nil {
				// Nothing reached that leader: send again, to the next
				// leader or to this one if it answers again, within ctx.
				retry := time.NewTimer(100 * time.Millisecond)
				select {
				case <-changed:
					retry.Stop()
					continue
				case <-retry.C:
					continue
				case <-ctx.Done():
					retry.Stop()
				}
			}
			if err != nil {
				return sent, 0, fmt.Errorf("keysvc: forward %d entries to leader %q: %w", len(entries), id, err)
			}
			n.m.forwarded.Add(uint64(len(entries)))
			return sent, first, nil
		}
		unsend(sent)
		select {
		case <-changed:
		case <-ctx.Done():
			return reqs, 0, fmt.Errorf("%w: no leader known to forward to before the deadline (%v)", ErrNotLeader, ctx.Err())
		}
	}
}

// ErrNotCaughtUp: this node could not make sure it has applied what the
// leader had committed; its "not found" could be stale. Retry.
var ErrNotCaughtUp = errors.New("keysvc: not caught up with the leader")

// CatchUp waits, up to 2 s, until this node has applied everything the
// leader had committed when asked: a read after it sees every write a client
// could have had acknowledged anywhere. Reads call it before they answer
// "unknown", so that a lagging node never denies what exists. Errors wrap
// ErrNotCaughtUp.
func (n *Node) CatchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrNotCaughtUp, fmt.Sprintf(format, a...))
	}
	if n.raft.IsLeader() {
		if err := n.raft.Barrier(ctx); err != nil {
			return fail("barrier: %v", err)
		}
		return nil
	}
	id, _ := n.raft.Leader()
	api, f := n.apiAddrOf(id), n.forwarder()
	if id == "" || api == "" || f == nil {
		return fail("no leader known")
	}
	idx, err := f.LeaderCommit(ctx, api)
	if err != nil {
		return fail("asking leader %s: %v", id, err)
	}
	if err := n.waitApplied(ctx, idx); err != nil {
		return fail("applied %d of the leader's %d", n.appliedIndex(), idx)
	}
	return nil
}

// forwardOnce sends entries to the leader at api, giving up as soon as this
// node learns of another leader (changed closes) or after forwardTimeout:
// a paused or partitioned leader then costs the entries in flight, not
// every append until the client's deadline. A forward that reached the old
// leader ends in ErrNoQuorum (it may still commit); one that did not, in
// ErrNotLeader (it did not happen).
func (n *Node) forwardOnce(ctx context.Context, f Forwarder, api string, entries []ledger.Entry, changed <-chan struct{}) (uint64, error) {
	fctx, cancel := context.WithTimeout(ctx, n.cfg.forwardTimeout())
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-changed:
			cancel()
		case <-stop:
		}
	}()
	first, err := f.ForwardAppend(fctx, api, entries)
	if err != nil && ctx.Err() == nil && fctx.Err() != nil && !errors.Is(err, ErrNotLeader) {
		// The forward's own bound, not the caller's deadline: %v keeps
		// its context error out of the chain.
		return 0, fmt.Errorf("%w: the leader did not answer before a new one was known or within %s: %v", ErrNoQuorum, n.cfg.forwardTimeout(), err)
	}
	return first, err
}

// Checkpoint returns a signed checkpoint of the whole log: the c2sp
// tlog-checkpoint body (origin "custos/<cluster>", size, root hash) signed
// by this node's HSM ECDSA P-256 key and its ML-DSA-65 key under key name
// "custos/<cluster>/<node-id>". Leader only (else *NotLeaderError naming the
// leader's API). The first call after becoming leader waits until every
// committed entry is applied, so the checkpoint covers everything
// acknowledged so far. Signed notes are cached per tree head.
func (n *Node) Checkpoint(ctx context.Context) ([]byte, error) {
	n.cpMu.Lock()
	defer n.cpMu.Unlock()
	if err := n.leaderApplied(ctx); err != nil {
		return nil, fmt.Errorf("keysvc: checkpoint: %w", err)
	}
	var head ledger.Checkpoint
	err := n.state.view(func(tx *bbolt.Tx) error {
		rec, found, err := state.GetNode(tx, n.cfg.NodeID)
		if err != nil {
			return err
		}
		if !found || rec.Keys != n.keys.text {
			return errKeysMismatch(n.cfg.NodeID)
		}
		head, err = ledgerdb.TreeHead(tx, ledger.Origin(n.cfg.Cluster))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keysvc: checkpoint: %w", err)
	}
	if n.cpNote != nil && n.cpHead == head {
		return bytes.Clone(n.cpNote), nil
	}
	if err := n.state.recordSigned(head); err != nil { // durable before the signature leaves
		return nil, fmt.Errorf("keysvc: checkpoint: %w", err)
	}
	note, err := n.keys.sign(head)
	if err != nil {
		return nil, fmt.Errorf("keysvc: checkpoint: %w", err)
	}
	n.cpHead, n.cpNote = head, note
	n.m.checkpoints.Add(1)
	return bytes.Clone(note), nil
}

// leaderApplied returns ErrNotLeader (naming the leader) on a follower;
// on the leader, the first call of its term waits until every committed
// entry is applied, so what it then reads covers everything acknowledged.
// The caller holds cpMu.
func (n *Node) leaderApplied(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return err
	}
	if gen := n.leaderGen.Load(); gen != n.cpBarrierGen {
		if err := n.raft.Barrier(ctx); err != nil {
			return n.mapRaftErr("barrier", err)
		}
		n.cpBarrierGen = gen
	}
	return nil
}

// Entries returns up to limit committed entries (canonical bytes) from
// start on, from this node's state, which may lag the leader's.
func (n *Node) Entries(start uint64, limit int) ([][]byte, error) {
	var out [][]byte
	err := n.state.view(func(tx *bbolt.Tx) (err error) {
		out, err = ledgerdb.ReadEntries(tx, start, limit)
		return err
	})
	return out, err
}

// TreeHead returns the unsigned tree head of this node's log (which may lag
// the leader's): origin, size and root hash.
func (n *Node) TreeHead() (ledger.Checkpoint, error) {
	var head ledger.Checkpoint
	err := n.state.view(func(tx *bbolt.Tx) (err error) {
		head, err = ledgerdb.TreeHead(tx, ledger.Origin(n.cfg.Cluster))
		return err
	})
	return head, err
}

// Size returns the number of entries in this node's log.
func (n *Node) Size() (uint64, error) {
	var size uint64
	err := n.state.view(func(tx *bbolt.Tx) (err error) {
		size, err = ledgerdb.Size(tx)
		return err
	})
	return size, err
}

// ProveInclusion proves entry index in the tree of the first size entries.
func (n *Node) ProveInclusion(index, size uint64) (ledger.InclusionProof, error) {
	p := ledger.InclusionProof{Index: index, Size: size}
	err := n.state.view(func(tx *bbolt.Tx) (err error) {
		p.Hashes, err = ledgerdb.ProveInclusion(tx, index, size)
		return err
	})
	return p, err
}

// ProveConsistency proves that the tree of the first new entries extends
// the tree of the first old.
func (n *Node) ProveConsistency(old, new uint64) (ledger.ConsistencyProof, error) {
	p := ledger.ConsistencyProof{Old: old, New: new}
	err := n.state.view(func(tx *bbolt.Tx) (err error) {
		p.Hashes, err = ledgerdb.ProveConsistency(tx, old, new)
		return err
	})
	return p, err
}

// NodeKeys returns the checkpoint keys of every node ever registered,
// removed ones included (they signed earlier checkpoints), in ID order: what
// an auditor passes to ledger.VerifyCheckpoint.
func (n *Node) NodeKeys() ([]ledger.NodeKey, error) {
	var keys []ledger.NodeKey
	err := n.state.view(func(tx *bbolt.Tx) error {
		return state.ForNodes(tx, func(r state.NodeRecord) error {
			k, err := r.NodeKey()
			if err != nil {
				return fmt.Errorf("keysvc: node %q keys: %w", r.ID, err)
			}
			keys = append(keys, k)
			return nil
		})
	})
	return keys, err
}

// Status returns this node's view of the cluster.
func (n *Node) Status() Status {
	st := Status{NodeID: n.cfg.NodeID, Region: n.cfg.Region, Cluster: n.cfg.Cluster, Raft: n.raft.Stats()}
	st.Leader.ID = st.Raft.LeaderID
	members := map[string]*Member{}
	_ = n.state.view(func(tx *bbolt.Tx) error {
		st.LogSize, _ = ledgerdb.Size(tx)
		st.AllowedRegions, _ = state.AllowedRegions(tx)
		st.Initialized = state.Initialized(tx)
		st.StateVersion = state.StateVersion(tx)
		st.Quorum = state.Quorum(tx)
		st.DefaultThreshold = state.DefaultThreshold(tx)
		_ = state.ForOfficers(tx, func(o state.Officer) error {
			if o.Active {
				st.Officers = append(st.Officers, o.ID)
			}
			return nil
		})
		return state.ForNodes(tx, func(r state.NodeRecord) error {
			if r.ID == st.Leader.ID {
				st.Leader.APIAddr = r.APIAddr
			}
			if !r.Removed {
				members[r.ID] = &Member{ID: r.ID, Region: r.Region, RaftAddr: r.RaftAddr, APIAddr: r.APIAddr, Registered: true}
			}
			return nil
		})
	})
	if servers, err := n.raft.Servers(); err == nil {
		for _, s := range servers {
			m := members[s.ID]
			if m == nil {
				m = &Member{ID: s.ID, RaftAddr: s.Addr}
				members[s.ID] = m
			}
			m.Voter = !s.Nonvoter
		}
	}
	for _, m := range members {
		m.Leader = m.ID == st.Leader.ID
		st.Members = append(st.Members, *m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	if err := n.ready(st.Raft); err != nil {
		st.NotReady = err.Error()
	}
	return st
}

// Ready returns nil when the node can serve: open, its state database
// healthy, a leader known, the cluster's genesis in its state, its state no
// more than a little behind the commit index, and its keys those registered
// for it. Otherwise an error wrapping ErrNotReady (or ErrClosed,
// ErrStateBroken, ErrKeysMismatch) says why.
func (n *Node) Ready() error { return n.ready(n.raft.Stats()) }

func (n *Node) ready(st raft.Stats) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if err := n.state.brokenErr(); err != nil {
		return err
	}
	if st.LeaderID == "" {
		return fmt.Errorf("%w: no leader known (raft state %s)", ErrNotReady, st.State)
	}
	var done, mismatch bool
	if err := n.state.view(func(tx *bbolt.Tx) error {
		done = state.GenesisDone(tx)
		rec, found, err := state.GetNode(tx, n.cfg.NodeID)
		mismatch = found && rec.Keys != n.keys.text
		return err
	}); err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("%w: no cluster state yet (not bootstrapped, or not caught up)", ErrNotReady)
	}
	if mismatch {
		return errKeysMismatch(n.cfg.NodeID)
	}
	if st.CommitIndex > st.AppliedIndex+readyLag {
		return fmt.Errorf("%w: catching up (applied %d of %d)", ErrNotReady, st.AppliedIndex, st.CommitIndex)
	}
	return nil
}

// Snapshot takes a raft snapshot of the state now and compacts the raft log.
// Raft also takes them on its own (RaftTuning.SnapshotThreshold).
func (n *Node) Snapshot(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.mapRaftErr("snapshot", n.raft.Snapshot(ctx))
}

// Metrics returns the node's counters.
func (n *Node) Metrics() Metrics { return n.m.snapshot() }

// Close shuts the node down: queued Appends fail with ErrClosed, raft stops
// (proposals in flight fail, their outcome unknown), the state database
// closes and the ML-DSA private key is wiped. The HSM token stays open (the
// caller owns it). Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.denials.close() // its folded entries go out while the node still appends
		n.closed.Store(true)
		n.b.close()
		n.peerSrv.Close()
		n.peerCli.Close()
		err := n.raft.Shutdown()
		n.b.wait()
		close(n.stopWatch)
		<-n.watchDone
		<-n.reconcileDone
		n.escrow.drop("")
		n.purgeKeys(nil)
		n.closeErr = errors.Join(err, n.state.close())
		n.keys.zero()
		n.cpMu.Lock()
		n.cpNote = nil
		n.cpMu.Unlock()
		n.log.Info("keysvc: node closed")
	})
	return n.closeErr
}

// AppliedCommit is what a follower must apply to have seen everything the
// leader committed: after a barrier (every committed entry applied here),
// the raft index of the last command the leader's state machine applied.
// Not the commit index, which also counts raft's own entries (barriers,
// no-ops, configurations) that no state machine applies. Leader only
// (else *NotLeaderError).
func (n *Node) AppliedCommit(ctx context.Context) (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	if err := n.raft.Barrier(ctx); err != nil {
		return 0, fmt.Errorf("keysvc: barrier: %w", err)
	}
	return n.appliedIndex(), nil
}

// CommitIndex is the leader's commit index. Leader only (else *NotLeaderError).
func (n *Node) CommitIndex() (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	return n.raft.CommitIndex(), nil
}

// sawCommitted records that the log holds at least size committed entries.
func (n *Node) sawCommitted(size uint64) {
	for {
		old := n.acked.Load()
		if size <= old || n.acked.CompareAndSwap(old, size) {
			return
		}
	}
}

// KnownLogSize is the size of the key-op log this node knows committed:
// what it has applied, or had acknowledged to a caller if more. Clients
// send the largest they saw back (client.HeaderMinLogSize), and the API
// waits for this node to have applied that much before it answers.
func (n *Node) KnownLogSize() uint64 { return max(n.state.logSize.Load(), n.acked.Load()) }
