// An in-process network and in-memory storage for nodes in tests.

package raft

import (
	"fmt"
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
}

type memNode struct {
	addr  hraft.ServerAddress
	trans *hraft.InmemTransport
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
	}
}

// join registers node id at addr and returns its transport and stores.
func (m *MemNetwork) join(id, addr string) (*hraft.InmemTransport, *memStores, error) {
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
	m.nodes[id] = &memNode{addr: a, trans: trans}
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

// Isolate cuts every link to and from node id until Heal. The node keeps running.
func (m *MemNetwork) Isolate(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.isolated[id] = true
	m.relink()
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
