// The peer channel and the registry of established connections. The raft listener also
// accepts the ALPN protocol "custos-peer/1": such connections go to Node.PeerListener,
// for the node's owner to run its own node-to-node protocol over the same strict mutual
// TLS. Every connection, raft or peer, inbound or outbound, is registered under its
// peer's identity, so that DropPeer and ReverifyPeers can close those of a peer that is
// no longer accepted.

package raft

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
)

// peerQueue bounds peer-channel connections accepted but not yet taken by Accept; more
// are closed at once.
const peerQueue = 16

// PeerConn is a connection on the peer channel, accepted by Node.PeerListener or dialled
// by Node.DialPeer. Its identity fields are set once the handshake verified them and are
// read-only. Like a net.Conn it may be read and written concurrently by one reader and one
// writer; Close is safe at any time.
type PeerConn struct {
	net.Conn

	// PeerID is the peer's node id: Config.PeerID of its certificate, or with
	// Config.Memory the identity the MemNetwork gives it (MemNetwork.SetPeerIdentity).
	// Empty on TCP if Config.PeerID is nil.
	PeerID string

	// Certificate is the peer's leaf certificate, verified against Config.CAs and by
	// Config.VerifyPeer. With Config.Memory, the certificate set by
	// MemNetwork.SetPeerIdentity, or nil.
	Certificate *x509.Certificate

	tlsConn *tls.Conn // nil in memory
}

// ConnectionState returns the TLS state of the connection (TLS 1.3, X25519MLKEM768,
// ALPN "custos-peer/1", the peer's verified chain). In memory there is no TLS: it
// returns the zero state with PeerCertificates holding Certificate, if set.
func (c *PeerConn) ConnectionState() tls.ConnectionState {
	if c.tlsConn != nil {
		return c.tlsConn.ConnectionState()
	}
	var cs tls.ConnectionState
	if c.Certificate != nil {
		cs.PeerCertificates = []*x509.Certificate{c.Certificate}
	}
	return cs
}

// PeerListener returns the listener of inbound peer-channel connections: on TCP, those
// that negotiated ALPN "custos-peer/1" on this node's raft address after the full
// verification raft connections get (TLS 1.3, X25519MLKEM768 only, a client certificate
// from Config.CAs, Config.VerifyPeer, Config.PeerID); with Config.Memory, those dialled
// by other nodes on the same MemNetwork. Accept returns a *PeerConn whose handshake is
// complete. Raft connections never reach it, and it never hands connections to raft.
//
// It is the same listener on every call and is safe for concurrent use. Up to 16
// connections wait for Accept; more are closed. Close stops it for good (later peer
// connections are closed at once) without affecting raft; Shutdown closes it too.
func (n *Node) PeerListener() net.Listener { return n.peers }

// DialPeer opens a peer-channel connection to the node whose raft address is addr. On
// TCP it dials with ALPN "custos-peer/1" and the configuration raft itself dials with:
// the server's certificate must chain to Config.CAs, name the host of addr and pass
// Config.VerifyPeer (and Config.PeerID); this node presents its own certificate. With
// Config.Memory it connects through the MemNetwork with net.Pipe (synchronous, no
// buffering), failing if no node is at addr or either end is isolated.
//
// The caller checks that PeerConn.PeerID is the node it meant to reach, and closes the
// connection; Shutdown closes those still open. Under TLS 1.3 the
// server verifies this node's certificate after the client's side of the handshake is
// done: a refusal by the server arrives as an error at the first read, not from DialPeer.
// Errors: ctx's,
// dial and handshake errors, ErrShutdown after Shutdown. Safe for concurrent use.
func (n *Node) DialPeer(ctx context.Context, addr string) (*PeerConn, error) {
	if n.down.Load() {
		return nil, fmt.Errorf("dial peer: %w", ErrShutdown)
	}
	if n.cfg.Memory != nil {
		return n.cfg.Memory.dialPeer(ctx, n.cfg.ID, addr)
	}
	l, err := n.stream.dial(ctx, addr, n.stream.peerClient)
	if err != nil {
		return nil, fmt.Errorf("raft: dial peer %s: %w", addr, err)
	}
	return &PeerConn{Conn: l, PeerID: l.id, Certificate: l.leaf, tlsConn: l.Conn.(*tls.Conn)}, nil
}

// DropPeer closes every connection of this node, raft and peer channel, inbound and
// outbound, whose peer has node id id, and returns how many it closed. It needs
// Config.PeerID (without it, TCP connections carry no node id and none match). Call it
// after making Config.VerifyPeer refuse that peer, so that it cannot reconnect: raft
// redials, and every new handshake runs VerifyPeer. Raft connections of a MemNetwork are
// not closed (use MemNetwork.Isolate). Safe for concurrent use.
func (n *Node) DropPeer(id string) int {
	return n.links.closeIf(func(l *link) bool { return l.id == id })
}

// ReverifyPeers runs Config.VerifyPeer (and Config.PeerID, which must give the same id)
// again on the certificate of every established connection, raft and peer channel, and
// closes those that now fail; it returns how many it closed. Call it when membership
// changes or a certificate is revoked. Connections without a certificate (in memory,
// unless MemNetwork.SetPeerIdentity gave one) are kept. Safe for concurrent use; VerifyPeer
// runs on the caller's goroutine.
func (n *Node) ReverifyPeers() int {
	return n.links.closeIf(func(l *link) bool {
		if l.leaf == nil {
			return false
		}
		if n.cfg.Memory != nil {
			return n.cfg.VerifyPeer != nil && n.cfg.VerifyPeer(l.leaf) != nil
		}
		id, err := n.cfg.checkPeer(l.leaf)
		if err != nil || id != l.id {
			n.log.Warn("raft: closing connection of a peer no longer accepted",
				"peer", l.id, "remote", l.RemoteAddr().String(), "err", err)
			return true
		}
		return false
	})
}

// link is an established connection registered in a linkSet under its peer's identity.
// Close unregisters it.
type link struct {
	net.Conn
	id   string
	leaf *x509.Certificate
	set  *linkSet
}

func (l *link) Close() error {
	l.set.remove(l)
	return l.Conn.Close()
}

// linkSet is the registry of a node's established connections. Safe for concurrent use.
type linkSet struct {
	mu sync.Mutex
	m  map[*link]struct{}
}

func newLinkSet() *linkSet { return &linkSet{m: map[*link]struct{}{}} }

func (s *linkSet) add(c net.Conn, id string, leaf *x509.Certificate) *link {
	l := &link{Conn: c, id: id, leaf: leaf, set: s}
	s.mu.Lock()
	s.m[l] = struct{}{}
	s.mu.Unlock()
	return l
}

func (s *linkSet) remove(l *link) {
	s.mu.Lock()
	delete(s.m, l)
	s.mu.Unlock()
}

// closeIf closes the links for which drop reports true and returns how many. drop runs
// without the lock held.
func (s *linkSet) closeIf(drop func(*link) bool) int {
	s.mu.Lock()
	all := make([]*link, 0, len(s.m))
	for l := range s.m {
		all = append(all, l)
	}
	s.mu.Unlock()
	n := 0
	for _, l := range all {
		if drop(l) {
			l.Close()
			n++
		}
	}
	return n
}

// peerListener queues inbound peer-channel connections for Accept. Safe for concurrent
// use.
type peerListener struct {
	addr net.Addr
	ch   chan *PeerConn

	mu     sync.Mutex
	closed bool
	done   chan struct{}
}

func newPeerListener(addr net.Addr) *peerListener {
	return &peerListener{addr: addr, ch: make(chan *PeerConn, peerQueue), done: make(chan struct{})}
}

// deliver queues c for Accept; false if the listener is closed or its queue full, in
// which case the caller closes c.
func (l *peerListener) deliver(c *PeerConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.ch <- c:
		return true
	default:
		return false
	}
}

// Accept returns the next peer-channel connection (a *PeerConn), or net.ErrClosed once
// the listener is closed.
func (l *peerListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener and closes the connections waiting for Accept. Idempotent.
func (l *peerListener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	for {
		select {
		case c := <-l.ch:
			c.Close()
		default:
			return nil
		}
	}
}

// Addr returns the node's raft address, which peers dial.
func (l *peerListener) Addr() net.Addr { return l.addr }
