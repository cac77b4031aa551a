// The node's end of the peer channel (keysvc/peer over the raft listener's
// "custos-peer/1" ALPN): the calls peers make to this node, and the Forwarder
// this node uses to reach its peers. Nodes are addressed by id and raft
// address from the node table; the channel certifies both ends.

package keysvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/internal/strictjson"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/peer"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// Peer call names.
const (
	callAppend  = "append"
	callSeal    = "seal"
	callDiscard = "discard"
	callAttest  = "attest"
	callRelease = "release"
	callCommit  = "commit"
)

type appendCall struct {
	Entries []peer.Entry `json:"entries"`
}

type appendAnswer struct {
	First uint64 `json:"first"`
}

type commitAnswer struct {
	Index uint64 `json:"index"`
}

// peerConn adapts a raft peer connection to peer.Conn.
type peerConn struct{ *raft.PeerConn }

func (c peerConn) NodeID() string { return c.PeerID }

// peerListener adapts the raft peer listener to hand out peer.Conns.
type peerListener struct{ net.Listener }

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*raft.PeerConn); ok {
		return peerConn{pc}, nil
	}
	return c, nil // not certified: the server refuses its calls
}

// startPeerChannel serves peers' calls on the raft listener's peer ALPN and
// makes the channel this node's Forwarder.
func (n *Node) startPeerChannel() {
	n.peerSrv = peer.Serve(peerListener{n.raft.PeerListener()}, map[string]peer.Handler{
		callAppend: n.servePeerAppend,
		callSeal:   peerCall(n, n.SealShare),
		callDiscard: peerCall(n, func(ctx context.Context, from string, req DiscardRequest) (struct{}, error) {
			return struct{}{}, n.DiscardShare(ctx, from, req)
		}),
		callAttest: peerCall(n, func(ctx context.Context, from string, req AttestRequest) (struct{}, error) {
			return struct{}{}, n.Attest(ctx, from, req, n.nodeActor(from))
		}),
		callRelease: peerCall(n, n.ReleaseShare),
		callCommit: peerCall(n, func(ctx context.Context, _ string, _ struct{}) (commitAnswer, error) {
			i, err := n.AppliedCommit(ctx)
			return commitAnswer{Index: i}, err
		}),
	}, peerAnswer, n.log)
	n.peerCli = peer.NewClient(func(ctx context.Context, addr string) (peer.Conn, error) {
		c, err := n.raft.DialPeer(ctx, addr)
		if err != nil {
			return nil, err
		}
		return peerConn{c}, nil
	})
	var f Forwarder = &peerForwarder{n: n}
	n.fwd.Store(&f)
}

// peerCall decodes a call's body strictly and passes it, with the calling
// node, to fn; the caller must be a current member.
func peerCall[Req, Resp any](n *Node, fn func(context.Context, string, Req) (Resp, error)) peer.Handler {
	return func(ctx context.Context, from string, body []byte) (any, error) {
		if !n.IsMember(from) {
			return nil, errNotMember(from)
		}
		var req Req
		if err := strictJSON(body, &req); err != nil {
			return nil, err
		}
		return fn(ctx, from, req)
	}
}

type notMemberError string

func (e notMemberError) Error() string {
	return fmt.Sprintf("node %q is not a member of the cluster", string(e))
}

func errNotMember(id string) error { return notMemberError(id) }

// badRequestError is a call whose body or values are not valid: answered
// bad_request, or malformed_request when the body is not well-formed JSON.
type badRequestError struct{ err error }

func (e badRequestError) Error() string { return "invalid call: " + e.err.Error() }

func (e badRequestError) Unwrap() error { return e.err }

func badRequest(format string, a ...any) error { return badRequestError{fmt.Errorf(format, a...)} }

// strictJSON decodes a call's body strictly (internal/strictjson): one
// JSON object in valid UTF-8, nothing after it, no unknown fields.
func strictJSON(body []byte, v any) error {
	if err := strictjson.Decode(body, v); err != nil {
		return badRequestError{err}
	}
	return nil
}

// servePeerAppend is the leader's end of a follower's forwarded batch. The
// caller may log entries only as served by itself and in its own name
// (CheckForwarded).
func (n *Node) servePeerAppend(ctx context.Context, from string, body []byte) (any, error) {
	if !n.IsMember(from) {
		return nil, errNotMember(from)
	}
	var req appendCall
	if err := strictJSON(body, &req); err != nil {
		return nil, err
	}
	switch {
	case len(req.Entries) == 0:
		return nil, badRequest("no entries")
	case len(req.Entries) > MaxAppendBatch:
		return nil, fmt.Errorf("%w: %d entries, want 1..%d", ErrBatchTooLarge, len(req.Entries), MaxAppendBatch)
	}
	entries := make([]ledger.Entry, len(req.Entries))
	for i, we := range req.Entries {
		e := we.Ledger()
		switch e.Node {
		case "":
			e.Node = from
		case from:
		default:
			return nil, fmt.Errorf("%w: entry %d is attributed to node %q; node %q may forward only its own", ErrForgedEntry, i, e.Node, from)
		}
		if state.Reserved(e.Type) {
			return nil, badRequest("entry %d: type %q is the state machine's own", i, e.Type)
		}
		check := e // the leader stamps index and time; the rest must be valid now
		check.Index, check.Time = 0, time.Unix(0, 0)
		if _, err := check.Marshal(); err != nil {
			return nil, badRequest("entry %d: %v", i, err)
		}
		if err := n.CheckForwarded(from, e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		entries[i] = e
	}
	first, err := n.AppendBatch(ctx, entries)
	if err != nil {
		return nil, err
	}
	return appendAnswer{First: first}, nil
}

// nodeActor is member node id as the actor of what it asks.
func (n *Node) nodeActor(id string) ledger.Actor {
	a := ledger.Actor{Identity: identity.Identity{Cluster: n.cfg.Cluster, Name: id, Role: identity.RoleNode}.String(), Role: string(identity.RoleNode)}
	_ = n.state.view(func(tx *bbolt.Tx) error {
		if r, found, err := state.GetNode(tx, id); err == nil && found {
			a = Actor(identity.Identity{Cluster: n.cfg.Cluster, Name: id, Role: identity.RoleNode, Region: r.Region}, nil)
			a.CertFingerprint = r.Cert
		}
		return nil
	})
	return a
}

// peerAnswer describes a handler's error to the calling node, under an
// errcode code: all but errcode.Internal are refusals of what the call
// asked (a client error, in HTTP's terms); internal is this node's own
// failure.
func peerAnswer(err error) peer.Answer {
	var (
		nl *NotLeaderError
		nm notMemberError
		br badRequestError
		me *strictjson.MalformedError
		ce *state.CommandError
	)
	code := errcode.Internal
	switch {
	case errors.As(err, &nl):
		return peer.Answer{Code: errcode.NotLeader, Message: err.Error(), LeaderID: nl.LeaderID}
	case errors.As(err, &nm):
		code = errcode.NotMember
	case errors.As(err, &br) && errors.As(err, &me):
		code = errcode.MalformedRequest
	case errors.As(err, &br):
		code = errcode.BadRequest
	case errors.Is(err, ErrForgedEntry):
		code = errcode.ForgedEntry
	case errors.Is(err, ErrBatchTooLarge):
		code = errcode.TooLarge
	case errors.Is(err, ErrNoQuorum):
		code = errcode.NoQuorum
	case errors.Is(err, ErrSealRefused):
		code = errcode.SealRefused
	case errors.Is(err, ErrLiveShare):
		code = errcode.LiveShare
	case errors.Is(err, ErrDiscardRefused):
		code = errcode.DiscardRefused
	case errors.Is(err, ErrReleaseRefused):
		code = errcode.ReleaseRefused
	case errors.As(err, &ce):
		code = errcode.Rejected
	}
	return peer.Answer{Code: code, Message: err.Error()}
}

// peerForwarder is the Forwarder over the peer channel. The Forwarder names
// nodes by API address (the node table's key for them); it calls the node
// registered there, at its raft address.
type peerForwarder struct{ n *Node }

// target finds the member registered with API address api.
func (f *peerForwarder) target(api string) (id, addr string, err error) {
	err = f.n.state.view(func(tx *bbolt.Tx) error {
		return state.ForNodes(tx, func(r state.NodeRecord) error {
			if r.APIAddr == api && !r.Removed {
				id, addr = r.ID, r.RaftAddr
			}
			return nil
		})
	})
	if err == nil && id == "" {
		err = fmt.Errorf("keysvc: no member is registered at %s", api)
	}
	return id, addr, err
}

// call makes one call and maps the answer's refusal to this package's errors.
func (f *peerForwarder) call(ctx context.Context, api, name string, req, resp any) error {
	id, addr, err := f.target(api)
	if err != nil {
		return err
	}
	err = f.n.peerCli.Call(ctx, id, addr, name, req, resp)
	var pe *peer.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case errcode.NotLeader:
		return &NotLeaderError{LeaderID: pe.LeaderID, LeaderAPI: f.n.apiAddrOf(pe.LeaderID)}
	case errcode.SealRefused:
		return fmt.Errorf("%w: %w", ErrSealRefused, err)
	case errcode.LiveShare:
		return fmt.Errorf("%w: %w", ErrLiveShare, err)
	case errcode.DiscardRefused:
		return fmt.Errorf("%w: %w", ErrDiscardRefused, err)
	case errcode.ReleaseRefused:
		return fmt.Errorf("%w: %w", ErrReleaseRefused, err)
	case errcode.TooLarge:
		return fmt.Errorf("%w: %w", ErrBatchTooLarge, err)
	case "", errcode.NoQuorum, errcode.Internal:
		if name == callAppend {
			if !pe.Sent {
				// Nothing reached the leader: not appended, safe to retry.
				return fmt.Errorf("%w: leader %s not reached: %w", ErrNotLeader, id, err)
			}
			// The leader may have proposed the batch: the outcome is unknown.
			return fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
	}
	return err
}

func (f *peerForwarder) ForwardAppend(ctx context.Context, leaderAPI string, entries []ledger.Entry) (uint64, error) {
	req := appendCall{Entries: make([]peer.Entry, len(entries))}
	for i, e := range entries {
		req.Entries[i] = peer.FromLedger(e)
	}
	var a appendAnswer
	err := f.call(ctx, leaderAPI, callAppend, req, &a)
	return a.First, err
}

func (f *peerForwarder) SealShare(ctx context.Context, peerAPI string, req SealRequest) (SealResponse, error) {
	var resp SealResponse
	return resp, f.call(ctx, peerAPI, callSeal, req, &resp)
}

func (f *peerForwarder) DiscardShare(ctx context.Context, peerAPI string, req DiscardRequest) error {
	return f.call(ctx, peerAPI, callDiscard, req, nil)
}

func (f *peerForwarder) ForwardAttest(ctx context.Context, leaderAPI string, req AttestRequest) error {
	return f.call(ctx, leaderAPI, callAttest, req, nil)
}

func (f *peerForwarder) ReleaseShare(ctx context.Context, peerAPI string, req peer.ReleaseRequest) (peer.ReleaseResponse, error) {
	var resp peer.ReleaseResponse
	return resp, f.call(ctx, peerAPI, callRelease, req, &resp)
}

func (f *peerForwarder) LeaderCommit(ctx context.Context, leaderAPI string) (uint64, error) {
	var a commitAnswer
	return a.Index, f.call(ctx, leaderAPI, callCommit, struct{}{}, &a)
}
