// Activation: reconstituting a KEK version from t shares (this node's,
// opened in its HSM, and t-1 released by peers over the cluster channel),
// caching the key for the policy's activation TTL, and purging it.

package keysvc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// ReleaseRequest asks a peer for its share of a KEK version, for an unwrap
// by Caller with Context. The peer checks the caller against the policy
// itself.
type ReleaseRequest struct {
	KEKID     string            `json:"kek_id"`
	Version   uint32            `json:"version"`
	Caller    string            `json:"caller"` // identity URI of the unwrapping client
	Context   map[string]string `json:"context"`
	RequestID string            `json:"request_id,omitempty"`
	// Applied is the requester's applied raft index: the peer decides on a
	// state at least as recent (it waits briefly to catch up).
	Applied uint64 `json:"applied"`
}

// ReleaseResponse carries the peer's share (threshold.Share encoding):
// secret, sent only inside mutual TLS.
type ReleaseResponse struct {
	Index uint16 `json:"index"`
	Share []byte `json:"share"`
}

// ErrReleaseRefused: a peer refused to release its share.
var ErrReleaseRefused = errors.New("keysvc: peer refused to release its share")

// cachedKey is an activated key and when it expires.
type cachedKey struct {
	key     *wrapkey.Key
	expires time.Time
}

// keyCache holds activated keys by "id/version", and the activations in
// flight (one per version at a time).
type keyCache struct {
	mu       sync.Mutex
	keys     map[string]*cachedKey
	inflight map[string]chan struct{}
}

func cacheKey(id string, ver uint32) string { return id + "/" + strconv.FormatUint(uint64(ver), 10) }

// purge destroys cached keys for which drop reports true (all with nil).
func (n *Node) purgeKeys(drop func(id string) bool) {
	c := &n.kc
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ck := range c.keys {
		if drop == nil || drop(k) {
			ck.key.Destroy()
			delete(c.keys, k)
			n.m.cachedKeys.Add(-1)
		}
	}
}

// purgeInactive drops the keys of versions no longer active, and expired ones.
func (n *Node) purgeInactive() {
	active := map[string]bool{}
	_ = n.state.view(func(tx *bbolt.Tx) error {
		return forKEKs(tx, func(k KEK) error {
			for _, v := range k.Versions {
				if v.State == KEKActive {
					active[cacheKey(k.ID, v.Version)] = true
				}
			}
			return nil
		})
	})
	now := time.Now()
	n.kc.mu.Lock()
	expired := map[string]bool{}
	for k, ck := range n.kc.keys {
		if now.After(ck.expires) {
			expired[k] = true
		}
	}
	n.kc.mu.Unlock()
	n.purgeKeys(func(k string) bool { return !active[k] || expired[k] })
}

// batchKeys holds the keys one batch activated for versions whose policy
// caches nothing (activation TTL 0): each is activated once per batch, not
// once per item, and destroyed when the batch ends.
type batchKeys struct {
	mu sync.Mutex
	m  map[uint32]*batchKey
}

type batchKey struct {
	once sync.Once
	key  *wrapkey.Key
	err  error
}

func (b *batchKeys) get(ver uint32, activate func() (*wrapkey.Key, error)) (*wrapkey.Key, error) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[uint32]*batchKey{}
	}
	e := b.m[ver]
	if e == nil {
		e = &batchKey{}
		b.m[ver] = e
	}
	b.mu.Unlock()
	e.once.Do(func() { e.key, e.err = activate() })
	return e.key, e.err
}

func (b *batchKeys) destroy() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.m {
		if e.key != nil {
			e.key.Destroy()
		}
	}
}

// withKey runs fn with the activated key of version v of KEK k: cached, or
// reconstituted now and cached for the policy's TTL. With TTL 0 the key is
// destroyed after fn, or, within a batch (bk), after the batch.
func (n *Node) withKey(ctx context.Context, caller Caller, k *KEK, v *KEKVersion, c wrapkey.Context, bk *batchKeys, fn func(*wrapkey.Key) ([]byte, error)) ([]byte, error) {
	if k.Policy.ActivationTTL == 0 {
		if bk != nil {
			key, err := bk.get(v.Version, func() (*wrapkey.Key, error) { return n.activate(ctx, caller, k, v, c) })
			if err != nil {
				return nil, err
			}
			return fn(key)
		}
		key, err := n.activate(ctx, caller, k, v, c)
		if err != nil {
			return nil, err
		}
		defer key.Destroy()
		return fn(key)
	}
	ck := cacheKey(k.ID, v.Version)
	for try := 0; ; try++ {
		n.kc.mu.Lock()
		if e := n.kc.keys[ck]; e != nil {
			if time.Now().Before(e.expires) {
				key := e.key
				n.kc.mu.Unlock()
				out, err := fn(key)
				if errors.Is(err, wrapkey.ErrKeyDestroyed) && try < 2 {
					continue // purged while in use: activate again
				}
				n.m.cacheHits.Add(1)
				return out, err
			}
			e.key.Destroy() // expired: zeroise before replacing it
			delete(n.kc.keys, ck)
			n.m.cachedKeys.Add(-1)
		}
		if wait := n.kc.inflight[ck]; wait != nil {
			n.kc.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if n.kc.inflight == nil {
			n.kc.inflight = map[string]chan struct{}{}
		}
		done := make(chan struct{})
		n.kc.inflight[ck] = done
		gen := n.leaderGen.Load()
		n.kc.mu.Unlock()
		key, cached, err := func() (*wrapkey.Key, bool, error) {
			defer func() {
				n.kc.mu.Lock()
				delete(n.kc.inflight, ck)
				close(done)
				n.kc.mu.Unlock()
			}()
			key, err := n.activate(ctx, caller, k, v, c)
			if err != nil {
				return nil, false, err
			}
			n.kc.mu.Lock()
			defer n.kc.mu.Unlock()
			// A key activated across a change of leader (whose purge it
			// missed) or a close serves this request only.
			if n.leaderGen.Load() != gen || n.closed.Load() {
				return key, false, nil
			}
			if n.kc.keys == nil {
				n.kc.keys = map[string]*cachedKey{}
			}
			n.kc.keys[ck] = &cachedKey{key: key, expires: time.Now().Add(k.Policy.ActivationTTL)}
			n.m.cachedKeys.Add(1)
			return key, true, nil
		}()
		if err != nil {
			return nil, err
		}
		if !cached {
			defer key.Destroy()
		}
		return fn(key)
	}
}

// activate reconstitutes version v of KEK k: this node's share from its
// HSM and t-1 more released by peers, each verified against the
// commitments. The activation is logged before the key is used (fail
// closed).
func (n *Node) activate(ctx context.Context, caller Caller, k *KEK, v *KEKVersion, c wrapkey.Context) (*wrapkey.Key, error) {
	pub, err := v.Public(k.ID)
	if err != nil {
		return nil, err
	}
	type got struct {
		node string
		sh   *threshold.Share
		err  error
	}
	results := make(chan got, len(v.Shares))
	var peers []HeldShare
	for _, hs := range v.Shares {
		if hs.Node == n.cfg.NodeID {
			sh, err := kek.OpenShare(n.cfg.Token, pub, hs.Index, hs.Sealed)
			results <- got{hs.Node, sh, err}
			continue
		}
		peers = append(peers, hs)
	}
	apis := map[string]string{}
	_ = n.state.view(func(tx *bbolt.Tx) error {
		for _, hs := range peers {
			if r, found, err := getNode(tx, hs.Node); err == nil && found && !r.Removed {
				apis[hs.Node] = r.APIAddr
			}
		}
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := ReleaseRequest{KEKID: k.ID, Version: v.Version, Caller: caller.ID.String(), Context: c, Applied: n.appliedIndex()}
	f := n.forwarder()
	ask := func(hs HeldShare) {
		api := apis[hs.Node]
		if f == nil || api == "" {
			results <- got{hs.Node, nil, errors.New("not reachable (no forwarder or not a member)")}
			return
		}
		resp, err := f.ReleaseShare(rctx, api, req)
		if err != nil {
			results <- got{hs.Node, nil, err}
			return
		}
		defer clear(resp.Share)
		sh := new(threshold.Share)
		if err := sh.UnmarshalBinary(resp.Share); err != nil || sh.Index != hs.Index || threshold.Verify(pub.Commitments, sh) != nil {
			sh.Zeroize()
			results <- got{hs.Node, nil, errors.New("released a share that does not verify against the commitments")}
			return
		}
		results <- got{hs.Node, sh, nil}
	}
	// Ask only as many peers as needed (in random order, to spread the
	// load), and another one for each that fails: no more shares leave
	// their nodes than the activation needs.
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var (
		shares []threshold.Share
		from   []string
		fails  []string
	)
	defer func() {
		for i := range shares {
			shares[i].Zeroize()
		}
	}()
	pending := len(v.Shares) - len(peers) // this node's own result, already in results
	next := 0
	launch := func() {
		for next < len(peers) && len(shares)+pending < v.Threshold {
			go ask(peers[next])
			next++
			pending++
		}
	}
	for {
		if pending == 0 {
			launch()
		}
		if pending == 0 || len(shares) >= v.Threshold {
			break
		}
		r := <-results
		pending--
		if r.err != nil {
			fails = append(fails, r.node+": "+r.err.Error())
		} else {
			shares = append(shares, *r.sh)
			from = append(from, r.node)
		}
		launch()
	}
	cancel()
	if len(shares) < v.Threshold {
		n.log.Warn("keysvc: activation failed", "kek", k.ID, "version", v.Version, "shares", len(shares), "need", v.Threshold, "failures", strings.Join(fails, "; "))
		return nil, deny(CodeSharesUnavailable, "%d of the %d node shares kek %q v%d needs could be gathered (nodes down or refusing; the serving node logs why); retry", len(shares), v.Threshold, k.ID, v.Version)
	}
	key, err := kek.Reconstitute(pub, shares)
	if err != nil {
		return nil, err
	}
	slices.Sort(from)
	e := ledger.Entry{Type: TypeActivate, Actor: n.actor, KEKID: k.ID, KEKVersion: v.Version, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"shares_from": strings.Join(from, ","), "ttl_seconds": strconv.FormatInt(int64(k.Policy.ActivationTTL/time.Second), 10),
			"for": caller.ID.String()}}
	if _, err := n.Append(ctx, e); err != nil {
		key.Destroy()
		return nil, err
	}
	n.m.activations.Add(1)
	return key, nil
}

// ReleaseShare is a peer's part of an activation: from (the requesting
// node, a member, as the transport checked) gets this node's share of the
// version if, in this node's own state, the version is active and the
// KEK's policy lets req.Caller unwrap with req.Context.
func (n *Node) ReleaseShare(ctx context.Context, from string, req ReleaseRequest) (ReleaseResponse, error) {
	refused := func(format string, a ...any) (ReleaseResponse, error) {
		return ReleaseResponse{}, fmt.Errorf("%w: %s", ErrReleaseRefused, fmt.Sprintf(format, a...))
	}
	if err := n.checkOpen(); err != nil {
		return ReleaseResponse{}, err
	}
	caller, err := identity.ParseURI(req.Caller)
	if err != nil {
		return refused("caller: %v", err)
	}
	if err := n.waitApplied(ctx, req.Applied); err != nil {
		return refused("this node has not applied index %d yet", req.Applied)
	}
	var (
		pol ceremony.Policy
		kv  *KEKVersion
		pub *kek.Version
		mem bool
	)
	err = n.state.view(func(tx *bbolt.Tx) error {
		r, found, err := getNode(tx, from)
		if err != nil {
			return err
		}
		mem = found && !r.Removed
		k, found, err := getKEK(tx, req.KEKID)
		if err != nil || !found {
			return err
		}
		v, ok := k.Version(req.Version)
		if !ok {
			return nil
		}
		pol, kv = k.Policy, v
		pub, err = v.Public(k.ID)
		return err
	})
	if err != nil {
		return ReleaseResponse{}, err
	}
	switch {
	case !mem:
		return refused("node %q is not a member", from)
	case kv == nil:
		return refused("no kek %q v%d", req.KEKID, req.Version)
	case kv.State != KEKActive:
		return refused("kek %q v%d is %s", req.KEKID, req.Version, kv.State)
	}
	if caller.Cluster != n.cfg.Cluster {
		return refused("caller %s is of another cluster", req.Caller)
	}
	if d := allowed(pol, true, caller, req.Context); d != nil {
		return refused("%s", d.reason)
	}
	hs, ok := kv.Share(n.cfg.NodeID)
	if !ok {
		return refused("this node holds no share of kek %q v%d", req.KEKID, req.Version)
	}
	// The peer's own record of the release, committed before the share
	// leaves: a node that asks for shares in a client's name cannot do so
	// unseen by the log.
	e := ledger.Entry{Type: TypeRelease, Actor: n.actor, KEKID: req.KEKID, KEKVersion: req.Version, RequestID: req.RequestID,
		Outcome: ledger.OutcomeOK, Details: map[string]string{"to": from, "for": req.Caller}}
	if _, err := n.Append(ctx, e); err != nil {
		return ReleaseResponse{}, err
	}
	sh, err := kek.OpenShare(n.cfg.Token, pub, hs.Index, hs.Sealed)
	if err != nil {
		return ReleaseResponse{}, err
	}
	defer sh.Zeroize()
	b, err := sh.MarshalBinary()
	if err != nil {
		return ReleaseResponse{}, err
	}
	n.m.sharesReleased.Add(1)
	return ReleaseResponse{Index: hs.Index, Share: b}, nil
}

// appliedIndex is the raft index of the last command this node applied.
func (n *Node) appliedIndex() uint64 { return n.state.applied.Load() }

// waitApplied waits, up to 2 s, until this node has applied raft index i.
func (n *Node) waitApplied(ctx context.Context, i uint64) error {
	return n.waitState(ctx, func() bool { return n.state.applied.Load() >= i })
}

// WaitLogged waits, up to 2 s, until this node's key-op log holds size entries.
func (n *Node) WaitLogged(ctx context.Context, size uint64) error {
	if size == 0 {
		return nil
	}
	return n.waitLogged(ctx, size-1)
}

// waitLogged waits, up to 2 s, until this node has applied key-op log entry i.
func (n *Node) waitLogged(ctx context.Context, i uint64) error {
	return n.waitState(ctx, func() bool { return n.state.logSize.Load() > i })
}

func (n *Node) waitState(ctx context.Context, done func() bool) error {
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	for {
		_, ch := n.state.appliedWait()
		if done() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return errors.New("not caught up")
		}
	}
}
