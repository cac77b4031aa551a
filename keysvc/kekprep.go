// Dealing KEK versions: the leader deals a version's seed when an approval
// is about to execute kek.create, kek.rotate or escrow.recover, hands each
// node its share over the cluster channel, and proposes the nodes' sealed
// shares and signed statements with that approval. Nodes seal only for a
// pending ceremony they know, and only at the leader's request.

package keysvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// SealRequest hands a node its share of a KEK version being dealt.
type SealRequest struct {
	Proposal string `json:"proposal"` // the ceremony dealing it
	// Officer and Signature are the approval this dealing is for: with the
	// approvals already recorded it must make the proposal ready, which
	// each node checks against its own state before it seals anything.
	Officer   string `json:"officer"`
	Signature []byte `json:"signature"`
	// Dealing identifies this dealing: only a discard naming it can
	// destroy the key sealed for it.
	Dealing string `json:"dealing"`
	// Applied is the leader's applied index: the node decides on a state
	// at least as recent.
	Applied     uint64 `json:"applied"`
	KEKID       string `json:"kek_id"`
	Version     uint32 `json:"version"`
	Threshold   int    `json:"threshold"`
	PublicKey   []byte `json:"public_key"`
	Commitments []byte `json:"commitments"`
	Share       []byte `json:"share"` // threshold.Share encoding: secret
}

// SealResponse is a node's sealed share and its signed statement.
type SealResponse struct {
	Sealed    []byte `json:"sealed"`
	Statement []byte `json:"statement"`
}

// DiscardRequest asks a node to destroy its sealing key of a version that
// was dealt but not committed.
type DiscardRequest struct {
	KEKID   string `json:"kek_id"`
	Version uint32 `json:"version"`
	Dealing string `json:"dealing"` // the dealing whose key to destroy (SealRequest.Dealing)
}

// AttestRequest carries a node's signed statement that it destroyed its
// sealing key of a destroyed version, to the leader.
type AttestRequest struct {
	KEKID     string `json:"kek_id"`
	Version   uint32 `json:"version"`
	Statement []byte `json:"statement"`
}

// Errors of dealing and escrow recovery.
var (
	// ErrSealRefused: a node refused to seal a share (no such pending
	// ceremony, not from the leader, a live share already held).
	ErrSealRefused = errors.New("keysvc: node refused to seal the share")
	// ErrBadEscrowShare: an officer's escrow share that is not theirs or
	// does not match the escrow commitments.
	ErrBadEscrowShare = errors.New("keysvc: escrow share does not verify")
	// ErrDiscardRefused: a discard not from the leader, or naming another
	// dealing than the one this node sealed under the label.
	ErrDiscardRefused = errors.New("keysvc: node refused to discard the key")
	// ErrLiveShare: a discard of a sealing key that protects a committed share.
	ErrLiveShare = errors.New("keysvc: this node's sealing key protects a committed share")
)

// escrowShares holds officers' opened escrow shares on the leader until the
// recovery they were given for executes or closes. Never replicated.
type escrowShares struct {
	mu sync.Mutex
	m  map[string]map[string]*threshold.Share // proposal id -> officer -> share
}

func (e *escrowShares) put(pid, off string, sh *threshold.Share) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]map[string]*threshold.Share{}
	}
	if e.m[pid] == nil {
		e.m[pid] = map[string]*threshold.Share{}
	}
	if old := e.m[pid][off]; old != nil {
		old.Zeroize()
	}
	e.m[pid][off] = sh
}

// copies returns copies of the shares held for pid from the given officers.
func (e *escrowShares) copies(pid string, officers []string) []threshold.Share {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []threshold.Share
	for off, sh := range e.m[pid] {
		if slices.Contains(officers, off) {
			out = append(out, threshold.Share{Index: sh.Index, S: sh.S.Copy(), R: sh.R.Copy()})
		}
	}
	return out
}

// pids returns the proposals shares are held for.
func (e *escrowShares) pids() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for pid := range e.m {
		out = append(out, pid)
	}
	return out
}

// pruneEscrow forgets the escrow shares held for proposals that are no
// longer pending or have expired.
func (n *Node) pruneEscrow() {
	for _, pid := range n.escrow.pids() {
		keep := false
		_ = n.state.view(func(tx *bbolt.Tx) error {
			c, found, err := state.GetCeremony(tx, pid)
			if err != nil || !found || c.Status != state.StatusPending {
				return err
			}
			p, err := ceremony.ParseProposal([]byte(c.Proposal))
			keep = err == nil && n.cfg.Now().Before(p.Expires)
			return nil
		})
		if !keep {
			n.escrow.drop(pid)
		}
	}
}

// drop zeroises and forgets the shares of pid ("" for all).
func (e *escrowShares) drop(pid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, m := range e.m {
		if pid != "" && id != pid {
			continue
		}
		for _, sh := range m {
			sh.Zeroize()
		}
		delete(e.m, id)
	}
}

// HoldEscrowShare gives the leader officer off's opened escrow share
// (threshold.Share encoding) for the pending escrow.recover proposal pid.
// It is checked against the version's escrow commitments and kept in
// memory only, until the recovery executes or closes; a change of leader
// forgets it. Leader only. Errors: ErrBadEscrowShare, or the proposal
// is not a pending escrow recovery.
func (n *Node) HoldEscrowShare(pid, off string, share []byte) error {
	if err := n.leaderOnly(); err != nil {
		return err
	}
	var rec *kek.EscrowRecord
	err := n.state.view(func(tx *bbolt.Tx) error {
		c, found, err := state.GetCeremony(tx, pid)
		if err != nil {
			return err
		}
		if !found || c.Status != state.StatusPending {
			return fmt.Errorf("%w: proposal %s is not a pending escrow recovery", ErrBadEscrowShare, pid)
		}
		p, err := ceremony.ParseProposal([]byte(c.Proposal))
		if err != nil {
			return err
		}
		ps, ok := p.Params.(ceremony.EscrowRecover)
		if !ok {
			return fmt.Errorf("%w: proposal %s is %s, not escrow.recover", ErrBadEscrowShare, pid, p.Operation())
		}
		k, found, err := state.GetKEK(tx, ps.KEKID)
		if err != nil {
			return err
		}
		v, ok := k.Version(ps.Version)
		if !found || !ok || v.Escrow == nil {
			return fmt.Errorf("%w: kek %q v%d has no escrow", ErrBadEscrowShare, ps.KEKID, ps.Version)
		}
		rec, err = v.Escrow.Record()
		return err
	})
	if err != nil {
		return err
	}
	idx := slices.Index(rec.Officers, off)
	if idx < 0 {
		return fmt.Errorf("%w: officer %q holds no escrow share of this version", ErrBadEscrowShare, off)
	}
	sh := new(threshold.Share)
	if err := sh.UnmarshalBinary(share); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEscrowShare, err)
	}
	if int(sh.Index) != idx+1 || threshold.Verify(rec.Commitments, sh) != nil {
		sh.Zeroize()
		return fmt.Errorf("%w: officer %q's share does not match the escrow commitments", ErrBadEscrowShare, off)
	}
	n.escrow.put(pid, off, sh)
	if !n.raft.IsLeader() { // lost leadership meanwhile: the drop may have run before the put
		n.escrow.drop(pid)
		return n.leaderOnly()
	}
	return nil
}

// evaluateWith decides, in tx, whether pending ceremony c (proposal p)
// would be ready with one more approval by officer: how the leader decides
// to deal, and each node to seal. Apply decides again when it commits.
func (n *Node) evaluateWith(tx *bbolt.Tx, c state.Ceremony, p ceremony.Proposal, officer string, sig []byte) (ceremony.Outcome, error) {
	r, err := state.Rules(tx)
	if err != nil {
		return ceremony.Outcome{}, err
	}
	approvals := make([]ceremony.Approval, 0, len(c.Approvals)+1)
	for _, a := range c.Approvals {
		approvals = append(approvals, ceremony.Approval{ProposalID: c.ID, Officer: a.Officer, Signature: a.Signature})
	}
	approvals = append(approvals, ceremony.Approval{ProposalID: c.ID, Officer: officer, Signature: sig})
	return ceremony.Evaluate(p, approvals, r, n.cfg.Now(), state.StateVersion(tx), state.Verifier(tx))
}

// dealt is what the leader dealt for an approval, to clean up if the
// approval does not execute it.
type dealt struct {
	m       *state.KEKMaterial
	nodes   []state.NodeRecord
	dealing string
}

// prepareApproval deals key material into cmd when its approval would
// execute a proposal that needs it. A failure to deal goes into
// cmd.PrepError, for Apply to refuse the proposal with.
func (n *Node) prepareApproval(ctx context.Context, cmd *state.Command) *dealt {
	var (
		p     ceremony.Proposal
		ready bool
	)
	err := n.state.view(func(tx *bbolt.Tx) error {
		c, found, err := state.GetCeremony(tx, cmd.ProposalID)
		if err != nil || !found || c.Status != state.StatusPending {
			return err
		}
		if p, err = ceremony.ParseProposal([]byte(c.Proposal)); err != nil || !p.Operation().DealsKEK() {
			return err
		}
		out, err := n.evaluateWith(tx, c, p, cmd.Officer, cmd.Signature)
		ready = err == nil && out.Ready
		return nil
	})
	if err != nil || !ready {
		return nil // Apply decides and refuses as usual
	}
	d, err := n.deal(ctx, p, cmd.Officer, cmd.Signature)
	if err != nil {
		cmd.PrepError = state.Clip(err.Error())
		n.log.Warn("keysvc: dealing failed", "proposal", p.ID, "op", p.Operation(), "err", err)
		return nil
	}
	cmd.KEK = d.m
	return d
}

// deal deals the version proposal p creates (or re-deals the one it
// recovers) and has every node seal its share. On failure every node's
// new sealing key is destroyed.
func (n *Node) deal(ctx context.Context, p ceremony.Proposal, approver string, sig []byte) (*dealt, error) {
	var (
		cluster   string
		nodes     []state.NodeRecord
		k         state.KEK
		ver       uint32
		t         int
		pol       ceremony.Escrow
		esc       *kek.EscrowConfig
		old       *kek.Version
		oldRec    *kek.EscrowRecord
		approvers []string // officers whose escrow shares count: those who approved
	)
	err := n.state.view(func(tx *bbolt.Tx) error {
		cluster = state.Cluster(tx)
		var err error
		if nodes, err = state.ActiveNodes(tx); err != nil {
			return err
		}
		var found bool
		if c, ok, err := state.GetCeremony(tx, p.ID); err == nil && ok {
			for _, a := range c.Approvals {
				approvers = append(approvers, a.Officer)
			}
		}
		approvers = append(approvers, approver)
		switch ps := p.Params.(type) {
		case ceremony.KEKCreate:
			ver, t, pol = 1, ps.Policy.Threshold, ps.Policy.Escrow
		case ceremony.KEKRotate:
			if k, found, err = state.GetKEK(tx, ps.KEKID); err != nil || !found {
				return cmp(err, fmt.Errorf("no kek %q", ps.KEKID))
			}
			ver, t, pol = k.Latest()+1, k.Policy.Threshold, k.Policy.Escrow
		case ceremony.EscrowRecover:
			if k, found, err = state.GetKEK(tx, ps.KEKID); err != nil || !found {
				return cmp(err, fmt.Errorf("no kek %q", ps.KEKID))
			}
			v, ok := k.Version(ps.Version)
			if !ok || v.Escrow == nil || v.State == ledger.KEKDestroyed {
				return fmt.Errorf("kek %q v%d is not an escrowed version that can be recovered", ps.KEKID, ps.Version)
			}
			ver, t = ps.Version, k.Policy.Threshold
			if old, err = v.Public(ps.KEKID); err != nil {
				return err
			}
			if oldRec, err = v.Escrow.Record(); err != nil {
				return err
			}
			return nil
		}
		if !pol.Enabled {
			return nil
		}
		esc = &kek.EscrowConfig{Cluster: cluster, Threshold: pol.M}
		return state.ForOfficers(tx, func(o state.Officer) error {
			if !o.Active {
				return nil
			}
			pk, err := officer.ParsePublicKey([]byte(o.Bundle))
			if err != nil {
				return fmt.Errorf("officer %q: %v", o.ID, err)
			}
			esc.Officers = append(esc.Officers, kek.EscrowOfficer{ID: o.ID, XWingPublic: pk.XWingKey()})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("deal: %w", err)
	}
	id := p.KEKID()
	if t > len(nodes) {
		return nil, fmt.Errorf("threshold %d exceeds the %d nodes", t, len(nodes))
	}
	var (
		v      *kek.Version
		shares []threshold.Share
		rec    *kek.EscrowRecord
	)
	switch {
	case old != nil:
		held := n.escrow.copies(p.ID, approvers)
		defer func() {
			for i := range held {
				held[i].Zeroize()
			}
		}()
		if len(held) < oldRec.Threshold {
			return nil, fmt.Errorf("the leader holds %d of the %d escrow shares needed from approving officers: officers give theirs with their approval (custos officer approve), on the current leader", len(held), oldRec.Threshold)
		}
		v, shares, rec, err = kek.RecoverAndRedeal(rand.Reader, old, oldRec, held, t, len(nodes))
	case esc != nil:
		v, shares, rec, err = kek.DealWithEscrow(rand.Reader, id, ver, t, len(nodes), esc)
	default:
		v, shares, err = kek.Deal(rand.Reader, id, ver, t, len(nodes))
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		for i := range shares {
			shares[i].Zeroize()
		}
	}()
	commitments, err := v.Commitments.MarshalBinary()
	if err != nil {
		return nil, err
	}
	m := &state.KEKMaterial{KEKID: id, Version: ver, Threshold: t, PublicKey: v.PublicKey, Commitments: commitments,
		Shares: make([]state.HeldShare, len(nodes))}
	if m.Escrow, err = state.EscrowOf(rec); err != nil {
		return nil, err
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	d := &dealt{m: m, nodes: nodes, dealing: hex.EncodeToString(nonce[:])}
	applied := n.appliedIndex()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nr := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc, err := shares[i].MarshalBinary()
			if err != nil {
				errs[i] = err
				return
			}
			defer clear(enc)
			req := SealRequest{Proposal: p.ID, Officer: approver, Signature: sig, Dealing: d.dealing, Applied: applied,
				KEKID: id, Version: ver, Threshold: t, PublicKey: v.PublicKey, Commitments: commitments, Share: enc}
			resp, err := n.sealAt(ctx, nr, req)
			if err != nil {
				errs[i] = fmt.Errorf("node %s: %w", nr.ID, err)
				return
			}
			m.Shares[i] = state.HeldShare{Node: nr.ID, Index: shares[i].Index, Sealed: resp.Sealed, Statement: resp.Statement}
		}()
	}
	wg.Wait()
	var failed []string
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		n.discard(d)
		return nil, fmt.Errorf("not every node sealed its share of kek %q v%d: %s", id, ver, strings.Join(failed, "; "))
	}
	return d, nil
}

func cmp(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// sealAt has node nr seal its share: this node directly, a peer through
// the forwarder.
func (n *Node) sealAt(ctx context.Context, nr state.NodeRecord, req SealRequest) (SealResponse, error) {
	if nr.ID == n.cfg.NodeID {
		return n.SealShare(ctx, n.cfg.NodeID, req)
	}
	f := n.forwarder()
	if f == nil {
		return SealResponse{}, errors.New("no channel to peers (no forwarder set)")
	}
	return f.SealShare(ctx, nr.APIAddr, req)
}

// discard has every node of d destroy the sealing key dealt (best effort:
// a node that cannot be reached keeps an orphan key, which it destroys when
// the version is next dealt, and which protects nothing committed).
func (n *Node) discard(d *dealt) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := DiscardRequest{KEKID: d.m.KEKID, Version: d.m.Version, Dealing: d.dealing}
	for _, nr := range d.nodes {
		var err error
		if nr.ID == n.cfg.NodeID {
			err = n.DiscardShare(ctx, n.cfg.NodeID, req)
		} else if f := n.forwarder(); f != nil {
			err = f.DiscardShare(ctx, nr.APIAddr, req)
		}
		if err != nil {
			n.log.Warn("keysvc: could not discard a dealt share", "node", nr.ID, "kek", req.KEKID, "version", req.Version, "err", err)
		}
	}
}

// SealShare is a node's part of dealing: from (the caller's node id) must
// be the leader, the proposal a pending ceremony that deals this version,
// and the share must verify against the commitments. The node seals it
// under a fresh HSM key custos:kek:<id>:<version> and returns the sealed
// share with its signed statement. It refuses if it holds a live share of
// that version; an orphan key from an earlier failed dealing is replaced.
func (n *Node) SealShare(ctx context.Context, from string, req SealRequest) (SealResponse, error) {
	refused := func(format string, a ...any) (SealResponse, error) {
		return SealResponse{}, fmt.Errorf("%w: %s", ErrSealRefused, fmt.Sprintf(format, a...))
	}
	if err := n.checkOpen(); err != nil {
		return SealResponse{}, err
	}
	if leader, _ := n.raft.Leader(); from != leader {
		return refused("%q is not the leader", from)
	}
	if err := wrapkey.ValidateKEKID(req.KEKID); err != nil || req.Version == 0 {
		return refused("invalid kek id or version")
	}
	c, err := threshold.ParseCommitments(req.Commitments)
	if err != nil || len(c) != req.Threshold || len(req.PublicKey) != wrapkey.PublicKeySize {
		return refused("malformed commitments or public key")
	}
	if req.Dealing == "" {
		return refused("no dealing id")
	}
	// Decide on a state at least as recent as the leader's.
	if err := n.waitApplied(ctx, req.Applied); err != nil {
		if ctx.Err() != nil {
			// The leader gave up on this request (it was cancelled or
			// timed out there): that, not this node, is the cause.
			return refused("the dealing leader's request ended (%v) while this node was applying index %d", ctx.Err(), req.Applied)
		}
		return refused("this node has not applied index %d yet", req.Applied)
	}
	why, recover, err := n.sealable(req)
	if err != nil {
		return SealResponse{}, err
	}
	if why != "" {
		return refused("%s", why)
	}
	live, err := n.liveShare(req.KEKID, req.Version)
	if err != nil {
		return SealResponse{}, err
	}
	if live && !recover {
		return refused("this node holds a live share of kek %q v%d", req.KEKID, req.Version)
	}
	if live {
		// An escrow recovery re-deals the version: this node's old share
		// cannot be combined with the new ones, so its key is replaced.
		n.log.Warn("keysvc: escrow recovery replaces this node's live share", "kek", req.KEKID, "version", req.Version, "proposal", req.Proposal)
	}
	if err := kekhsm.Destroy(n.cfg.Token, req.KEKID, req.Version); err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
		return SealResponse{}, err
	}
	sh := new(threshold.Share)
	if err := sh.UnmarshalBinary(req.Share); err != nil {
		return refused("share: %v", err)
	}
	defer sh.Zeroize()
	v := &kek.Version{ID: req.KEKID, Version: req.Version, Threshold: req.Threshold, PublicKey: req.PublicKey, Commitments: c}
	sealed, err := kekhsm.SealShare(n.cfg.Token, v, sh)
	if err != nil {
		_ = kekhsm.Destroy(n.cfg.Token, req.KEKID, req.Version)
		return SealResponse{}, err
	}
	text := ledger.ShareSealedStatement(n.cfg.Cluster, n.cfg.NodeID, req.KEKID, req.Version, sh.Index, req.PublicKey, req.Commitments, sealed, req.Proposal)
	stmt, err := n.keys.signStatement(text)
	if err != nil {
		_ = kekhsm.Destroy(n.cfg.Token, req.KEKID, req.Version)
		return SealResponse{}, err
	}
	n.dealings.Store(kek.Label(req.KEKID, req.Version), req.Dealing)
	n.log.Info("keysvc: sealed kek share", "kek", req.KEKID, "version", req.Version, "index", sh.Index, "proposal", req.Proposal)
	return SealResponse{Sealed: sealed, Statement: stmt}, nil
}

// sealable says why this node's state does not allow sealing req ("" if it does).
func (n *Node) sealable(req SealRequest) (why string, recover bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		c, found, err := state.GetCeremony(tx, req.Proposal)
		if err != nil {
			return err
		}
		if !found || c.Status != state.StatusPending {
			why = fmt.Sprintf("no pending proposal %q", req.Proposal)
			return nil
		}
		p, err := ceremony.ParseProposal([]byte(c.Proposal))
		if err != nil {
			return err
		}
		if !p.Operation().DealsKEK() || p.KEKID() != req.KEKID {
			why = fmt.Sprintf("proposal %s does not deal kek %q", req.Proposal, req.KEKID)
			return nil
		}
		k, found, err := state.GetKEK(tx, req.KEKID)
		if err != nil {
			return err
		}
		var want uint32
		switch ps := p.Params.(type) {
		case ceremony.KEKCreate:
			if found {
				why = fmt.Sprintf("kek %q exists", req.KEKID)
				return nil
			}
			want = 1
		case ceremony.KEKRotate:
			if !found {
				why = fmt.Sprintf("no kek %q", req.KEKID)
				return nil
			}
			want = k.Latest() + 1
		case ceremony.EscrowRecover:
			v, ok := k.Version(ps.Version)
			if !found || !ok || v.Escrow == nil || v.State == ledger.KEKDestroyed {
				why = fmt.Sprintf("kek %q v%d is not an escrowed version that can be recovered", req.KEKID, ps.Version)
				return nil
			}
			want, recover = ps.Version, true
		}
		if req.Version != want {
			why = fmt.Sprintf("proposal %s deals v%d, not v%d", req.Proposal, want, req.Version)
			return nil
		}
		// The approval must make the proposal ready in this node's own
		// state: no quorum, nothing sealed (and no live key replaced).
		out, err := n.evaluateWith(tx, c, p, req.Officer, req.Signature)
		if err != nil || !out.Ready {
			why = fmt.Sprintf("proposal %s is not approved by a quorum (%v)", req.Proposal, cmp(err, errors.New(out.String())))
		}
		return nil
	})
	return why, recover, err
}

// liveShare reports whether this node's sealing key of a version protects
// the share recorded for it: the version is committed, not destroyed, and
// the node's recorded sealed share opens and verifies under the key.
func (n *Node) liveShare(id string, ver uint32) (bool, error) {
	var (
		v  *kek.Version
		hs state.HeldShare
		ok bool
	)
	err := n.state.view(func(tx *bbolt.Tx) error {
		k, found, err := state.GetKEK(tx, id)
		if err != nil || !found {
			return err
		}
		kv, found := k.Version(ver)
		if !found || kv.State == ledger.KEKDestroyed {
			return nil
		}
		if hs, ok = kv.Share(n.cfg.NodeID); !ok {
			return nil
		}
		v, err = kv.Public(id)
		return err
	})
	if err != nil || !ok {
		return false, err
	}
	sh, err := kekhsm.OpenShare(n.cfg.Token, v, hs.Index, hs.Sealed)
	switch {
	case err == nil:
		sh.Zeroize()
		return true, nil
	case errors.Is(err, kek.ErrShareUnavailable), errors.Is(err, kek.ErrShareCorrupt):
		return false, nil
	}
	return false, err
}

// DiscardShare destroys this node's sealing key of a version dealt but not
// committed. It refuses (ErrLiveShare) when the key protects a committed
// share: a peer can never shred a live version this way.
func (n *Node) DiscardShare(ctx context.Context, from string, req DiscardRequest) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if err := wrapkey.ValidateKEKID(req.KEKID); err != nil || req.Version == 0 {
		return badRequest("discard: invalid kek id or version")
	}
	if leader, _ := n.raft.Leader(); from != leader {
		return fmt.Errorf("%w: %q is not the leader", ErrDiscardRefused, from)
	}
	label := kek.Label(req.KEKID, req.Version)
	if d, ok := n.dealings.Load(label); !ok || d.(string) != req.Dealing || req.Dealing == "" {
		return fmt.Errorf("%w: this node's key %s was not sealed for dealing %q", ErrDiscardRefused, label, req.Dealing)
	}
	live, err := n.liveShare(req.KEKID, req.Version)
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("%w: kek %q v%d", ErrLiveShare, req.KEKID, req.Version)
	}
	if err := kekhsm.Destroy(n.cfg.Token, req.KEKID, req.Version); err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
		return err
	}
	n.dealings.CompareAndDelete(label, req.Dealing)
	return nil
}

// signStatement signs a node statement with both keys.
func (k *nodeKeys) signStatement(text string) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.ml == nil {
		return nil, ErrClosed
	}
	return ledger.SignStatement(text, k.name, k.ec, k.ml)
}

// Attest proposes node from's destruction statement. Leader only; the
// statement, not the caller, is the proof: Apply verifies it with the
// node's recorded keys, and rejects (a *state.CommandError) one that does not
// attest a destroyed version from's share was sealed under.
func (n *Node) Attest(ctx context.Context, from string, req AttestRequest, actor ledger.Actor) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if wrapkey.ValidateKEKID(req.KEKID) != nil || req.Version == 0 || len(req.Statement) == 0 || len(req.Statement) > ledger.MaxStatementSize {
		return badRequest("attest: invalid kek id or version, or no statement of at most %d bytes", ledger.MaxStatementSize)
	}
	if err := n.leaderOnly(); err != nil {
		return err
	}
	res, err := n.propose(ctx, &state.Command{Type: ledger.TypeAttest, Time: state.FormatTime(n.cfg.Now()), ServedBy: n.cfg.NodeID,
		Actor: state.ToActorJSON(actor), NodeID: from, Attest: &state.Attestation{KEKID: req.KEKID, Version: req.Version, Statement: req.Statement}})
	if err != nil {
		return fmt.Errorf("keysvc: attest: %w", err)
	}
	return res.Err()
}
