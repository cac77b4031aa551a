// Verify: one streaming pass over a pack that recomputes the tree, replays
// the log's account of nodes, officers and quorum, checks every ceremony
// execution against it, and checks the signed checkpoint and its relation
// to the pinned one.

package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"golang.org/x/mod/sumdb/tlog"
)

// Options adjust Verify.
type Options struct {
	// AllowPartial accepts a pack that starts after entry 0 although the
	// trust file holds no verified state at its start. Without the log
	// before the pack, officers and quorum are unknown, so ceremonies are
	// not checked, and nodes are taken from the trust file's keys (plus
	// those the pack's entries add): the report says Partial. Without
	// AllowPartial such a pack fails with ErrPartial.
	AllowPartial bool
	// OnEntry, if set, is called with every entry once it has passed its
	// own checks, in log order: a hook to aggregate a report in the same
	// pass. An error from it stops Verify and is returned as is. Until
	// Verify returns nil, nothing is verified (the checkpoint comes last).
	OnEntry func(ledger.Entry) error
}

// Report is what a successful Verify established. Its JSON form (for
// `custos audit verify --json`) leaves out the pack's records.
type Report struct {
	Cluster string    `json:"cluster"`
	Origin  string    `json:"origin"`
	From    uint64    `json:"from"` // first entry of the pack
	To      uint64    `json:"to"`   // size of the pack's checkpoint
	Created time.Time `json:"created"`

	Entries uint64            `json:"entries"` // entries verified (To - From)
	Types   map[string]uint64 `json:"types"`   // entries per type (at most maxTypes types; the rest under "other")
	Denied  uint64            `json:"denied"`  // entries with outcome denied
	// Folded counts the denied entries that stand for repeats
	// (ledger.FoldOf), and FoldedDenials the refusals they stand for
	// beyond the entries themselves' firsts.
	Folded        uint64 `json:"folded"`
	FoldedDenials uint64 `json:"folded_denials"`
	Errored       uint64 `json:"errored"` // entries with outcome error

	Checkpoint CheckpointInfo `json:"checkpoint"` // the pack's checkpoint, verified
	Pinned     PinnedInfo     `json:"pinned"`     // the trust file's checkpoint and how the pack relates to it

	CeremoniesVerified int `json:"ceremonies_verified"` // ceremony executions whose approvals and quorum were checked
	ApprovalsVerified  int `json:"approvals_verified"`  // officer signatures checked
	StatementsVerified int `json:"statements_verified"` // nodes' destruction statements checked
	Certificates       int `json:"certificates"`        // destruction certificates checked

	// Releases counts the activations and share releases checked (see
	// ShareReleases).
	Releases ReleaseCounts `json:"releases"`
	// Policies counts the activations checked against the unwrap access of
	// their KEK's policy, and those whose KEK's policy was not followed.
	Policies PolicyCounts `json:"policies"`

	// Partial: the pack starts after entry 0 with no trusted state there
	// (Options.AllowPartial); PartialReason says what was not checked.
	Partial       bool   `json:"partial"`
	PartialReason string `json:"partial_reason,omitempty"`

	// State is the state the log established by the pack's checkpoint: pin
	// it with Trust.Advance. Nil when Partial.
	State *State `json:"state,omitempty"`

	// Pack holds the pack's records other than the entries.
	Pack *Contents `json:"-"`

	nodeKeys string // key text of the active nodes, for Advance
}

// CheckpointInfo describes a verified checkpoint.
type CheckpointInfo struct {
	Size    uint64    `json:"size"`
	Root    tlog.Hash `json:"root"`
	Signer  string    `json:"signer"`   // node id
	KeyName string    `json:"key_name"` // custos/<cluster>/<node>
	Note    []byte    `json:"-"`
}

// Relations of a pack to the pinned checkpoint.
const (
	RelationSame    = "same"    // the pack's checkpoint has the pinned size and root
	RelationExtends = "extends" // the pack's tree extends the pinned tree
	RelationPrefix  = "prefix"  // the pack's tree is a (proven) prefix of the pinned tree
)

// PinnedInfo is the trust file's checkpoint and the pack's relation to it.
type PinnedInfo struct {
	Size     uint64    `json:"size"`
	Root     tlog.Hash `json:"root"`
	Relation string    `json:"relation"`
}

// Contents are a pack's records other than its entries.
type Contents struct {
	Header       Header
	NodeKeys     []string
	Officers     []Officer
	Ceremonies   []Ceremony
	Certificates []client.DestructionCertificate
	Frontier     *Frontier
	Checkpoint   []byte
	Consistency  *Consistency
}

// maxTypes bounds Report.Types.
const maxTypes = 256

type nodeInfo struct {
	keysHash string
	added    uint64
	active   bool
	removed  uint64
}

type officerInfo struct {
	fingerprint string
	added       uint64
	active      bool
	removed     uint64
}

// state is the log's account so far.
type state struct {
	initialized bool
	quorum      int
	version     uint64
	regions     []string
	lastTime    time.Time
	nodes       map[string]*nodeInfo
	officers    map[string]*officerInfo
	keks        map[string]*kekPolicy // KEK id -> its policy in force, for the KEKs whose policy was followed
}

func newState() *state {
	return &state{nodes: map[string]*nodeInfo{}, officers: map[string]*officerInfo{}, keks: map[string]*kekPolicy{}}
}

func (st *state) activeOfficers() int {
	n := 0
	for _, o := range st.officers {
		if o.active {
			n++
		}
	}
	return n
}

// transcript is a ceremony record with its parsed proposal.
type transcript struct {
	rec    Ceremony
	p      ceremony.Proposal
	digest [32]byte
}

type certCheck struct {
	cert     client.DestructionCertificate
	verified []bool // per holder: statement checked
}

// What a transcript or certificate says an entry is.
const (
	expPropose = iota
	expApprove
	expClose
	expDestroyed
	expDestroyExec
)

type expectation struct {
	kind    int
	c       *transcript
	officer string
	cert    *certCheck
	holder  int
}

type verifier struct {
	trust *Trust
	opts  Options
	rep   *Report
	hdr   *Header
	line  int

	partial    bool
	st         *state
	texts      map[string]string // node id -> verifier key text
	trustTexts map[string]bool   // partial: nodes whose keys come from the trust file
	keys       map[string]ledger.NodeKey
	bundles    map[string]*officer.PublicKey // fingerprint -> bundle
	ceremonies map[string]*transcript
	expect     map[uint64][]expectation
	certs      []*certCheck
	releases   *ShareReleases

	tree       *Tree
	pinnedRoot *tlog.Hash // the pack's root at the pinned size, when the pack covers that size
	cp         *ledger.Checkpoint
}

// Verify reads a pack from r and checks it against trust, in one pass,
// holding the records before the entries but never the entries. It
// returns the first failure as a *Failure (or a read error, or OnEntry's
// error), and otherwise a Report. What it checks, and what that proves,
// is in the package documentation.
func Verify(r io.Reader, trust *Trust, opts Options) (*Report, error) {
	if trust == nil || trust.keys == nil {
		return nil, errors.New("audit: verify: no checked trust file (use NewTrust or ParseTrust)")
	}
	v := &verifier{trust: trust, opts: opts, rep: &Report{Types: map[string]uint64{}, Pack: &Contents{}},
		st: newState(), texts: map[string]string{}, keys: map[string]ledger.NodeKey{},
		bundles: map[string]*officer.PublicKey{}, ceremonies: map[string]*transcript{}, expect: map[uint64][]expectation{},
		tree: &Tree{}}
	p := startPipeline(r)
	defer p.stop()
	for b := range p.ordered {
		<-b.done
		for k := range b.items {
			it := &b.items[k]
			v.line = it.line
			var err error
			if it.rec != nil {
				err = v.record(it.rec)
			} else {
				err = v.entry(it.index, b.raw(it), &it.e, it.err, it.leaf)
			}
			if err != nil {
				return nil, err
			}
		}
		end := b.end
		freeBatch(b)
		if end == io.EOF {
			break
		}
		if end != nil {
			return nil, end
		}
	}
	if err := v.finish(); err != nil {
		return nil, err
	}
	return v.rep, nil
}

func (v *verifier) fail(kind string, index int64, err error, format string, args ...any) *Failure {
	return fail(kind, index, v.line, err, format, args...)
}

// at is a failure about entry i.
func (v *verifier) at(kind string, i uint64, format string, args ...any) *Failure {
	return v.fail(kind, int64(i), nil, "entry %d: %s", i, fmt.Sprintf(format, args...))
}

func (v *verifier) packFail(format string, args ...any) *Failure {
	return packErr(v.line, format, args...)
}

func (v *verifier) record(rec Record) error {
	c := v.rep.Pack
	switch r := rec.(type) {
	case *Header:
		c.Header = *r
		return v.header(r)
	case *NodeKeys:
		c.NodeKeys = append(c.NodeKeys, r.Text)
		return v.nodeKeys(r.Text)
	case *Officer:
		c.Officers = append(c.Officers, *r)
		return v.officer(r)
	case *Ceremony:
		c.Ceremonies = append(c.Ceremonies, *r)
		return v.ceremony(r)
	case *Certificate:
		c.Certificates = append(c.Certificates, r.DestructionCertificate)
		return v.certificate(r.DestructionCertificate)
	case *Frontier:
		c.Frontier = r
		t, err := NewTreeFromFrontier(r.Size, r.Hashes)
		if err != nil {
			return v.packFail("%v", err)
		}
		v.tree = t
		if r.Size == v.trust.cp.Size {
			root := t.Root()
			v.pinnedRoot = &root
		}
	case *CheckpointRecord:
		c.Checkpoint = r.Note
		return v.checkpoint(r.Note)
	case *Consistency:
		c.Consistency = r
	}
	return nil
}

func (v *verifier) header(h *Header) error {
	v.hdr = h
	rep := v.rep
	rep.Cluster, rep.Origin, rep.From, rep.To, rep.Created = h.Cluster, h.Origin, h.From, h.To, h.Created
	t := v.trust
	if h.Cluster != t.Cluster || h.Origin != t.Origin {
		return v.fail(KindTrust, -1, nil, "the pack is of cluster %q (origin %q); the trust file is of %q (%q)", h.Cluster, h.Origin, t.Cluster, t.Origin)
	}
	if h.To == 0 {
		return v.fail(KindPack, -1, nil, "the pack holds no entries and an empty tree")
	}
	bound := false
	defer func() { v.releases = NewShareReleases(h.Cluster, bound) }()
	switch {
	case h.From == 0:
	case t.State != nil && t.State.Size == h.From:
		st, err := stateFrom(t.State)
		if err != nil {
			return v.fail(KindTrust, -1, err, "the trust file's state: %v", err)
		}
		v.st = st
		bound = t.State.ReleasesBound
	default:
		why := "it holds none"
		if t.State != nil {
			why = fmt.Sprintf("it holds one at entry %d", t.State.Size)
		}
		if !v.opts.AllowPartial {
			return v.fail(KindTrust, -1, ErrPartial, "the pack starts at entry %d and the trust file holds no verified state there (%s): verify a pack from entry 0 (or from the trust file's state), or allow a partial verification", h.From, why)
		}
		v.partial = true
		v.rep.Partial = true
		v.rep.PartialReason = fmt.Sprintf("the pack starts at entry %d without a verified state there (%s): officers, quorum and ceremonies were not checked; nodes are those of the trust file and those the pack's entries add, and statements of other nodes were not checked", h.From, why)
		texts, err := splitNodeKeys(t.Cluster, t.NodeKeys)
		if err != nil {
			return v.fail(KindTrust, -1, err, "the trust file's node keys: %v", err)
		}
		v.trustTexts = map[string]bool{}
		for id, text := range texts {
			v.st.nodes[id] = &nodeInfo{keysHash: sha256Hex(text), active: true}
			v.texts[id] = text
			v.trustTexts[id] = true
		}
	}
	return nil
}

func (v *verifier) nodeKeys(text string) error {
	if _, err := ledger.ParseNodeKeys([]byte(text)); err != nil {
		return v.packFail("node keys: %v", err)
	}
	texts, err := splitNodeKeys(v.hdr.Cluster, text)
	if err != nil {
		return v.packFail("node keys: %v", err)
	}
	for id, t := range texts {
		if old, dup := v.texts[id]; dup && old != t {
			if v.trustTexts[id] {
				continue // a partial verification: the trust file's keys win
			}
			return v.packFail("node keys: node %s's keys appear twice, differently", id)
		}
		v.texts[id] = t
	}
	return nil
}

func (v *verifier) officer(o *Officer) error {
	pk, err := officer.ParsePublicKey([]byte(o.Bundle))
	if err != nil {
		return v.packFail("officer %s: bundle: %v", o.ID, err)
	}
	if pk.Name() != o.ID || pk.Fingerprint() != o.Fingerprint {
		return v.packFail("officer %s: the bundle is officer %q's, fingerprint %s", o.ID, pk.Name(), pk.Fingerprint())
	}
	if v.bundles[o.Fingerprint] != nil {
		return v.packFail("officer %s: bundle %s appears twice", o.ID, o.Fingerprint)
	}
	v.bundles[o.Fingerprint] = pk
	return nil
}

func (v *verifier) ceremony(c *Ceremony) error {
	if v.ceremonies[c.ID] != nil {
		return v.packFail("ceremony %s appears twice", c.ID)
	}
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return v.packFail("ceremony %s: proposal: %v", c.ID, err)
	}
	if p.ID != c.ID || p.Cluster != v.hdr.Cluster {
		return v.packFail("ceremony %s: the proposal is %s of cluster %q", c.ID, p.ID, p.Cluster)
	}
	last := c.Proposed
	for _, a := range c.Approvals {
		if a.Entry <= last {
			return v.packFail("ceremony %s: approval by %s at entry %d, not after entry %d", c.ID, a.Officer, a.Entry, last)
		}
		last = a.Entry
	}
	if (c.Status == StatusPending) != (c.Closed == 0) || (c.Closed != 0 && c.Closed <= last) {
		return v.packFail("ceremony %s: status %s, closed at entry %d", c.ID, c.Status, c.Closed)
	}
	t := &transcript{rec: *c, p: p, digest: p.Digest()}
	v.ceremonies[c.ID] = t
	v.expectAt(c.Proposed, expectation{kind: expPropose, c: t})
	for _, a := range c.Approvals {
		v.expectAt(a.Entry, expectation{kind: expApprove, c: t, officer: a.Officer})
	}
	if c.Closed != 0 {
		v.expectAt(c.Closed, expectation{kind: expClose, c: t})
	}
	return nil
}

func (v *verifier) certificate(dc client.DestructionCertificate) error {
	if dc.Cluster != v.hdr.Cluster {
		return v.packFail("certificate of kek %s v%d is of cluster %q", dc.KEKID, dc.Version, dc.Cluster)
	}
	complete := true
	cc := &certCheck{cert: dc, verified: make([]bool, len(dc.Holders))}
	for k, h := range dc.Holders {
		complete = complete && h.Attested
		if h.Attested != (h.Statement != "") || (h.Attested && h.Entry == 0) {
			return v.packFail("certificate of kek %s v%d: holder %s: attested %v with %d bytes of statement at entry %d", dc.KEKID, dc.Version, h.Node, h.Attested, len(h.Statement), h.Entry)
		}
		if h.Attested {
			v.expectAt(h.Entry, expectation{kind: expDestroyed, cert: cc, holder: k})
		}
	}
	if complete != dc.Complete {
		return v.packFail("certificate of kek %s v%d says complete %v, its holders say %v", dc.KEKID, dc.Version, dc.Complete, complete)
	}
	v.expectAt(dc.Destroyed, expectation{kind: expDestroyExec, cert: cc})
	v.certs = append(v.certs, cc)
	return nil
}

// expectAt records what the pack's records say entry i is, when the pack
// holds entry i.
func (v *verifier) expectAt(i uint64, x expectation) {
	if i >= v.hdr.From && i < v.hdr.To {
		v.expect[i] = append(v.expect[i], x)
	}
}

// entry checks entry i (canonical bytes b, parsed as e or failing with
// perr, with leaf hash leaf) and follows what it changes.
func (v *verifier) entry(i uint64, b []byte, e *ledger.Entry, perr error, leaf tlog.Hash) error {
	if i == 0 && !bytes.Equal(b, v.trust.Genesis) {
		return v.fail(KindTrust, 0, nil, "entry 0 is not the trusted genesis entry")
	}
	if perr != nil {
		return v.fail(KindEntry, int64(i), perr, "entry %d: %v", i, perr)
	}
	if e.Index != i {
		return v.at(KindEntry, i, "the record holds an entry that says it is entry %d", e.Index)
	}
	prev := v.st.lastTime
	if e.Time.Before(prev) {
		return v.at(KindEntry, i, "time %s is before the previous entry's %s", e.Time.Format(timeLayout), prev.Format(timeLayout))
	}
	v.st.lastTime = e.Time
	v.tree.Add(leaf)
	if v.tree.size == v.trust.cp.Size {
		root := v.tree.Root()
		v.pinnedRoot = &root
	}

	rep := v.rep
	rep.Entries++
	if n, ok := rep.Types[e.Type]; ok || len(rep.Types) < maxTypes {
		rep.Types[e.Type] = n + 1
	} else {
		rep.Types["other"]++
	}
	fold, folded, err := ledger.FoldOf(*e)
	if err != nil {
		return v.at(KindEntry, i, "%v", err)
	}
	if folded {
		rep.Folded++
		rep.FoldedDenials += fold.Count
	}
	switch e.Outcome {
	case ledger.OutcomeDenied:
		rep.Denied++
	case ledger.OutcomeError:
		rep.Errored++
	}

	if xs := v.expect[i]; xs != nil {
		for _, x := range xs {
			if err := v.expected(i, e, x); err != nil {
				return err
			}
		}
		delete(v.expect, i)
	}
	if err := v.follow(i, e, prev); err != nil {
		return err
	}
	f := v.releases.Entry(*e)
	if f == nil {
		f = v.policyOf(e)
	}
	if f != nil {
		return &Failure{Kind: KindAuthorisation, Code: f.Code, Index: int64(f.Index), Line: v.line, Msg: f.Msg}
	}
	if v.opts.OnEntry != nil {
		return v.opts.OnEntry(*e)
	}
	return nil
}

// describe says what an entry is, for messages.
func describe(e *ledger.Entry) string {
	s := e.Type + " (" + string(e.Outcome)
	if id := e.Details["proposal.id"]; id != "" {
		s += ", proposal " + id
	}
	if o := e.Details["officer"]; o != "" {
		s += ", officer " + o
	}
	if n := e.Details["node.id"]; n != "" {
		s += ", node " + n
	}
	return s + ")"
}

// expected checks entry i against what a transcript or certificate says it is.
func (v *verifier) expected(i uint64, e *ledger.Entry, x expectation) error {
	d := e.Details
	ok := e.Outcome == ledger.OutcomeOK
	switch x.kind {
	case expPropose:
		if e.Type != ledger.TypePropose || !ok || d["proposal.id"] != x.c.rec.ID {
			return v.at(KindAuthorisation, i, "the transcript of proposal %s says it was proposed here, but the entry is %s", x.c.rec.ID, describe(e))
		}
		if want := hex.EncodeToString(x.c.digest[:]); d["proposal.digest"] != want {
			return v.at(KindAuthorisation, i, "proposal %s was logged with digest %s, its transcript has digest %s", x.c.rec.ID, d["proposal.digest"], want)
		}
	case expApprove:
		if e.Type != ledger.TypeApprove || !ok || d["proposal.id"] != x.c.rec.ID || d["officer"] != x.officer {
			return v.at(KindAuthorisation, i, "the transcript of proposal %s says officer %s's approval was accepted here, but the entry is %s", x.c.rec.ID, x.officer, describe(e))
		}
	case expClose:
		want := ledger.TypeExecute
		if x.c.rec.Status == StatusRefused {
			want = ledger.TypeRefuse
		}
		if e.Type != want || d["proposal.id"] != x.c.rec.ID {
			return v.at(KindAuthorisation, i, "the transcript of proposal %s says it was %s here, but the entry is %s", x.c.rec.ID, x.c.rec.Status, describe(e))
		}
	case expDestroyed:
		dc := &x.cert.cert
		h := dc.Holders[x.holder]
		if e.Type != ledger.TypeDestroyed || !ok || e.KEKID != dc.KEKID || e.KEKVersion != dc.Version || d["node.id"] != h.Node || d["ceremony"] != dc.Ceremony {
			return v.at(KindAuthorisation, i, "the destruction certificate of kek %s v%d says node %s attested here, but the entry is %s", dc.KEKID, dc.Version, h.Node, describe(e))
		}
		if want := "sha256:" + sha256Hex(h.Statement); d["statement"] != want {
			return v.at(KindAuthorisation, i, "node %s's destruction statement in the certificate of kek %s v%d hashes to %s, the entry names %s", h.Node, dc.KEKID, dc.Version, want, d["statement"])
		}
		if err := v.statement(x.cert, x.holder, int64(i)); err != nil {
			return err
		}
	case expDestroyExec:
		dc := &x.cert.cert
		holders := make([]string, len(dc.Holders))
		for k, h := range dc.Holders {
			holders[k] = h.Node
		}
		if e.Type != ledger.TypeExecute || d["proposal.operation"] != string(ceremony.OpKEKDestroy) || d["proposal.id"] != dc.Ceremony ||
			d["kek.id"] != dc.KEKID || d["kek.version"] != strconv.FormatUint(uint64(dc.Version), 10) {
			return v.at(KindAuthorisation, i, "the destruction certificate of kek %s v%d says ceremony %s destroyed it here, but the entry is %s", dc.KEKID, dc.Version, dc.Ceremony, describe(e))
		}
		if got, want := d["approvers"], strings.Join(dc.Approvers, ","); got != want {
			return v.at(KindAuthorisation, i, "the destruction of kek %s v%d was approved by %q, the certificate says %q", dc.KEKID, dc.Version, got, want)
		}
		if got, want := d["kek.holders"], strings.Join(holders, ","); got != want {
			return v.at(KindAuthorisation, i, "kek %s v%d was held by %q, the certificate lists %q", dc.KEKID, dc.Version, got, want)
		}
	}
	return nil
}

// follow applies what entry i changes in the log's account, checking that
// the change was allowed. prev is the time of the entry before.
func (v *verifier) follow(i uint64, e *ledger.Entry, prev time.Time) error {
	if e.Type == ledger.TypeGenesis {
		if i != 0 {
			return v.at(KindAuthorisation, i, "a second cluster.genesis")
		}
		v.st.regions = splitList(e.Details["allowed_regions"])
		return nil
	}
	if e.Type == ledger.TypeRefuse {
		if c := v.ceremonies[e.Details["proposal.id"]]; c != nil && (c.rec.Status != StatusRefused || c.rec.Closed != i) {
			return v.at(KindAuthorisation, i, "proposal %s was refused here, but its transcript says %s at entry %d", c.rec.ID, c.rec.Status, c.rec.Closed)
		}
		return nil
	}
	if e.Outcome != ledger.OutcomeOK {
		return nil
	}
	switch e.Type {
	case ledger.TypeNodeAdd:
		return v.nodeAdd(i, e)
	case ledger.TypeNodeRemove:
		return v.nodeRemove(i, e)
	case ledger.TypeInit:
		return v.clusterInit(i, e)
	case ledger.TypePropose:
		return v.propose(i, e)
	case ledger.TypeApprove:
		return v.approve(i, e)
	case ledger.TypeExecute:
		return v.execute(i, e, prev)
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if _, ok := hexVal(s[i]); !ok {
			return false
		}
	}
	return true
}

func (v *verifier) nodeAdd(i uint64, e *ledger.Entry) error {
	id, h := e.Details["node.id"], e.Details["node.keys_sha256"]
	if id == "" || !isHex64(h) {
		return v.at(KindAuthorisation, i, "node.add without a node id and keys hash")
	}
	st := v.st
	n := st.nodes[id]
	if v.partial && v.trustTexts[id] {
		return nil // the trust file's keys stand for this node
	}
	if n != nil && n.keysHash != h {
		return v.at(KindAuthorisation, i, "node %s registered again with other keys (registered at entry %d)", id, n.added)
	}
	if st.initialized {
		if n == nil || !n.active {
			return v.at(KindAuthorisation, i, "node %s added after cluster.init without a node.add ceremony", id)
		}
		return nil // already registered: nothing changes
	}
	if n != nil && n.active && n.keysHash == h {
		return nil
	}
	st.nodes[id] = &nodeInfo{keysHash: h, added: i, active: true}
	return nil
}

func (v *verifier) nodeRemove(i uint64, e *ledger.Entry) error {
	id := e.Details["node.id"]
	n := v.st.nodes[id]
	if n == nil {
		if v.partial {
			return nil
		}
		return v.at(KindAuthorisation, i, "node.remove of node %q, which the log never registered", id)
	}
	if n.active {
		n.active, n.removed = false, i
		if v.st.initialized {
			v.st.version++
		}
	}
	return nil
}

func (v *verifier) clusterInit(i uint64, e *ledger.Entry) error {
	st, d := v.st, e.Details
	if st.initialized {
		return v.at(KindAuthorisation, i, "a second cluster.init")
	}
	if v.partial {
		// Officers are not followed in a partial verification.
		st.initialized = true
		return nil
	}
	ids := splitList(d["officers"])
	officers := map[string]*officerInfo{}
	for k := 1; ; k++ {
		val, ok := d["officer."+strconv.Itoa(k)]
		if !ok {
			if k-1 != len(ids) {
				return v.at(KindAuthorisation, i, "cluster.init lists %d officers and names %d", len(ids), k-1)
			}
			break
		}
		id, fp, _ := strings.Cut(val, " ")
		if k > len(ids) || id != ids[k-1] || officers[id] != nil {
			return v.at(KindAuthorisation, i, "cluster.init officer.%d %q does not match its officer list %q", k, val, d["officers"])
		}
		if err := v.haveBundle(i, id, fp); err != nil {
			return err
		}
		officers[id] = &officerInfo{fingerprint: fp, added: i, active: true}
	}
	q, err := strconv.Atoi(d["quorum"])
	if err != nil || q < 2 || q > len(officers) {
		return v.at(KindAuthorisation, i, "cluster.init with quorum %q and %d officers", d["quorum"], len(officers))
	}
	active := 0
	for _, n := range st.nodes {
		if n.active {
			active++
		}
	}
	named := 0
	for k := 1; ; k++ {
		val, ok := d["node."+strconv.Itoa(k)]
		if !ok {
			break
		}
		named++
		id, h, _ := strings.Cut(val, " keys_sha256:")
		n := st.nodes[id]
		if n == nil || !n.active || n.keysHash != h {
			return v.at(KindAuthorisation, i, "cluster.init names node %s with keys %s, which is not a node the log registered with those keys", id, h)
		}
	}
	if named != active {
		return v.at(KindAuthorisation, i, "cluster.init names %d nodes, the log registered %d", named, active)
	}
	if d["state_version"] != "1" {
		return v.at(KindAuthorisation, i, "cluster.init at state version %q, want 1", d["state_version"])
	}
	st.initialized, st.quorum, st.version, st.officers = true, q, 1, officers
	if r := splitList(d["allowed_regions"]); r != nil {
		st.regions = r
	}
	return nil
}

// haveBundle checks that the pack holds the bundle the log names for officer id.
func (v *verifier) haveBundle(i uint64, id, fp string) error {
	pk := v.bundles[fp]
	if pk == nil {
		return v.fail(KindPack, int64(i), nil, "entry %d: the log names officer %s's key %s, which the pack does not hold", i, id, fp)
	}
	if pk.Name() != id {
		return v.at(KindAuthorisation, i, "the log names key %s for officer %s, but that bundle is officer %s's", fp, id, pk.Name())
	}
	return nil
}

// activeOfficer checks that id is an active officer, for an action at entry i.
func (v *verifier) activeOfficer(i uint64, what, id string) error {
	if !v.st.initialized {
		return v.at(KindAuthorisation, i, "%s by %q before cluster.init", what, id)
	}
	o := v.st.officers[id]
	if o == nil {
		return v.at(KindAuthorisation, i, "%s by %q, who is not an officer", what, id)
	}
	if !o.active {
		return v.at(KindAuthorisation, i, "%s by officer %s, removed at entry %d", what, id, o.removed)
	}
	return nil
}

func (v *verifier) propose(i uint64, e *ledger.Entry) error {
	if v.partial {
		return nil
	}
	id := e.Details["proposal.id"]
	if err := v.activeOfficer(i, "proposal "+id, e.Details["proposal.proposer"]); err != nil {
		return err
	}
	if c := v.ceremonies[id]; c != nil && c.rec.Proposed != i {
		return v.at(KindAuthorisation, i, "proposal %s was proposed here, but its transcript says entry %d", id, c.rec.Proposed)
	}
	return nil
}

func (v *verifier) approve(i uint64, e *ledger.Entry) error {
	if v.partial {
		return nil
	}
	off, id := e.Details["officer"], e.Details["proposal.id"]
	if err := v.activeOfficer(i, "approval", off); err != nil {
		return err
	}
	if c := v.ceremonies[id]; c != nil {
		if !slices.ContainsFunc(c.rec.Approvals, func(a Approval) bool { return a.Entry == i && a.Officer == off }) {
			return v.at(KindAuthorisation, i, "officer %s's approval of proposal %s is missing from the pack's transcript", off, id)
		}
	}
	return nil
}

func (v *verifier) execute(i uint64, e *ledger.Entry, prev time.Time) error {
	d := e.Details
	id := d["proposal.id"]
	if v.partial {
		return v.executePartial(i, e)
	}
	c := v.ceremonies[id]
	if c == nil {
		return v.at(KindAuthorisation, i, "proposal %s executed, but the pack holds no transcript of it", id)
	}
	if c.rec.Status != StatusExecuted || c.rec.Closed != i {
		return v.at(KindAuthorisation, i, "proposal %s executed here, but its transcript says %s at entry %d", id, c.rec.Status, c.rec.Closed)
	}
	p := c.p
	for _, f := range [...]struct{ key, want string }{
		{"proposal.digest", hex.EncodeToString(c.digest[:])},
		{"proposal.operation", string(p.Operation())},
		{"proposal.proposer", p.Proposer},
		{"proposal.state_version", strconv.FormatUint(p.StateVersion, 10)},
		{"proposal.expires", p.Expires.UTC().Format(timeLayout)},
	} {
		if d[f.key] != f.want {
			return v.at(KindAuthorisation, i, "the entry's %s is %q, the transcript's proposal %s has %q", f.key, d[f.key], id, f.want)
		}
	}
	st := v.st
	if !st.initialized {
		return v.at(KindAuthorisation, i, "proposal %s executed before cluster.init", id)
	}
	if !e.Time.Before(p.Expires) && e.Time.After(prev) {
		return v.at(KindAuthorisation, i, "proposal %s executed at %s, after it expired at %s", id, e.Time.Format(timeLayout), p.Expires.UTC().Format(timeLayout))
	}
	if p.StateVersion != st.version {
		return v.at(KindAuthorisation, i, "proposal %s was made against state version %d, but the state was at version %d (superseded)", id, p.StateVersion, st.version)
	}
	// The approvals: distinct officers, active now, each signature valid.
	names := make([]string, 0, len(c.rec.Approvals))
	for _, a := range c.rec.Approvals {
		if slices.Contains(names, a.Officer) {
			return v.at(KindAuthorisation, i, "proposal %s: officer %s approved twice", id, a.Officer)
		}
		if a.Entry >= i {
			return v.at(KindAuthorisation, i, "proposal %s: officer %s's approval is at entry %d, not before its execution", id, a.Officer, a.Entry)
		}
		if err := v.activeOfficer(i, "approval", a.Officer); err != nil {
			return err
		}
		fp := st.officers[a.Officer].fingerprint
		if err := v.haveBundle(i, a.Officer, fp); err != nil {
			return err
		}
		sig, err := officer.ParseSignature([]byte(a.Signature))
		if err == nil {
			err = v.bundles[fp].Verify(c.digest, sig)
		}
		if err != nil {
			return v.at(KindAuthorisation, i, "proposal %s: officer %s's approval signature does not verify: %v", id, a.Officer, err)
		}
		names = append(names, a.Officer)
	}
	if len(names) < st.quorum {
		return v.at(KindAuthorisation, i, "proposal %s executed with %d approval(s) (%s), below the quorum of %d", id, len(names), strings.Join(names, ", "), st.quorum)
	}
	if got, want := d["approvers"], strings.Join(names, ","); got != want {
		return v.at(KindAuthorisation, i, "the entry names approvers %q, the transcript of proposal %s %q", got, id, want)
	}
	st.version++
	if got := d["state_version"]; got != strconv.FormatUint(st.version, 10) {
		return v.at(KindAuthorisation, i, "the entry says state version %q after proposal %s, want %d", got, id, st.version)
	}
	if err := v.effect(i, d, p); err != nil {
		return err
	}
	v.rep.CeremoniesVerified++
	v.rep.ApprovalsVerified += len(names)
	return nil
}

// effect applies an executed proposal's operation to the state.
func (v *verifier) effect(i uint64, d map[string]string, p ceremony.Proposal) error {
	st := v.st
	mismatch := func(key, want string) error {
		return v.at(KindAuthorisation, i, "%s executed with %s %q, the proposal says %q", p.Operation(), key, d[key], want)
	}
	switch ps := p.Params.(type) {
	case ceremony.OfficerAdd:
		if d["officer.id"] != ps.ID {
			return mismatch("officer.id", ps.ID)
		}
		if d["officer.fingerprint"] != ps.Fingerprint {
			return mismatch("officer.fingerprint", ps.Fingerprint)
		}
		if o := st.officers[ps.ID]; o != nil && o.active {
			return v.at(KindAuthorisation, i, "officer %s added while already active", ps.ID)
		}
		if v.bundles[ps.Fingerprint] == nil {
			// The proposal carries the bundle (the API serves only an
			// officer's latest one).
			if pk, err := officer.ParsePublicKey([]byte(ps.Bundle)); err == nil && pk.Fingerprint() == ps.Fingerprint {
				v.bundles[ps.Fingerprint] = pk
			}
		}
		if err := v.haveBundle(i, ps.ID, ps.Fingerprint); err != nil {
			return err
		}
		st.officers[ps.ID] = &officerInfo{fingerprint: ps.Fingerprint, added: i, active: true}
	case ceremony.OfficerRemove:
		if d["officer.id"] != ps.ID {
			return mismatch("officer.id", ps.ID)
		}
		o := st.officers[ps.ID]
		if o == nil || !o.active {
			return v.at(KindAuthorisation, i, "officer %s removed, but is not an active officer", ps.ID)
		}
		if st.activeOfficers()-1 < st.quorum {
			return v.at(KindAuthorisation, i, "removing officer %s leaves fewer officers than the quorum of %d", ps.ID, st.quorum)
		}
		o.active, o.removed = false, i
	case ceremony.QuorumSet:
		if d["quorum"] != strconv.Itoa(ps.M) {
			return mismatch("quorum", strconv.Itoa(ps.M))
		}
		if ps.M > st.activeOfficers() {
			return v.at(KindAuthorisation, i, "quorum set to %d with %d active officers", ps.M, st.activeOfficers())
		}
		st.quorum = ps.M
	case ceremony.RegionsSet:
		st.regions = slices.Clone(ps.Regions)
	case ceremony.KEKCreate:
		if d["kek.id"] != ps.KEKID {
			return mismatch("kek.id", ps.KEKID)
		}
		st.setPolicy(i, ceremony.OpKEKCreate, ps.KEKID, ps.Policy)
	case ceremony.KEKPolicy:
		if d["kek.id"] != ps.KEKID {
			return mismatch("kek.id", ps.KEKID)
		}
		st.setPolicy(i, ceremony.OpKEKPolicy, ps.KEKID, ps.Policy)
	case ceremony.NodeAdd:
		h := sha256Hex(ps.Keys)
		if d["node.id"] != ps.ID {
			return mismatch("node.id", ps.ID)
		}
		if d["node.keys_sha256"] != h {
			return mismatch("node.keys_sha256", h)
		}
		if n := st.nodes[ps.ID]; n != nil && (n.active || n.keysHash != h) {
			return v.at(KindAuthorisation, i, "node %s added, but it is (or was) registered with other keys or is active", ps.ID)
		}
		st.nodes[ps.ID] = &nodeInfo{keysHash: h, added: i, active: true}
		if _, ok := v.texts[ps.ID]; !ok {
			v.texts[ps.ID] = ps.Keys
		}
	case ceremony.NodeRemove:
		if d["node.id"] != ps.ID {
			return mismatch("node.id", ps.ID)
		}
		n := st.nodes[ps.ID]
		if n == nil || !n.active {
			return v.at(KindAuthorisation, i, "node %s removed, but it is not an active node", ps.ID)
		}
		n.active, n.removed = false, i
	}
	return nil
}

// executePartial follows node changes without the officers' account.
func (v *verifier) executePartial(i uint64, e *ledger.Entry) error {
	d := e.Details
	switch ceremony.Operation(d["proposal.operation"]) {
	case ceremony.OpNodeAdd:
		id, h := d["node.id"], d["node.keys_sha256"]
		if id == "" || !isHex64(h) {
			return v.at(KindAuthorisation, i, "node.add ceremony without a node id and keys hash")
		}
		v.st.nodes[id] = &nodeInfo{keysHash: h, added: i, active: true}
	case ceremony.OpNodeRemove:
		if n := v.st.nodes[d["node.id"]]; n != nil {
			n.active, n.removed = false, i
		}
	}
	return nil
}

// nodeKey returns node id's keys: those the pack (or a node.add proposal)
// holds, which must hash to what the log registered.
func (v *verifier) nodeKey(id string) (ledger.NodeKey, error) {
	n := v.st.nodes[id]
	if n == nil {
		return ledger.NodeKey{}, fmt.Errorf("node %s is not registered in the log", id)
	}
	if k, ok := v.keys[id]; ok {
		return k, nil
	}
	text, ok := v.texts[id]
	if !ok {
		return ledger.NodeKey{}, fmt.Errorf("the pack lacks node %s's keys", id)
	}
	if sha256Hex(text) != n.keysHash {
		return ledger.NodeKey{}, fmt.Errorf("the pack's keys for node %s are not those the log registered (at entry %d)", id, n.added)
	}
	var k ledger.NodeKey
	if err := k.UnmarshalText([]byte(text)); err != nil {
		return ledger.NodeKey{}, fmt.Errorf("node %s's keys: %v", id, err)
	}
	if want := "custos/" + v.hdr.Cluster + "/" + id; k.Name != want {
		return ledger.NodeKey{}, fmt.Errorf("node %s's keys are named %q, want %q", id, k.Name, want)
	}
	v.keys[id] = k
	return k, nil
}

// statement checks holder k's destruction statement in cc; index is the
// entry concerned, or -1.
func (v *verifier) statement(cc *certCheck, k int, index int64) error {
	dc := &cc.cert
	h := dc.Holders[k]
	where := ""
	if index >= 0 {
		where = fmt.Sprintf("entry %d: ", index)
	}
	if v.partial && v.st.nodes[h.Node] == nil {
		return nil // a node the partial verification does not know: not checked
	}
	key, err := v.nodeKey(h.Node)
	if err != nil {
		return v.fail(KindAuthorisation, index, err, "%sdestruction of kek %s v%d: %v", where, dc.KEKID, dc.Version, err)
	}
	text, err := ledger.VerifyStatement([]byte(h.Statement), key)
	if err != nil {
		return v.fail(KindAuthorisation, index, err, "%snode %s's destruction statement for kek %s v%d does not verify: %v", where, h.Node, dc.KEKID, dc.Version, err)
	}
	want := DestroyedStatement{Cluster: dc.Cluster, Node: h.Node, KEK: dc.KEKID, Version: dc.Version, Ceremony: dc.Ceremony}
	if err := CheckDestroyed(text, want); err != nil {
		return v.fail(KindAuthorisation, index, err, "%snode %s's signed statement does not attest the destruction of kek %s v%d by ceremony %s: %q", where, h.Node, dc.KEKID, dc.Version, dc.Ceremony, text)
	}
	cc.verified[k] = true
	v.rep.StatementsVerified++
	return nil
}

func (v *verifier) activeNodes() []string {
	var ids []string
	for _, id := range sortedKeys(v.st.nodes) {
		if v.st.nodes[id].active {
			ids = append(ids, id)
		}
	}
	return ids
}

// checkpoint verifies the pack's checkpoint: signed by an established,
// active node, of the pack's size, with the root of the pack's entries.
func (v *verifier) checkpoint(note []byte) error {
	var keys []ledger.NodeKey
	var unusable []string
	for _, id := range v.activeNodes() {
		k, err := v.nodeKey(id)
		if err != nil {
			unusable = append(unusable, err.Error())
			continue
		}
		keys = append(keys, k)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, v.hdr.Origin, keys...)
	if err != nil {
		return v.checkpointFailure(note, err, unusable)
	}
	id, _ := nodeIDOf(v.hdr.Cluster, signer)
	if cp.Size != v.hdr.To {
		return v.fail(KindCheckpoint, -1, nil, "checkpoint: size %d, but the pack's entries end at %d", cp.Size, v.hdr.To)
	}
	if root := v.tree.Root(); cp.Hash != root {
		return v.fail(KindCheckpoint, -1, nil, "checkpoint: the signed root %s of size %d is not the root of the pack's entries (%s): an entry in [%d, %d) was changed, removed, inserted or reordered",
			cp.Hash, cp.Size, root, v.hdr.From, v.hdr.To)
	}
	v.cp = &cp
	v.rep.Checkpoint = CheckpointInfo{Size: cp.Size, Root: cp.Hash, Signer: id, KeyName: signer, Note: bytes.Clone(note)}
	return nil
}

func (v *verifier) checkpointFailure(note []byte, err error, unusable []string) error {
	var ce *ledger.CheckpointError
	detail := err.Error()
	if errors.As(err, &ce) {
		detail = ce.Detail
	}
	switch {
	case errors.Is(err, ledger.ErrCheckpointSignature):
		return v.fail(KindCheckpoint, -1, err, "checkpoint: a signature does not verify (forged or altered): %s", detail)
	case errors.Is(err, ledger.ErrCheckpointOrigin):
		return v.fail(KindCheckpoint, -1, err, "checkpoint: origin: %s", detail)
	case errors.Is(err, ledger.ErrMalformedCheckpoint):
		return v.fail(KindCheckpoint, -1, err, "checkpoint: malformed: %s", detail)
	}
	// Not signed by an active established node: say who did sign, if anyone known.
	for _, id := range sortedKeys(v.st.nodes) {
		n := v.st.nodes[id]
		if n.active {
			continue
		}
		if k, kerr := v.nodeKey(id); kerr == nil {
			if _, _, e := ledger.VerifyCheckpoint(note, v.hdr.Origin, k); e == nil {
				return v.fail(KindCheckpoint, -1, err, "checkpoint: signed by node %s, removed at entry %d", id, n.removed)
			}
		}
	}
	for _, k := range v.trust.keys {
		if _, _, e := ledger.VerifyCheckpoint(note, v.hdr.Origin, k); e == nil {
			return v.fail(KindCheckpoint, -1, err, "checkpoint: signed by %s, whose keys the log does not establish for an active node", k.Name)
		}
	}
	msg := "checkpoint: not signed (ECDSA and ML-DSA-65) by an active node the log established"
	if detail != "" {
		msg += ": " + detail
	}
	if len(unusable) > 0 {
		msg += " (" + strings.Join(unusable, "; ") + ")"
	}
	return v.fail(KindCheckpoint, -1, err, "%s", msg)
}

// finish runs the checks that need the whole pack: certificates whose
// entries are outside it, and the relation to the pinned checkpoint.
func (v *verifier) finish() error {
	if v.hdr == nil || v.cp == nil {
		return v.fail(KindPack, -1, nil, "incomplete pack")
	}
	v.line = 0
	for _, cc := range v.certs {
		for k, h := range cc.cert.Holders {
			if h.Attested && !cc.verified[k] {
				if err := v.statement(cc, k, -1); err != nil {
					return err
				}
			}
		}
		v.rep.Certificates++
	}
	if err := v.pinned(); err != nil {
		return err
	}
	rep := v.rep
	var text strings.Builder
	for _, id := range v.activeNodes() {
		if _, err := v.nodeKey(id); err == nil {
			text.WriteString(v.texts[id])
		}
	}
	rep.nodeKeys = text.String()
	rep.Releases = v.releases.Counts()
	if !v.partial {
		rep.State = v.st.export(v.cp.Size, v.cp.Hash)
		rep.State.ReleasesBound = v.releases.Bound()
	}
	return nil
}

// pinned relates the pack's checkpoint to the pinned one.
func (v *verifier) pinned() error {
	pin, cp, from := v.trust.cp, *v.cp, v.hdr.From
	cons := v.rep.Pack.Consistency
	rep := v.rep
	rep.Pinned = PinnedInfo{Size: pin.Size, Root: pin.Hash}
	consFail := func(err error, format string, args ...any) error {
		return v.fail(KindConsistency, -1, err, format, args...)
	}
	switch {
	case pin.Size >= from && pin.Size <= cp.Size:
		got := *v.pinnedRoot
		if got != pin.Hash {
			if pin.Size == cp.Size {
				return consFail(ErrFork, "fork: the pinned checkpoint and the pack's checkpoint both have size %d, with roots %s and %s", pin.Size, pin.Hash, cp.Hash)
			}
			return consFail(ErrFork, "fork: the pack's entries give root %s at size %d, the pinned checkpoint %s", got, pin.Size, pin.Hash)
		}
		if cons != nil {
			if cons.Old != pin.Size || cons.New != cp.Size {
				return consFail(nil, "consistency proof between sizes %d and %d; the pinned and the pack's checkpoints are of sizes %d and %d", cons.Old, cons.New, pin.Size, cp.Size)
			}
			if err := ledger.VerifyConsistency(pin, cp, cons.Hashes); err != nil {
				return consFail(ErrNotExtension, "not an extension of the pinned checkpoint: %v", err)
			}
		}
		rep.Pinned.Relation = RelationExtends
		if pin.Size == cp.Size {
			rep.Pinned.Relation = RelationSame
		}
	case pin.Size < from:
		if cons == nil {
			return consFail(ErrNotExtension, "not an extension of the pinned checkpoint: the pack starts at entry %d, after the pinned size %d, and holds no consistency proof", from, pin.Size)
		}
		if cons.Old != pin.Size || cons.New != cp.Size {
			return consFail(ErrNotExtension, "not an extension of the pinned checkpoint: the consistency proof is between sizes %d and %d, want %d and %d", cons.Old, cons.New, pin.Size, cp.Size)
		}
		if err := ledger.VerifyConsistency(pin, cp, cons.Hashes); err != nil {
			return consFail(ErrNotExtension, "not an extension of the pinned checkpoint (size %d): %v", pin.Size, err)
		}
		rep.Pinned.Relation = RelationExtends
	default: // pin.Size > cp.Size
		if cons == nil || cons.Old != cp.Size || cons.New != pin.Size {
			return consFail(ErrRollback, "rollback: the pinned checkpoint has size %d, the pack's only %d, and no consistency proof shows the pack is a prefix of it", pin.Size, cp.Size)
		}
		if err := ledger.VerifyConsistency(cp, pin, cons.Hashes); err != nil {
			return consFail(ErrFork, "fork: the pack's tree of size %d is not a prefix of the pinned tree of size %d: %v", cp.Size, pin.Size, err)
		}
		rep.Pinned.Relation = RelationPrefix
	}
	return nil
}
