// An in-process network and in-memory storage for nodes in tests.

package raft

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// MemNetwork connects nodes opened with Config.Memory set to it: raft messages travel
// through memory, and each node's log, stable store and snapshots live in the network,
// keyed by node ID, so a node shut down and opened again with the same ID restarts with
// its state, as from a disk. It is safe for concurrent use.
type MemNetwork struct {
	mu       sync.Mutex
	nodes    map[string]*memNode // by ID, open nodes only
	stores   map[string]*memStores
	isolated map[string]bool
	idents   map[string]memIdentity // by node ID, set by SetPeerIdentity
}

type memNode struct {
	addr   hraft.ServerAddress
	trans  *hraft.InmemTransport
	peers  *peerListener
	links  *linkSet
	verify func(*x509.Certificate) error // Config.VerifyPeer
}

// memIdentity is what a node's peer-channel connections show the other end.
type memIdentity struct {
	id   string
	cert *x509.Certificate
}

type memStores struct {
	logs  *hraft.InmemStore
	snaps *hraft.InmemSnapshotStore
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{
		nodes:    map[string]*memNode{},
		stores:   map[string]*memStores{},
		isolated: map[string]bool{},
		idents:   map[string]memIdentity{},
	}
}

// SetPeerIdentity sets what peer-channel connections from and to node show the other
// end: PeerConn.PeerID id and PeerConn.Certificate cert (which the other node's
// Config.VerifyPeer, if set, must accept). By default a node shows its own ID and no
// certificate. It lets tests play a node that claims another's identity or holds a
// revoked certificate. It applies to connections made after the call, and survives a
// restart of the node.
func (m *MemNetwork) SetPeerIdentity(node, id string, cert *x509.Certificate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idents[node] = memIdentity{id: id, cert: cert}
}

// identity returns node's peer-channel identity. Called with m.mu held.
func (m *MemNetwork) identity(node string) memIdentity {
	if id, ok := m.idents[node]; ok {
		return id
	}
	return memIdentity{id: node}
}

// dialPeer connects node from to the node at addr on the peer channel.
func (m *MemNetwork) dialPeer(ctx context.Context, from, addr string) (*PeerConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("raft: dial peer %s: %w", addr, err)
	}
	m.mu.Lock()
	src := m.nodes[from]
	var dst *memNode
	var dstName string
	for id, n := range m.nodes {
		if string(n.addr) == addr {
			dst, dstName = n, id
		}
	}
	srcID, dstID := m.identity(from), m.identity(dstName)
	cut := m.isolated[from] || m.isolated[dstName]
	m.mu.Unlock()
	switch {
	case src == nil:
		return nil, fmt.Errorf("raft: dial peer %s: %w", addr, ErrShutdown)
	case dst == nil:
		return nil, fmt.Errorf("raft: dial peer %s: no node at that address on this MemNetwork", addr)
	case cut:
		return nil, fmt.Errorf("raft: dial peer %s: unreachable (isolated)", addr)
	}
	if dstID.cert != nil && src.verify != nil {
		if err := src.verify(dstID.cert); err != nil {
			return nil, fmt.Errorf("raft: dial peer %s: peer %q refused: %w", addr, dstID.id, err)
		}
	}
	if srcID.cert != nil && dst.verify != nil {
		if err := dst.verify(srcID.cert); err != nil {
			return nil, fmt.Errorf("raft: dial peer %s: refused by the peer: %w", addr, err)
		}
	}
	a, b := net.Pipe()
	cl := src.links.add(a, dstID.id, dstID.cert)
	sl := dst.links.add(b, srcID.id, srcID.cert)
	if !dst.peers.deliver(&PeerConn{Conn: sl, PeerID: srcID.id, Certificate: srcID.cert}) {
		cl.Close()
		sl.Close()
		return nil, fmt.Errorf("raft: dial peer %s: peer listener closed or full", addr)
	}
	return &PeerConn{Conn: cl, PeerID: dstID.id, Certificate: dstID.cert}, nil
}

// join registers node id at addr, with its peer listener, connection registry and
// VerifyPeer, and returns its transport and stores.
func (m *MemNetwork) join(id, addr string, peers *peerListener, links *linkSet, verify func(*x509.Certificate) error) (*hraft.InmemTransport, *memStores, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[id]; ok {
		return nil, nil, fmt.Errorf("raft: node %q is already open on this MemNetwork", id)
	}
	st := m.stores[id]
	if st == nil {
		st = &memStores{logs: hraft.NewInmemStore(), snaps: hraft.NewInmemSnapshotStore()}
		m.stores[id] = st
	}
	a, trans := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	m.nodes[id] = &memNode{addr: a, trans: trans, peers: peers, links: links, verify: verify}
	m.relink()
	return trans, st, nil
}

// leave unregisters node id; its stores stay for a restart.
func (m *MemNetwork) leave(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nodes[id]; ok {
		delete(m.nodes, id)
		n.trans.DisconnectAll()
		for _, o := range m.nodes {
			o.trans.Disconnect(n.addr)
		}
	}
}

// Isolate cuts every link to and from node id until Heal: raft messages and new
// peer-channel connections fail, and its open peer-channel connections are closed. The
// node keeps running.
func (m *MemNetwork) Isolate(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.isolated[id] = true
	m.relink()
	if n := m.nodes[id]; n != nil {
		n.links.closeIf(func(*link) bool { return true })
	}
}

// Heal restores every link cut by Isolate.
func (m *MemNetwork) Heal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.isolated)
	m.relink()
}

// relink connects every pair of open nodes neither of which is isolated, and disconnects
// the rest. Called with m.mu held.
func (m *MemNetwork) relink() {
	for id, a := range m.nodes {
		for jd, b := range m.nodes {
			if id == jd {
				continue
			}
			if m.isolated[id] || m.isolated[jd] {
				a.trans.Disconnect(b.addr)
			} else {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}
