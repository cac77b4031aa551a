// The trust file an auditor pins: the genesis entry, the node keys trusted
// at pin time, a signed checkpoint, and optionally the state the log had
// established at that checkpoint (from a verification of the auditor's own).

package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// TrustFormat is the "format" of a trust file.
const TrustFormat = "custos-trust/1"

// Trust is what an auditor pins and checks packs against. Build one with
// NewTrust (from what the cluster serves, checked) or ParseTrust (a saved
// file, checked again), never by hand: Verify relies on the checks.
type Trust struct {
	Cluster string
	Origin  string // "custos/<cluster>"
	// Genesis is the canonical bytes of entry 0, the cluster.genesis
	// entry: where the log's account of nodes and officers starts.
	Genesis []byte
	// NodeKeys is the verifier key text of the nodes trusted at pin time
	// (ledger.ParseNodeKeys), which verifies Checkpoint.
	NodeKeys string
	// Checkpoint is the pinned signed checkpoint.
	Checkpoint string
	// State, if set, is the state the log established by its Size (at
	// most the pinned checkpoint's), as a full verification of the
	// auditor's found it (Advance): it lets a later pack start at that
	// size and still be checked in full.
	State *State

	cp     ledger.Checkpoint
	signer string // key name
	keys   []ledger.NodeKey
	// served: the node keys are those the cluster serves, not pinned
	// (ServedTrust): no checkpoint, no genesis.
	served bool
}

// ServedTrust is the trust of a caller without a trust file: the node keys
// the cluster serves (GET /v1/ledger/keys, client NodeKeys) for cluster's origin. It checks
// that a checkpoint is signed by one of them and an entry is in its tree,
// not that the log extends one seen before: a cluster that lies about its
// keys is believed. Callers say so.
func ServedTrust(cluster string, keys []ledger.NodeKey) (*Trust, error) {
	if len(keys) == 0 {
		return nil, errors.New("audit: the cluster serves no node keys")
	}
	return &Trust{Cluster: cluster, Origin: "custos/" + cluster, keys: slices.Clone(keys), served: true}, nil
}

// Served reports whether t is a ServedTrust.
func (t *Trust) Served() bool { return t.served }

// State is what the log had established after its first Size entries: the
// nodes and their registered keys, the officers and their key
// fingerprints, the quorum and the state version proposals are made
// against. Verify produces it (Report.State) only after checking every
// entry from 0 (or from an earlier such state).
type State struct {
	Size         uint64         `json:"size"`
	Root         tlog.Hash      `json:"root"`
	LastTime     time.Time      `json:"last_time"` // time of entry Size-1
	Initialized  bool           `json:"initialized"`
	Quorum       int            `json:"quorum"`
	StateVersion uint64         `json:"state_version"`
	Regions      []string       `json:"allowed_regions"`
	Nodes        []NodeState    `json:"nodes"`    // by id
	Officers     []OfficerState `json:"officers"` // by id
	// ReleasesBound: the log records activations with the client's signed
	// request by Size, so a later share release without one is a finding
	// (ShareReleases).
	ReleasesBound bool `json:"releases_bound,omitempty"`
	// KEKs: the policy in force by Size of each KEK whose policy the
	// verifier followed (from its kek.create, or a later kek.policy), by
	// id. The activations of a KEK not listed are counted, not checked
	// against its policy (PolicyCounts.Unknown).
	KEKs []KEKState `json:"keks,omitempty"`
}

// KEKState is the policy in force of a KEK, and the ceremony that set it.
type KEKState struct {
	ID     string          `json:"id"`
	Policy ceremony.Policy `json:"policy"`
	Set    uint64          `json:"set"` // the ceremony.execute entry that set it
	By     string          `json:"by"`  // its operation: kek.create or kek.policy
}

// NodeState is a node the log registered.
type NodeState struct {
	ID         string `json:"id"`
	KeysSHA256 string `json:"keys_sha256"` // hex SHA-256 of its verifier key text
	Added      uint64 `json:"added"`       // entry that (last) registered it
	Active     bool   `json:"active"`
	Removed    uint64 `json:"removed,omitempty"` // entry that removed it, when not active
}

// OfficerState is an officer the log named.
type OfficerState struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"` // of the bundle in force
	Added       uint64 `json:"added"`
	Active      bool   `json:"active"`
	Removed     uint64 `json:"removed,omitempty"`
}

type trustJSON struct {
	Format     string `json:"format"`
	Cluster    string `json:"cluster"`
	Origin     string `json:"origin"`
	Genesis    []byte `json:"genesis"`
	NodeKeys   string `json:"node_keys"`
	Checkpoint string `json:"checkpoint"`
	State      *State `json:"state,omitempty"`
}

// NewTrust builds and checks a trust file from what the cluster serves:
// genesis, the canonical bytes of entry 0; proof, its inclusion proof in
// the checkpoint's tree (client InclusionProof(0, size).Hashes; empty for
// a tree of one entry); keys, the verifier key text of the nodes the
// auditor trusts (typically client NodeKeys, compared out of band); note,
// the signed checkpoint. It checks that the checkpoint verifies with keys,
// that genesis is a cluster.genesis entry 0 of this cluster and origin,
// and that it is entry 0 of the checkpoint's tree.
func NewTrust(cluster string, genesis []byte, proof tlog.RecordProof, keys string, note []byte) (*Trust, error) {
	t := &Trust{Cluster: cluster, Origin: "custos/" + cluster, Genesis: bytes.Clone(genesis), NodeKeys: keys, Checkpoint: string(note)}
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := ledger.VerifyInclusion(t.cp, 0, t.Genesis, proof); err != nil {
		return nil, fmt.Errorf("audit: trust: genesis is not entry 0 of the checkpoint's tree: %w", err)
	}
	return t, nil
}

// ParseTrust reads a trust file (Marshal's JSON) and checks it as NewTrust
// does, but for the genesis inclusion proof, which the file does not keep.
func ParseTrust(data []byte) (*Trust, error) {
	var j trustJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("audit: trust file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("audit: trust file: data after the object")
	}
	if j.Format != TrustFormat {
		return nil, fmt.Errorf("audit: trust file: format %q, want %q", j.Format, TrustFormat)
	}
	t := &Trust{Cluster: j.Cluster, Origin: j.Origin, Genesis: j.Genesis, NodeKeys: j.NodeKeys, Checkpoint: j.Checkpoint, State: j.State}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// Marshal returns the trust file: indented JSON, so an auditor can read it.
func (t *Trust) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(trustJSON{Format: TrustFormat, Cluster: t.Cluster, Origin: t.Origin, Genesis: t.Genesis,
		NodeKeys: t.NodeKeys, Checkpoint: t.Checkpoint, State: t.State}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Pinned returns the pinned checkpoint (verified).
func (t *Trust) Pinned() ledger.Checkpoint { return t.cp }

// Signer returns the key name of the node that signed the pinned checkpoint.
func (t *Trust) Signer() string { return t.signer }

func (t *Trust) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("audit: trust: %s", fmt.Sprintf(format, args...))
	}
	if t.Cluster == "" || t.Origin != "custos/"+t.Cluster {
		return bad("cluster %q with origin %q (want custos/<cluster>)", t.Cluster, t.Origin)
	}
	g, err := ledger.ParseEntry(t.Genesis)
	if err != nil {
		return bad("genesis: %v", err)
	}
	if g.Index != 0 || g.Type != ledger.TypeGenesis || g.Outcome != ledger.OutcomeOK {
		return bad("genesis is entry %d of type %q, outcome %s: want entry 0, cluster.genesis, ok", g.Index, g.Type, g.Outcome)
	}
	if g.Details["cluster"] != t.Cluster || g.Details["origin"] != t.Origin {
		return bad("genesis names cluster %q and origin %q, not %q and %q", g.Details["cluster"], g.Details["origin"], t.Cluster, t.Origin)
	}
	keys, err := ledger.ParseNodeKeys([]byte(t.NodeKeys))
	if err != nil {
		return bad("node keys: %v", err)
	}
	if len(keys) == 0 {
		return bad("no node keys")
	}
	for _, k := range keys {
		if _, ok := nodeIDOf(t.Cluster, k.Name); !ok {
			return bad("node key %q is not named custos/%s/<node>", k.Name, t.Cluster)
		}
	}
	cp, signer, err := ledger.VerifyCheckpoint([]byte(t.Checkpoint), t.Origin, keys...)
	if err != nil {
		return bad("checkpoint: %v", err)
	}
	if cp.Size == 0 {
		return bad("checkpoint of an empty tree")
	}
	if s := t.State; s != nil {
		// The state may lag the pin (audit watch moves the pin on); a pack
		// from the state's size binds its root through its frontier.
		if s.Size > cp.Size || (s.Size == cp.Size && s.Root != cp.Hash) {
			return bad("state of the tree of size %d (root %s) with a checkpoint of size %d (root %s)", s.Size, s.Root, cp.Size, cp.Hash)
		}
		if _, err := stateFrom(s); err != nil {
			return bad("state: %v", err)
		}
	}
	t.cp, t.signer, t.keys = cp, signer, keys
	return nil
}

// Advance returns the trust file an auditor pins after r, a full
// verification of a pack against t: the pack's checkpoint, the keys of
// the nodes active at its end and the state at its end, so that the next
// pack may start where this one ended.
func (t *Trust) Advance(r *Report) (*Trust, error) {
	switch {
	case r == nil || r.State == nil || r.Partial:
		return nil, errors.New("audit: advance trust: the report is not of a full verification")
	case r.Cluster != t.Cluster || r.Pinned.Size != t.cp.Size || r.Pinned.Root != t.cp.Hash:
		return nil, errors.New("audit: advance trust: the report is of a verification against another trust file")
	}
	n := &Trust{Cluster: t.Cluster, Origin: t.Origin, Genesis: bytes.Clone(t.Genesis), NodeKeys: r.nodeKeys,
		Checkpoint: string(r.Checkpoint.Note), State: r.State}
	if err := n.check(); err != nil {
		return nil, fmt.Errorf("audit: advance trust: %w", err)
	}
	return n, nil
}

// nodeIDOf returns the node id of key name "custos/<cluster>/<id>".
func nodeIDOf(cluster, name string) (string, bool) {
	id, ok := strings.CutPrefix(name, "custos/"+cluster+"/")
	return id, ok && id != "" && !strings.Contains(id, "/")
}

// splitNodeKeys groups verifier key lines by node, each node's lines in
// the order they appear (each with its newline): the text the node
// registered, whose SHA-256 the log names. Blank and comment lines are
// dropped.
func splitNodeKeys(cluster, text string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "+")
		id, ok := nodeIDOf(cluster, name)
		if !ok {
			return nil, fmt.Errorf("key %q is not named custos/%s/<node>", name, cluster)
		}
		out[id] += line + "\n"
	}
	return out, nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// stateFrom turns a State into the verifier's working state.
func stateFrom(s *State) (*state, error) {
	st := newState()
	st.initialized, st.quorum, st.version, st.lastTime = s.Initialized, s.Quorum, s.StateVersion, s.LastTime
	st.regions = slices.Clone(s.Regions)
	for _, n := range s.Nodes {
		if n.ID == "" || st.nodes[n.ID] != nil {
			return nil, fmt.Errorf("node %q listed twice or without an id", n.ID)
		}
		st.nodes[n.ID] = &nodeInfo{keysHash: n.KeysSHA256, added: n.Added, active: n.Active, removed: n.Removed}
	}
	for _, o := range s.Officers {
		if o.ID == "" || st.officers[o.ID] != nil {
			return nil, fmt.Errorf("officer %q listed twice or without an id", o.ID)
		}
		st.officers[o.ID] = &officerInfo{fingerprint: o.Fingerprint, added: o.Added, active: o.Active, removed: o.Removed}
	}
	for _, k := range s.KEKs {
		op := ceremony.Operation(k.By)
		if k.ID == "" || st.keks[k.ID] != nil {
			return nil, fmt.Errorf("kek %q listed twice or without an id", k.ID)
		}
		if op != ceremony.OpKEKCreate && op != ceremony.OpKEKPolicy {
			return nil, fmt.Errorf("kek %s: policy set by %q, not kek.create or kek.policy", k.ID, k.By)
		}
		if err := k.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("kek %s: policy: %v", k.ID, err)
		}
		st.setPolicy(k.Set, op, k.ID, k.Policy)
	}
	if s.Initialized && (s.Quorum < 1 || s.Quorum > st.activeOfficers()) {
		return nil, fmt.Errorf("quorum %d with %d active officers", s.Quorum, st.activeOfficers())
	}
	return st, nil
}

// export turns the working state into a State at size with root.
func (st *state) export(size uint64, root tlog.Hash) *State {
	s := &State{Size: size, Root: root, LastTime: st.lastTime, Initialized: st.initialized, Quorum: st.quorum,
		StateVersion: st.version, Regions: nonNil(slices.Clone(st.regions)), Nodes: []NodeState{}, Officers: []OfficerState{}}
	for _, id := range sortedKeys(st.nodes) {
		n := st.nodes[id]
		s.Nodes = append(s.Nodes, NodeState{ID: id, KeysSHA256: n.keysHash, Added: n.added, Active: n.active, Removed: n.removed})
	}
	for _, id := range sortedKeys(st.officers) {
		o := st.officers[id]
		s.Officers = append(s.Officers, OfficerState{ID: id, Fingerprint: o.fingerprint, Added: o.added, Active: o.active, Removed: o.removed})
	}
	for _, id := range sortedKeys(st.keks) {
		k := st.keks[id]
		s.KEKs = append(s.KEKs, KEKState{ID: id, Policy: k.policy, Set: k.set, By: string(k.op)})
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
