// Package httpapitest has what tests of the API, its client and the CLI
// share: Fake, an in-memory httpapi.Service whose log is a real RFC 6962
// tree (its proofs and signed checkpoints verify), and PKI, a cluster CA
// issuing certificates to files, with a TLS test server.
package httpapitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// Fake is an httpapi.Service in memory. By default it is a ready leader of
// a one-node cluster; setters change that. Methods named in SetError
// return that error instead. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	info     state.NodeInfo
	cluster  string
	leader   keysvc.Leader
	members  []keysvc.Member
	regions  []string
	notReady error
	errs     map[string]error
	panics   map[string]bool
	calls    []string
	raws     [][]byte
	hashes   []tlog.Hash
	added    []Added
	ec       *ecdsa.PrivateKey
	ml       *mldsa65.PrivateKey
	key      ledger.NodeKey
	metrics  keysvc.Metrics
	raft     raft.Stats
	revoked  map[string]state.Revocation // by fingerprint or "<role>/<name>"
}

// Added records one AddNode call.
type Added struct {
	Info  state.NodeInfo
	Actor ledger.Actor
}

// NewFake returns the leader of cluster, node id in region, whose API is at
// apiAddr (the test server's URL once known: see SetAPIAddr).
func NewFake(cluster, id, region, apiAddr string) *Fake {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	f := &Fake{
		cluster: cluster,
		ec:      ec, ml: ml,
		key:     ledger.NodeKey{Name: ledger.KeyName(cluster, id), ECDSA: &ec.PublicKey, MLDSA: mlPub},
		regions: []string{region},
		errs:    map[string]error{},
		panics:  map[string]bool{},
	}
	keys, err := f.key.MarshalText()
	if err != nil {
		panic(err)
	}
	f.info = state.NodeInfo{ID: id, Region: region, RaftAddr: "127.0.0.1:1", APIAddr: apiAddr, Keys: string(keys)}
	f.leader = keysvc.Leader{ID: id, APIAddr: apiAddr}
	f.members = []keysvc.Member{{ID: id, Region: region, RaftAddr: f.info.RaftAddr, APIAddr: apiAddr, Voter: true, Registered: true, Leader: true}}
	return f
}

// Revoke records r: the certificate r.Fingerprint, or every certificate of
// r.Identity ("<role>/<name>"), is revoked from now on.
func (f *Fake) Revoke(r state.Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked == nil {
		f.revoked = map[string]state.Revocation{}
	}
	if r.Fingerprint != "" {
		f.revoked[r.Fingerprint] = r
	} else {
		f.revoked[r.Identity] = r
	}
}

// Revoked implements httpapi.Service.
func (f *Fake) Revoked(id identity.Identity, fingerprint string) (state.Revocation, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.revoked[fingerprint]; ok && fingerprint != "" {
		return r, true
	}
	r, ok := f.revoked[string(id.Role)+"/"+id.Name]
	return r, ok
}

// Key is the fake node's checkpoint key.
func (f *Fake) Key() ledger.NodeKey { return f.key }

// SetAPIAddr sets the node's own API address (and the leader's, if it leads).
func (f *Fake) SetAPIAddr(api string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leader.ID == f.info.ID {
		f.leader.APIAddr = api
	}
	f.info.APIAddr = api
	for i := range f.members {
		if f.members[i].ID == f.info.ID {
			f.members[i].APIAddr = api
		}
	}
}

// SetLeader makes another node (or, with id "", none) the leader: the
// leader-only methods return *keysvc.NotLeaderError naming it.
func (f *Fake) SetLeader(id, api string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = keysvc.Leader{ID: id, APIAddr: api}
	for i := range f.members {
		f.members[i].Leader = f.members[i].ID == id
	}
}

// AddMember adds a member to the status and node table.
func (f *Fake) AddMember(m keysvc.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = append(f.members, m)
	slices.SortFunc(f.members, func(a, b keysvc.Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

// SetNotReady makes Ready return err (nil: ready).
func (f *Fake) SetNotReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notReady = err
}

// SetError makes method (e.g. "Checkpoint") return err; nil clears it.
func (f *Fake) SetError(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, method)
		return
	}
	f.errs[method] = err
}

// SetPanic makes method panic.
func (f *Fake) SetPanic(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.panics[method] = true
}

// SetMetrics sets what Metrics returns.
func (f *Fake) SetMetrics(m keysvc.Metrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metrics = m
}

// SetRaftStats sets the raft figures Status reports, but for State, Term
// and LeaderID, which follow the fake's leader.
func (f *Fake) SetRaftStats(st raft.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raft = st
}

// Calls returns the methods called so far, in order (Info, Leader, Status
// and Metrics are not recorded: the handler's plumbing calls them).
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Added returns the AddNode calls that succeeded.
func (f *Fake) Added() []Added {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.added)
}

// Entry returns entry i, parsed.
func (f *Fake) Entry(i uint64) (ledger.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= uint64(len(f.raws)) {
		return ledger.Entry{}, ledger.ErrIndexOutOfRange
	}
	return ledger.ParseEntry(f.raws[i])
}

// begin records a call and returns its injected error; f.mu is held.
func (f *Fake) begin(method string) error {
	f.calls = append(f.calls, method)
	if f.panics[method] {
		panic("httpapitest: injected panic in " + method)
	}
	return f.errs[method]
}

func (f *Fake) notLeader() error {
	if f.leader.ID == f.info.ID {
		return nil
	}
	return &keysvc.NotLeaderError{LeaderID: f.leader.ID, LeaderAPI: f.leader.APIAddr}
}

// Info implements httpapi.Service.
func (f *Fake) Info() state.NodeInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

// Leader implements httpapi.Service.
func (f *Fake) Leader() keysvc.Leader {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

// Status implements httpapi.Service.
func (f *Fake) Status() keysvc.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := keysvc.Status{
		NodeID: f.info.ID, Region: f.info.Region, Cluster: f.cluster, Leader: f.leader,
		Members: slices.Clone(f.members), LogSize: uint64(len(f.raws)), AllowedRegions: slices.Clone(f.regions),
	}
	st.Raft = f.raft
	st.Raft.State = "Follower"
	if f.leader.ID == f.info.ID {
		st.Raft.State = "Leader"
	}
	st.Raft.Term, st.Raft.LeaderID = 3, f.leader.ID
	if f.notReady != nil {
		st.NotReady = f.notReady.Error()
	}
	return st
}

// Ready implements httpapi.Service.
func (f *Fake) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Ready"); err != nil {
		return err
	}
	return f.notReady
}

// Checkpoint implements httpapi.Service: a checkpoint of the whole log
// signed with the fake's keys, if it leads.
func (f *Fake) Checkpoint(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Checkpoint"); err != nil {
		return nil, err
	}
	if err := f.notLeader(); err != nil {
		return nil, err
	}
	root, err := f.root(uint64(len(f.raws)))
	if err != nil {
		return nil, err
	}
	cp := ledger.Checkpoint{Origin: ledger.Origin(f.cluster), Size: uint64(len(f.raws)), Hash: root}
	return ledger.SignCheckpoint(cp, f.key.Name, f.ec, f.ml)
}

// Entries implements httpapi.Service.
func (f *Fake) Entries(start uint64, limit int) ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Entries"); err != nil {
		return nil, err
	}
	size := uint64(len(f.raws))
	if start > size || limit < 1 {
		return nil, fmt.Errorf("httpapitest: entries from %d of %d: %w", start, size, ledger.ErrIndexOutOfRange)
	}
	end := min(size, start+uint64(limit))
	out := make([][]byte, 0, end-start)
	for _, r := range f.raws[start:end] {
		out = append(out, slices.Clone(r))
	}
	return out, nil
}

// ProveInclusion implements httpapi.Service.
func (f *Fake) ProveInclusion(index, size uint64) (ledger.InclusionProof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("ProveInclusion"); err != nil {
		return ledger.InclusionProof{}, err
	}
	if index >= size || size > uint64(len(f.raws)) {
		return ledger.InclusionProof{}, ledger.ErrIndexOutOfRange
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), f.reader())
	return ledger.InclusionProof{Index: index, Size: size, Hashes: p}, err
}

// ProveConsistency implements httpapi.Service.
func (f *Fake) ProveConsistency(oldSize, newSize uint64) (ledger.ConsistencyProof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("ProveConsistency"); err != nil {
		return ledger.ConsistencyProof{}, err
	}
	if oldSize > newSize || newSize > uint64(len(f.raws)) {
		return ledger.ConsistencyProof{}, ledger.ErrIndexOutOfRange
	}
	p := ledger.ConsistencyProof{Old: oldSize, New: newSize, Hashes: tlog.TreeProof{}}
	if oldSize == 0 {
		return p, nil
	}
	var err error
	p.Hashes, err = tlog.ProveTree(int64(newSize), int64(oldSize), f.reader())
	return p, err
}

// NodeKeys implements httpapi.Service.
func (f *Fake) NodeKeys() ([]ledger.NodeKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("NodeKeys"); err != nil {
		return nil, err
	}
	return []ledger.NodeKey{f.key}, nil
}

// Append implements httpapi.Service; on a follower it appends as if
// forwarded.
func (f *Fake) Append(ctx context.Context, e ledger.Entry) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Append"); err != nil {
		return 0, err
	}
	return f.append(e)
}

// AppendBatch implements httpapi.Service; leader only.
func (f *Fake) AppendBatch(ctx context.Context, entries []ledger.Entry) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("AppendBatch"); err != nil {
		return 0, err
	}
	if err := f.notLeader(); err != nil {
		return 0, err
	}
	first := uint64(len(f.raws))
	for _, e := range entries {
		if _, err := f.append(e); err != nil {
			f.raws, f.hashes = f.raws[:first], f.hashes[:tlog.StoredHashCount(int64(first))]
			return 0, err
		}
	}
	return first, nil
}

// AddNode implements httpapi.Service; leader only.
func (f *Fake) AddNode(ctx context.Context, info state.NodeInfo, actor ledger.Actor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("AddNode"); err != nil {
		return err
	}
	if err := f.notLeader(); err != nil {
		return err
	}
	f.added = append(f.added, Added{Info: info, Actor: actor})
	return nil
}

// Metrics implements httpapi.Service.
func (f *Fake) Metrics() keysvc.Metrics {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.metrics
}

// append logs e as the next entry; f.mu is held.
func (f *Fake) append(e ledger.Entry) (uint64, error) {
	i := uint64(len(f.raws))
	e.Index = i
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Node == "" {
		e.Node = f.info.ID
	}
	raw, err := e.Marshal()
	if err != nil {
		return 0, err
	}
	hs, err := tlog.StoredHashes(int64(i), raw, f.reader())
	if err != nil {
		return 0, err
	}
	f.raws = append(f.raws, raw)
	f.hashes = append(f.hashes, hs...)
	return i, nil
}

func (f *Fake) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(f.hashes)) {
				return nil, fmt.Errorf("httpapitest: no stored hash %d", x)
			}
			out[i] = f.hashes[x]
		}
		return out, nil
	})
}

func (f *Fake) root(size uint64) (tlog.Hash, error) {
	if size == 0 {
		return tlog.TreeHash(0, nil)
	}
	return tlog.TreeHash(int64(size), f.reader())
}
