// Activation: reconstituting a KEK version from t shares (this node's,
// opened in its HSM, and t-1 released by peers over the cluster channel),
// caching the key for the policy's activation TTL, and purging it.

package keysvc

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/peer"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// ErrReleaseRefused: a peer refused to release its share.
var ErrReleaseRefused = errors.New("keysvc: peer refused to release its share")

// maxActivationAge bounds how long after its client's signature an
// activation can still gather shares.
const maxActivationAge = reqsig.MaxSkew

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
		return state.ForKEKs(tx, func(k state.KEK) error {
			for _, v := range k.Versions {
				if v.State == ledger.KEKActive {
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
func (n *Node) withKey(ctx context.Context, caller Caller, k *state.KEK, v *state.KEKVersion, c wrapkey.Context, bk *batchKeys, fn func(*wrapkey.Key) ([]byte, error)) ([]byte, error) {
	if k.Policy.ActivationTTL == 0 {
		if bk != nil {
			key, err := bk.get(v.Version, func() (*wrapkey.Key, error) { return n.activate(ctx, caller, k, v, c, true) })
			if err != nil {
				return nil, err
			}
			return fn(key)
		}
		key, err := n.activate(ctx, caller, k, v, c, false)
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
			key, err := n.activate(ctx, caller, k, v, c, bk != nil)
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

// activate reconstitutes version v of KEK k for caller's signed request:
// it commits a kek.activate entry carrying that request (fail closed: no
// entry, no shares), opens this node's share in its HSM, and gathers t-1
// more from peers, each of which checks the activation itself and sends its
// share sealed to this node's KEM key.
func (n *Node) activate(ctx context.Context, caller Caller, k *state.KEK, v *state.KEKVersion, c wrapkey.Context, batch bool) (*wrapkey.Key, error) {
	pub, err := v.Public(k.ID)
	if err != nil {
		return nil, err
	}
	ai, err := n.logActivation(ctx, caller, k, v, batch)
	if err != nil {
		return nil, err
	}
	type got struct {
		node string
		sh   *threshold.Share
		err  error
	}
	results := make(chan got, len(v.Shares))
	var peers []state.HeldShare
	for _, hs := range v.Shares {
		if hs.Node == n.cfg.NodeID {
			sh, err := kekhsm.OpenShare(n.cfg.Token, pub, hs.Index, hs.Sealed)
			results <- got{hs.Node, sh, err}
			continue
		}
		peers = append(peers, hs)
	}
	apis := map[string]string{}
	_ = n.state.view(func(tx *bbolt.Tx) error {
		for _, hs := range peers {
			if r, found, err := state.GetNode(tx, hs.Node); err == nil && found && !r.Removed {
				apis[hs.Node] = r.APIAddr
			}
		}
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := peer.ReleaseRequest{KEKID: k.ID, Version: v.Version, Activation: ai}
	if !batch {
		req.Context = c
	}
	f := n.forwarder()
	ask := func(hs state.HeldShare) {
		api := apis[hs.Node]
		if f == nil || api == "" {
			results <- got{hs.Node, nil, errors.New("not reachable (no peer channel or not a member)")}
			return
		}
		resp, err := f.ReleaseShare(rctx, api, req)
		if err != nil {
			results <- got{hs.Node, nil, err}
			return
		}
		rel := kek.Release{From: hs.Node, To: n.cfg.NodeID, Activation: ai, Index: hs.Index}
		sh, err := n.keys.openRelease(n.cfg.Cluster, pub, rel, resp.Sealed)
		if err != nil {
			results <- got{hs.Node, nil, err}
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
			*r.sh = threshold.Share{} // the copy in shares is the one zeroised
		}
		launch()
	}
	cancel()
	// Shares that arrive after the threshold was met are wiped too.
	go func(left int) {
		for ; left > 0; left-- {
			if r := <-results; r.sh != nil {
				r.sh.Zeroize()
			}
		}
	}(pending)
	if len(shares) < v.Threshold {
		n.log.Warn("keysvc: activation failed", "kek", k.ID, "version", v.Version, "activation", ai, "shares", len(shares), "need", v.Threshold, "failures", strings.Join(fails, "; "))
		return nil, deny(errcode.SharesUnavailable, "%d of the %d node shares kek %q v%d needs could be gathered (nodes down or refusing; the serving node logs why); retry", len(shares), v.Threshold, k.ID, v.Version)
	}
	key, err := kek.Reconstitute(pub, shares)
	if err != nil {
		return nil, err
	}
	n.m.activations.Add(1)
	return key, nil
}

// logActivation checks caller's signed request and commits the kek.activate
// entry that carries it; it returns the entry's index. A request without a
// valid signature, or one used before, is refused (a *denyErr).
func (n *Node) logActivation(ctx context.Context, caller Caller, k *state.KEK, v *state.KEKVersion, batch bool) (uint64, error) {
	s := caller.Signed
	if s == nil {
		return 0, deny(reqsig.CodeMissing, "activating kek %q v%d needs the client's signed request (%s header); peers release shares for nothing else", k.ID, v.Version, reqsig.Header)
	}
	vr, err := n.verifyRequest(*s)
	if err != nil {
		return 0, deny(reqsig.CodeOf(err), "%v", err)
	}
	if vr.Identity != caller.ID {
		return 0, deny(reqsig.CodeMismatch, "the request is signed by %s, not by the caller %s", vr.Identity, caller.ID)
	}
	if err := activationFits(vr.Request, k.ID, v.Version, batch); err != nil {
		return 0, deny(reqsig.CodeMismatch, "%v", err)
	}
	var seen bool
	_ = n.state.view(func(tx *bbolt.Tx) error {
		_, seen = state.ActivationOf(tx, vr.Fingerprint, vr.Request.RequestID)
		return nil
	})
	if seen {
		return 0, deny(reqsig.CodeReplayed, "request %s of %s was already used: sign every request afresh", vr.Request.RequestID, vr.Identity)
	}
	e := ledger.Entry{Type: ledger.TypeActivate, Actor: Actor(vr.Identity, vr.Certificate), KEKID: k.ID, KEKVersion: v.Version,
		RequestID: vr.Request.RequestID, Outcome: ledger.OutcomeOK, Details: map[string]string{
			"ttl_seconds": strconv.FormatInt(int64(k.Policy.ActivationTTL/time.Second), 10),
		}}
	s.AddDetails(e.Details)
	if len(e.Details[reqsig.DetailCert]) > ledger.MaxFieldLen {
		return 0, deny(reqsig.CodeMalformed, "the client certificate (%d bytes) is too large to log; issue a smaller one", len(s.Cert))
	}
	return n.Append(ctx, e)
}

// verifyRequest checks a signed request against the cluster CA, the
// revocations and this node's wall clock (the client's clock is a wall
// clock too; Config.Now is the clock of entry times).
func (n *Node) verifyRequest(s reqsig.Signed) (reqsig.Verified, error) {
	now := time.Now()
	o := reqsig.Options{Cluster: n.cfg.Cluster, Roots: n.cfg.CAs, Now: now, Revoked: n.revokedClient}
	o.Leaf = n.verifiedCerts.get(s.Cert, now) // a certificate whose chain checked out recently
	v, err := s.Verify(o)
	if err == nil && o.Leaf == nil {
		n.verifiedCerts.put(v.Certificate, now)
	}
	return v, err
}

// activationFits checks that a signed request may activate version ver of
// KEK id: an unwrap or rewrap of that version, or an unwrap batch of the KEK.
func activationFits(r reqsig.Request, id string, ver uint32, batch bool) error {
	switch {
	case r.KEKID != id:
		return fmt.Errorf("the request is signed for kek %q, not %q", r.KEKID, id)
	case batch && r.Op != reqsig.OpUnwrapBatch:
		return fmt.Errorf("a batch activation needs an %s request, not %s", reqsig.OpUnwrapBatch, r.Op)
	case !batch && r.Op != reqsig.OpUnwrap && r.Op != reqsig.OpRewrap:
		return fmt.Errorf("an activation needs an %s or %s request, not %s", reqsig.OpUnwrap, reqsig.OpRewrap, r.Op)
	case !batch && r.Version != ver:
		return fmt.Errorf("the request is signed for v%d, not v%d", r.Version, ver)
	}
	return nil
}

// ReleaseShare is a peer's part of an activation: from (the requesting
// node, authenticated by the peer channel) gets this node's share, sealed to
// from's KEM key, only if this node itself finds: from is another current
// member; the kek.activate entry at req.Activation is committed, made by
// from for this KEK and version, and recent; its client signature verifies
// to the cluster CA and is not revoked; its request was not used by an
// earlier activation; the verified client may unwrap under the KEK policy
// (with the context it signed); the version is active; and this node has
// not released for that activation before. The release is logged (and so
// is every refusal) before the share leaves.
func (n *Node) ReleaseShare(ctx context.Context, from string, req peer.ReleaseRequest) (peer.ReleaseResponse, error) {
	if err := n.checkOpen(); err != nil {
		return peer.ReleaseResponse{}, err
	}
	e := ledger.Entry{Type: ledger.TypeRelease, Actor: n.actor, Node: n.cfg.NodeID, KEKID: req.KEKID, KEKVersion: req.Version, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"activation": strconv.FormatUint(req.Activation, 10), "to": from}}
	if wrapkey.ValidateKEKID(req.KEKID) != nil {
		e.KEKID = ""
	}
	refuse := func(code, format string, a ...any) (peer.ReleaseResponse, error) {
		reason := fmt.Sprintf(format, a...)
		e.Outcome, e.Reason = ledger.OutcomeDenied, state.Clip(code+": "+reason)
		if _, err := n.Append(ctx, e); err != nil {
			n.log.Warn("keysvc: share release refused but not logged", "code", code, "err", err)
		}
		n.m.releasesRefused.Add(1)
		return peer.ReleaseResponse{}, fmt.Errorf("%w: %s: %s", ErrReleaseRefused, code, reason)
	}
	if from == n.cfg.NodeID {
		return refuse(errcode.ReleaseToSelf, "a node opens its own share locally, never over the network")
	}
	// One decision per activation at a time, so that "not released
	// before" holds from the check to the commit; a concurrent second
	// request for the same activation is a duplicate.
	if _, busy := n.releasing.LoadOrStore(req.Activation, struct{}{}); busy {
		return refuse(errcode.ReleaseDuplicate, "a release for activation %d is already in progress here", req.Activation)
	}
	defer n.releasing.Delete(req.Activation)
	if err := n.waitLogged(ctx, req.Activation); err != nil {
		return refuse(errcode.ReleaseNotCaughtUp, "this node has not applied log entry %d yet; retry", req.Activation)
	}
	var (
		pol     ceremony.Policy
		kv      *state.KEKVersion
		pub     *kek.Version
		member  bool
		toKEM   []byte
		act     ledger.Entry
		actErr  error
		firstAt uint64
		firstOK bool
		dup     bool
	)
	err := n.state.view(func(tx *bbolt.Tx) error {
		if r, found, err := state.GetNode(tx, from); err != nil {
			return err
		} else if found && !r.Removed {
			member = true
			toKEM, _ = r.KEMKey()
		}
		raw, err := ledgerdb.ReadEntries(tx, req.Activation, 1)
		if err != nil || len(raw) != 1 {
			actErr = fmt.Errorf("no log entry %d", req.Activation)
		} else if act, actErr = ledger.ParseEntry(raw[0]); actErr == nil {
			firstAt, firstOK = state.ActivationOf(tx, act.Actor.CertFingerprint, act.RequestID)
		}
		_, dup = state.ReleaseOf(tx, req.Activation, n.cfg.NodeID)
		dup = dup || n.released.has(req.Activation)
		return nil
	})
	if err != nil {
		return peer.ReleaseResponse{}, err
	}
	// The KEK record as of the state just read (the cache is dropped at
	// every applied change of a KEK).
	if k, found, err := n.cachedKEK(req.KEKID); err != nil {
		return peer.ReleaseResponse{}, err
	} else if found {
		if v, ok := k.Version(req.Version); ok {
			pol, kv = k.Policy, v
			if pub, err = v.Public(k.ID); err != nil {
				return peer.ReleaseResponse{}, err
			}
		}
	}
	if !member || toKEM == nil {
		return refuse(errcode.ReleaseNotMember, "node %q is not a current member with a KEM key", from)
	}
	switch {
	case actErr != nil:
		return refuse(errcode.ReleaseNoActivation, "log entry %d: %v", req.Activation, actErr)
	case act.Type != ledger.TypeActivate || act.Outcome != ledger.OutcomeOK:
		return refuse(errcode.ReleaseNoActivation, "log entry %d is a %s (%s), not an activation", req.Activation, act.Type, act.Outcome)
	case act.Node != from:
		return refuse(errcode.ReleaseNoActivation, "activation %d was served by %q, not by the requester %q", req.Activation, act.Node, from)
	case act.KEKID != req.KEKID || act.KEKVersion != req.Version:
		return refuse(errcode.ReleaseNoActivation, "activation %d is for kek %q v%d, not %q v%d", req.Activation, act.KEKID, act.KEKVersion, req.KEKID, req.Version)
	}
	now := n.cfg.Now() // the clock of entry times
	s, err := reqsig.FromDetails(act.Details)
	if err != nil {
		return refuse(errcode.ReleaseSignature, "activation %d: %v", req.Activation, err)
	}
	vr, err := n.verifyRequest(s)
	if err != nil {
		return refuse(errcode.ReleaseSignature, "activation %d: %v", req.Activation, err)
	}
	e.RequestID = vr.Request.RequestID
	e.Details["for"] = vr.Identity.String()
	batch := vr.Request.Op == reqsig.OpUnwrapBatch
	switch {
	case Actor(vr.Identity, vr.Certificate) != act.Actor || vr.Request.RequestID != act.RequestID:
		return refuse(errcode.ReleaseSignature, "activation %d names %s as its actor, but its request is signed by %s", req.Activation, act.Actor.Identity, vr.Identity)
	case activationFits(vr.Request, req.KEKID, req.Version, batch) != nil:
		return refuse(errcode.ReleaseSignature, "activation %d: %v", req.Activation, activationFits(vr.Request, req.KEKID, req.Version, batch))
	case now.Sub(act.Time) > maxActivationAge:
		return refuse(errcode.ReleaseSignature, "activation %d is %s old, more than %s", req.Activation, now.Sub(act.Time).Round(time.Second), maxActivationAge)
	case !firstOK || firstAt != req.Activation:
		return refuse(errcode.ReleaseReplayed, "request %s of %s was first used by activation %d, not %d", act.RequestID, vr.Identity, firstAt, req.Activation)
	case dup:
		return refuse(errcode.ReleaseDuplicate, "this node already released its share for activation %d", req.Activation)
	case kv == nil:
		return refuse(errcode.ReleaseInactive, "no kek %q v%d", req.KEKID, req.Version)
	case kv.State != ledger.KEKActive:
		return refuse(errcode.ReleaseInactive, "kek %q v%d is %s", req.KEKID, req.Version, kv.State)
	}
	if batch {
		if d := allowedIdentity(pol, true, vr.Identity); d != nil {
			return refuse(errcode.ReleaseDenied, "%s", d.reason)
		}
	} else {
		c := wrapkey.Context(req.Context)
		if h, err := reqsig.ContextHash(c); err != nil || h != vr.Request.Context {
			return refuse(errcode.ReleaseSignature, "the context sent is not the one the client signed")
		}
		if d := allowed(pol, true, vr.Identity, c); d != nil {
			return refuse(errcode.ReleaseDenied, "%s", d.reason)
		}
	}
	hs, ok := kv.Share(n.cfg.NodeID)
	if !ok {
		return refuse(errcode.ReleaseNoShare, "this node holds no share of kek %q v%d", req.KEKID, req.Version)
	}
	// The release is committed before the share leaves, and remembered
	// here until the state machine's index surely has it.
	if _, err := n.Append(ctx, e); err != nil {
		return peer.ReleaseResponse{}, err
	}
	n.released.record(req.Activation)
	sh, err := kekhsm.OpenShare(n.cfg.Token, pub, hs.Index, hs.Sealed)
	if err != nil {
		return peer.ReleaseResponse{}, err
	}
	defer sh.Zeroize()
	rel := kek.Release{From: n.cfg.NodeID, To: from, Activation: req.Activation, Index: hs.Index}
	sealed, err := kek.SealRelease(crand.Reader, n.cfg.Cluster, pub, rel, toKEM, sh)
	if err != nil {
		return peer.ReleaseResponse{}, err
	}
	n.m.sharesReleased.Add(1)
	return peer.ReleaseResponse{Index: hs.Index, Sealed: sealed}, nil
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
