package audit_test

// A synthetic log: entries shaped exactly as package keysvc writes them
// (genesis, node.add, cluster.init, ceremonies with real officer
// signatures, key operations, destruction attestations), checkpoints signed
// with generated node keys, and packs written with audit.Writer. It gives
// the tamper tests full control; cluster_test.go checks the same verifier
// against packs from a real in-memory cluster.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

const synthCluster = "test"

var operator = ledger.Actor{Identity: "custos://test/operator/ops?region=DE", Role: "operator", Region: "DE"}

var officerActor = officertest.Actor

type synthNode struct {
	id   string
	ec   *ecdsa.PrivateKey
	ml   *mldsa65.PrivateKey
	key  ledger.NodeKey
	text string
}

// Node keys are costly to make: tests share them (and officertest.Shared's
// officer keys).
var nodePool = map[string]*synthNode{}

func synthNodeKey(tb testing.TB, id string) *synthNode {
	if n := nodePool[id]; n != nil {
		return n
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k := ledger.NodeKey{Name: "custos/" + synthCluster + "/" + id, ECDSA: &ec.PublicKey, MLDSA: mlPub}
	text, err := k.MarshalText()
	if err != nil {
		tb.Fatal(err)
	}
	n := &synthNode{id: id, ec: ec, ml: ml, key: k, text: string(text)}
	nodePool[id] = n
	return n
}

// synth is a log under construction, with the state keysvc would hold.
type synth struct {
	tb      testing.TB
	now     time.Time
	entries [][]byte
	stored  []tlog.Hash

	nodes      []string // registered, in order
	removed    map[string]bool
	officers   []string // ever named
	active     map[string]bool
	quorum     int
	version    uint64
	inited     bool
	ceremonies []audit.Ceremony
	certs      []client.DestructionCertificate
}

func newSynth(tb testing.TB) *synth {
	tb.Helper()
	s := &synth{tb: tb, now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), removed: map[string]bool{}, active: map[string]bool{}}
	s.add(ledger.Entry{Type: "cluster.genesis", Actor: operator, Node: "n1",
		Details: map[string]string{"cluster": synthCluster, "allowed_regions": "DE,FR,NL", "origin": "custos/" + synthCluster}})
	s.registerNode("n1")
	return s
}

func (s *synth) clone() *synth {
	c := *s
	c.entries = slices.Clone(s.entries)
	c.stored = slices.Clone(s.stored)
	c.nodes = slices.Clone(s.nodes)
	c.removed = maps.Clone(s.removed)
	c.officers = slices.Clone(s.officers)
	c.active = maps.Clone(s.active)
	c.ceremonies = slices.Clone(s.ceremonies)
	c.certs = slices.Clone(s.certs)
	return &c
}

func (s *synth) size() uint64 { return uint64(len(s.entries)) }

// add appends e (index and time assigned, outcome ok unless set) and
// returns its index.
func (s *synth) add(e ledger.Entry) uint64 {
	s.tb.Helper()
	e.Index = s.size()
	s.now = s.now.Add(time.Millisecond)
	e.Time = s.now
	if e.Outcome == "" {
		e.Outcome = ledger.OutcomeOK
	}
	b, err := e.Marshal()
	if err != nil {
		s.tb.Fatal(err)
	}
	s.addRaw(b)
	return e.Index
}

func (s *synth) addRaw(b []byte) {
	hs, err := tlog.StoredHashes(int64(len(s.entries)), b, s.reader())
	if err != nil {
		s.tb.Fatal(err)
	}
	s.entries = append(s.entries, b)
	s.stored = append(s.stored, hs...)
}

func (s *synth) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = s.stored[x]
		}
		return out, nil
	})
}

func (s *synth) root(size uint64) tlog.Hash {
	h, err := tlog.TreeHash(int64(size), s.reader())
	if err != nil {
		s.tb.Fatal(err)
	}
	return h
}

func nodeDetails(n *synthNode) map[string]string {
	sum := sha256.Sum256([]byte(n.text))
	return map[string]string{"node.id": n.id, "node.region": "DE", "node.raft_addr": n.id + ":7000",
		"node.api_addr": "https://" + n.id + ".custos.test:8201", "node.keys_sha256": hex.EncodeToString(sum[:])}
}

func (s *synth) registerNode(id string) uint64 {
	n := synthNodeKey(s.tb, id)
	s.nodes = append(s.nodes, id)
	return s.add(ledger.Entry{Type: "node.add", Actor: operator, Node: "n1", Details: nodeDetails(n)})
}

// removeNode logs a node.remove outside a ceremony (the operator's).
func (s *synth) removeNode(id string) uint64 {
	s.removed[id] = true
	if s.inited {
		s.version++
	}
	return s.add(ledger.Entry{Type: "node.remove", Actor: operator, Node: "n1", Details: map[string]string{"node.id": id}})
}

func (s *synth) init(quorum int, names ...string) uint64 {
	d := map[string]string{"cluster": synthCluster, "origin": "custos/" + synthCluster, "allowed_regions": "DE,FR,NL",
		"quorum": strconv.Itoa(quorum), "default_threshold": "2", "state_version": "1", "officers": strings.Join(names, ",")}
	for i, n := range names {
		d["officer."+strconv.Itoa(i+1)] = n + " " + officertest.Shared(s.tb).Signer(n).Public().Fingerprint()
		s.officers = append(s.officers, n)
		s.active[n] = true
	}
	k := 0
	for _, id := range s.nodes {
		if !s.removed[id] {
			k++
			sum := sha256.Sum256([]byte(synthNodeKey(s.tb, id).text))
			d["node."+strconv.Itoa(k)] = id + " keys_sha256:" + hex.EncodeToString(sum[:])
		}
	}
	s.quorum, s.version, s.inited = quorum, 1, true
	return s.add(ledger.Entry{Type: "cluster.init", Actor: operator, Node: "n1", Details: d})
}

func proposalDetails(p ceremony.Proposal) map[string]string {
	d := p.Digest()
	return map[string]string{
		"proposal.id": p.ID, "proposal.operation": string(p.Operation()), "proposal.proposer": p.Proposer,
		"proposal.digest": hex.EncodeToString(d[:]), "proposal.state_version": strconv.FormatUint(p.StateVersion, 10),
		"proposal.expires": p.Expires.UTC().Format("2006-01-02T15:04:05.000000000Z"),
	}
}

func (s *synth) proposal(proposer string, ps ceremony.Params) ceremony.Proposal {
	return officertest.Proposal(s.tb, synthCluster, proposer, ps, s.now, s.version)
}

func (s *synth) sign(name string, p ceremony.Proposal) string {
	return string(officertest.Shared(s.tb).Sign(name, p))
}

// ceremonyOpts bend a ceremony the way a compromised leader could.
type ceremonyOpts struct {
	force bool // execute once the approvers listed have approved, whatever the quorum
}

// execute proposes ps by proposer, logs each approver's approval and, once
// the quorum is reached (or with force, after all of them), executes it as
// keysvc would. It returns the transcript.
func (s *synth) execute(proposer string, ps ceremony.Params, approvers []string, o ceremonyOpts) audit.Ceremony {
	s.tb.Helper()
	p := s.proposal(proposer, ps)
	raw, err := p.Marshal()
	if err != nil {
		s.tb.Fatal(err)
	}
	c := audit.Ceremony{ID: p.ID, Proposal: string(raw), Approvals: []audit.Approval{}, Status: audit.StatusPending}
	c.Proposed = s.add(ledger.Entry{Type: "ceremony.propose", Actor: officerActor(proposer), Node: "n1", Details: proposalDetails(p)})
	var names []string
	for k, name := range approvers {
		d := proposalDetails(p)
		d["officer"] = name
		i := s.add(ledger.Entry{Type: "ceremony.approve", Actor: officerActor(name), Node: "n1", Details: d})
		c.Approvals = append(c.Approvals, audit.Approval{Officer: name, Signature: s.sign(name, p), Entry: i})
		names = append(names, name)
		ready := len(names) >= s.quorum
		if o.force {
			ready = k == len(approvers)-1
		}
		if !ready {
			continue
		}
		for key, v := range s.effect(p) {
			d[key] = v
		}
		d["approvers"] = strings.Join(names, ",")
		s.version++
		d["state_version"] = strconv.FormatUint(s.version, 10)
		c.Closed = s.add(ledger.Entry{Type: "ceremony.execute", Actor: officerActor(name), Node: "n1", Details: d})
		c.Status = audit.StatusExecuted
		break
	}
	s.ceremonies = append(s.ceremonies, c)
	return c
}

// effect changes the synthetic state for an executed proposal and returns
// the execute entry's operation details.
func (s *synth) effect(p ceremony.Proposal) map[string]string {
	switch ps := p.Params.(type) {
	case ceremony.OfficerAdd:
		s.officers = append(s.officers, ps.ID)
		s.active[ps.ID] = true
		return map[string]string{"officer.id": ps.ID, "officer.fingerprint": ps.Fingerprint}
	case ceremony.OfficerRemove:
		s.active[ps.ID] = false
		return map[string]string{"officer.id": ps.ID}
	case ceremony.QuorumSet:
		s.quorum = ps.M
		return map[string]string{"quorum": strconv.Itoa(ps.M)}
	case ceremony.NodeAdd:
		s.nodes = append(s.nodes, ps.ID)
		return nodeDetails(synthNodeKey(s.tb, ps.ID))
	case ceremony.NodeRemove:
		s.removed[ps.ID] = true
		return map[string]string{"node.id": ps.ID}
	case ceremony.KEKCreate:
		return map[string]string{"kek.id": ps.KEKID, "kek.version": "1", "kek.threshold": strconv.Itoa(ps.Policy.Threshold),
			"kek.holders": strings.Join(s.activeNodes(), ",")}
	case ceremony.KEKPolicy:
		pj, err := ps.Policy.MarshalJSON()
		if err != nil {
			s.tb.Fatal(err)
		}
		sum := sha256.Sum256(pj)
		return map[string]string{"kek.id": ps.KEKID, "kek.policy": "sha256:" + hex.EncodeToString(sum[:])}
	case ceremony.KEKDestroy:
		return map[string]string{"kek.id": ps.KEKID, "kek.version": strconv.FormatUint(uint64(ps.Version), 10),
			"kek.holders": strings.Join(s.activeNodes(), ",")}
	}
	return nil
}

func (s *synth) activeNodes() []string {
	var out []string
	for _, id := range s.nodes {
		if !s.removed[id] {
			out = append(out, id)
		}
	}
	return out
}

func officerAdd(tb testing.TB, name string) ceremony.OfficerAdd {
	return officertest.Shared(tb).Add(name)
}

func nodeAdd(tb testing.TB, id string) ceremony.NodeAdd {
	n := synthNodeKey(tb, id)
	kem, _ := wrapkey.PublicKey(bytes.Repeat([]byte{byte(len(id))}, 32))
	return ceremony.NodeAdd{ID: id, Region: "DE", RaftAddr: id + ":7000", APIAddr: "https://" + id + ".custos.test:8201", Keys: n.text,
		KEM: base64.StdEncoding.EncodeToString(kem)}
}

// destroy runs a kek.destroy ceremony of kek v1 and logs every active
// node's attestation; it records the certificate.
func (s *synth) destroy(kek string, approvers []string) client.DestructionCertificate {
	c := s.execute("alice", ceremony.KEKDestroy{KEKID: kek, Version: 1}, approvers, ceremonyOpts{})
	dc := client.DestructionCertificate{Cluster: synthCluster, KEKID: kek, Version: 1, PublicKey: []byte("public key"),
		Ceremony: c.ID, Destroyed: c.Closed, Complete: true}
	for _, a := range c.Approvals {
		dc.Approvers = append(dc.Approvers, a.Officer)
	}
	for _, id := range s.activeNodes() {
		n := synthNodeKey(s.tb, id)
		text := "custos/v1 kek share destroyed\ncluster " + synthCluster + "\nnode " + id + "\nkek " + kek + "\nversion 1\nlabel custos:kek:" + kek + ":1\nceremony " + c.ID + "\n"
		st, err := ledger.SignStatement(text, n.key.Name, n.ec, n.ml)
		if err != nil {
			s.tb.Fatal(err)
		}
		sum := sha256.Sum256(st)
		i := s.add(ledger.Entry{Type: "kek.destroyed", Actor: ledger.Actor{Identity: id, Role: "node"}, Node: id, KEKID: kek, KEKVersion: 1,
			Details: map[string]string{"node.id": id, "statement": "sha256:" + hex.EncodeToString(sum[:]), "ceremony": c.ID, "label": "custos:kek:" + kek + ":1"}})
		dc.Holders = append(dc.Holders, client.DestroyedHolder{Node: id, Attested: true, Statement: string(st), Entry: i})
	}
	s.certs = append(s.certs, dc)
	return dc
}

// keyOps logs n key operations (a few denied).
func (s *synth) keyOps(n int) {
	for k := 0; k < n; k++ {
		e := ledger.Entry{Type: "kek.unwrap", Actor: ledger.Actor{Identity: "custos://test/agent/backup?region=DE", Role: "agent", Region: "DE"},
			Node: "n1", KEKID: "payroll", KEKVersion: 1, RequestID: fmt.Sprintf("req-%d", k),
			Details: map[string]string{"context": "sha256:" + strings.Repeat("ab", 32)}}
		if k%5 == 4 {
			e.Outcome, e.Reason = ledger.OutcomeDenied, "region_not_allowed: FR"
		}
		s.add(e)
	}
}

// checkpoint signs the tree of size entries by node.
func (s *synth) checkpoint(size uint64, node string) []byte {
	n := synthNodeKey(s.tb, node)
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "custos/" + synthCluster, Size: size, Hash: s.root(size)}, n.key.Name, n.ec, n.ml)
	if err != nil {
		s.tb.Fatal(err)
	}
	return note
}

func (s *synth) nodeKeysText(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(synthNodeKey(s.tb, id).text)
	}
	return b.String()
}

// trust pins the checkpoint of size entries, signed by n1, trusting n1.
func (s *synth) trust(size uint64) *audit.Trust {
	s.tb.Helper()
	proof, err := tlog.ProveRecord(int64(size), 0, s.reader())
	if err != nil {
		s.tb.Fatal(err)
	}
	t, err := audit.NewTrust(synthCluster, s.entries[0], proof, s.nodeKeysText("n1"), s.checkpoint(size, "n1"))
	if err != nil {
		s.tb.Fatal(err)
	}
	return t
}

// packOpts shape a pack.
type packOpts struct {
	signer      string // node that signs the checkpoint; "n1" by default
	consistency [2]uint64
	note        []byte // the checkpoint note to write instead of a fresh one
}

// pack writes entries [from, to) with everything the verifier needs.
func (s *synth) pack(from, to uint64, o packOpts) []byte {
	s.tb.Helper()
	var buf bytes.Buffer
	w, err := audit.NewWriter(&buf, audit.Header{Cluster: synthCluster, Origin: "custos/" + synthCluster, From: from, To: to,
		Created: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		s.tb.Fatal(err)
	}
	must := func(err error) {
		s.tb.Helper()
		if err != nil {
			s.tb.Fatal(err)
		}
	}
	must(w.NodeKeys(s.nodeKeysText(s.nodes...)))
	for _, name := range s.officers {
		pk := officertest.Shared(s.tb).Signer(name).Public()
		must(w.Officer(audit.Officer{ID: name, Bundle: string(pk.Marshal()), Fingerprint: pk.Fingerprint()}))
	}
	for _, c := range s.ceremonies {
		must(w.Ceremony(c))
	}
	for _, dc := range s.certs {
		must(w.Certificate(dc))
	}
	if from > 0 {
		proof, err := tlog.ProveRecord(int64(from), int64(from-1), s.reader())
		must(err)
		f, err := audit.FrontierFromProof(from, s.entries[from-1], proof)
		must(err)
		must(w.Frontier(from, f))
	}
	for i := from; i < to; i++ {
		must(w.Entry(i, s.entries[i]))
	}
	note := o.note
	if note == nil {
		signer := o.signer
		if signer == "" {
			signer = "n1"
		}
		note = s.checkpoint(to, signer)
	}
	must(w.Checkpoint(note))
	if c := o.consistency; c != [2]uint64{} {
		proof, err := tlog.ProveTree(int64(c[1]), int64(c[0]), s.reader())
		must(err)
		must(w.Consistency(c[0], c[1], proof))
	}
	must(w.Close())
	return buf.Bytes()
}

// standard builds a realistic log: three nodes, three officers (quorum 2),
// key operations, an officer added, a quorum change, an officer removed, a
// node added by ceremony, a KEK destroyed with its certificate.
func standard(tb testing.TB) *synth {
	s := newSynth(tb)
	s.registerNode("n2")
	s.registerNode("n3")
	s.init(2, "alice", "bob", "carol")
	s.keyOps(20)
	s.execute("alice", officerAdd(tb, "dave"), []string{"alice", "bob"}, ceremonyOpts{})
	s.execute("bob", ceremony.QuorumSet{M: 3}, []string{"bob", "carol"}, ceremonyOpts{})
	s.keyOps(7)
	s.execute("alice", ceremony.OfficerRemove{ID: "carol"}, []string{"alice", "bob", "dave"}, ceremonyOpts{})
	s.execute("alice", nodeAdd(tb, "n4"), []string{"alice", "bob", "dave"}, ceremonyOpts{})
	s.keyOps(5)
	s.destroy("payroll", []string{"alice", "bob", "dave"})
	s.keyOps(3)
	return s
}
