// KEK records in the replicated state: what the KEK ceremonies execute
// inside Apply (create, rotate, disable, enable, destroy, policy, legal
// hold, escrow recovery), the nodes' signed statements, and destruction
// attestations.
//
// Apply never touches an HSM: key material is dealt and sealed by the
// leader and the nodes before the approval that executes a create, rotate
// or recovery is proposed (keysvc's kekprep.go), and reaches Apply as a
// KEKMaterial whose every part Apply checks. A destroyed version's HSM
// keys are destroyed by each node after it applies the destroy (keysvc's
// kekreconcile.go).

package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

var bucketKEKs = []byte("keks")

// KEK is a KEK's record: its policy, legal hold and versions.
type KEK struct {
	ID        string          `json:"id"`
	Policy    ceremony.Policy `json:"policy"`
	LegalHold *LegalHold      `json:"legal_hold,omitempty"`
	Created   uint64          `json:"created"` // log index of the ceremony.execute that created it
	Versions  []KEKVersion    `json:"versions"`
}

// LegalHold is a KEK's legal hold: while set, no version may be disabled or destroyed.
type LegalHold struct {
	Reason   string `json:"reason"`
	Ceremony string `json:"ceremony"`
	Entry    uint64 `json:"entry"`
}

// KEKVersion is one version of a KEK: its public key, the Pedersen
// commitments of its split, each node's sealed share with the node's
// signed statement, its escrow, and its state.
type KEKVersion struct {
	Version         uint32        `json:"version"`
	State           string        `json:"state"`
	Threshold       int           `json:"threshold"`
	PublicKey       []byte        `json:"public_key"`
	Commitments     []byte        `json:"commitments"` // threshold.Commitments encoding
	Shares          []HeldShare   `json:"shares"`
	Escrow          *KEKEscrow    `json:"escrow,omitempty"`
	Created         uint64        `json:"created"` // log index of the ceremony.execute that dealt it
	Ceremony        string        `json:"ceremony"`
	Recovered       []uint64      `json:"recovered,omitempty"` // log indexes of escrow recoveries (re-dealt)
	Destroyed       uint64        `json:"destroyed,omitempty"` // log index of the destroy
	DestroyCeremony string        `json:"destroy_ceremony,omitempty"`
	Destructions    []Destruction `json:"destructions,omitempty"`
}

// HeldShare is one node's share of a version: sealed in that node's HSM
// (Sealed is cleared when the version is destroyed), and the node's signed
// statement that it verified and sealed it.
type HeldShare struct {
	Node      string `json:"node"`
	Index     uint16 `json:"index"`
	Sealed    []byte `json:"sealed,omitempty"`
	Statement []byte `json:"statement"` // signed note, see sealedStatement
}

// Destruction is one node's signed statement that it destroyed its
// sealing key of a destroyed version.
type Destruction struct {
	Node      string `json:"node"`
	Statement []byte `json:"statement"` // signed note, see destroyedStatement
	Entry     uint64 `json:"entry"`     // log index of the kek.destroyed entry
}

// KEKEscrow is a version's officer escrow (kek.EscrowRecord) as recorded.
type KEKEscrow struct {
	Cluster     string   `json:"cluster"`
	M           int      `json:"m"`
	Officers    []string `json:"officers"`
	Commitments []byte   `json:"commitments"`
	Link        []byte   `json:"link"` // ristretto255 scalar
	Sealed      [][]byte `json:"sealed"`
}

// Record returns the escrow as kek's EscrowRecord.
func (e *KEKEscrow) Record() (*kek.EscrowRecord, error) {
	c, err := threshold.ParseCommitments(e.Commitments)
	if err != nil {
		return nil, err
	}
	link := group.Ristretto255.NewScalar()
	if err := link.UnmarshalBinary(e.Link); err != nil {
		return nil, fmt.Errorf("escrow link: %w", err)
	}
	return &kek.EscrowRecord{Cluster: e.Cluster, Threshold: e.M, Officers: slices.Clone(e.Officers),
		Commitments: c, Link: link, Sealed: slices.Clone(e.Sealed)}, nil
}

// EscrowOf is the record of an escrow as a KEK version keeps it.
func EscrowOf(rec *kek.EscrowRecord) (*KEKEscrow, error) {
	if rec == nil {
		return nil, nil
	}
	c, err := rec.Commitments.MarshalBinary()
	if err != nil {
		return nil, err
	}
	link, err := rec.Link.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &KEKEscrow{Cluster: rec.Cluster, M: rec.Threshold, Officers: slices.Clone(rec.Officers),
		Commitments: c, Link: link, Sealed: slices.Clone(rec.Sealed)}, nil
}

// Public returns the version's public record for kek's functions.
func (v *KEKVersion) Public(id string) (*kek.Version, error) {
	c, err := threshold.ParseCommitments(v.Commitments)
	if err != nil {
		return nil, fmt.Errorf("kek %q v%d: %w", id, v.Version, err)
	}
	return &kek.Version{ID: id, Version: v.Version, Threshold: v.Threshold, Shares: len(v.Shares),
		PublicKey: v.PublicKey, Commitments: c}, nil
}

// Share returns the share node holds, if any.
func (v *KEKVersion) Share(node string) (HeldShare, bool) {
	for _, s := range v.Shares {
		if s.Node == node {
			return s, true
		}
	}
	return HeldShare{}, false
}

// Attested reports whether node has attested the version's destruction.
func (v *KEKVersion) Attested(node string) bool {
	return slices.ContainsFunc(v.Destructions, func(d Destruction) bool { return d.Node == node })
}

// Version returns version ver of k.
func (k *KEK) Version(ver uint32) (*KEKVersion, bool) {
	for i := range k.Versions {
		if k.Versions[i].Version == ver {
			return &k.Versions[i], true
		}
	}
	return nil, false
}

// Latest returns the highest version number, 0 for none.
func (k *KEK) Latest() uint32 {
	if len(k.Versions) == 0 {
		return 0
	}
	return k.Versions[len(k.Versions)-1].Version
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// KEKMaterial is a dealt KEK version, as the leader proposes it with the
// approval that executes kek.create, kek.rotate or escrow.recover.
type KEKMaterial struct {
	KEKID       string      `json:"kek_id"`
	Version     uint32      `json:"version"`
	Threshold   int         `json:"threshold"`
	PublicKey   []byte      `json:"public_key"`
	Commitments []byte      `json:"commitments"`
	Shares      []HeldShare `json:"shares"`
	Escrow      *KEKEscrow  `json:"escrow,omitempty"`
}

// Attestation is a node's destruction attestation (command kek.attest).
type Attestation struct {
	KEKID     string `json:"kek_id"`
	Version   uint32 `json:"version"`
	Statement []byte `json:"statement"`
}

// GetKEK reads KEK id's record; found is false when there is none.
func GetKEK(tx *bbolt.Tx, id string) (KEK, bool, error) {
	return getRecord[KEK](tx, bucketKEKs, id, "kek")
}

func putKEK(tx *bbolt.Tx, k KEK) error { return putJSON(tx.Bucket(bucketKEKs), k.ID, k) }

// ForKEKs calls fn for every KEK record, in id order.
func ForKEKs(tx *bbolt.Tx, fn func(KEK) error) error { return forRecords(tx, bucketKEKs, "kek", fn) }

// ActiveNodes returns the registered nodes, in id order.
func ActiveNodes(tx *bbolt.Tx) ([]NodeRecord, error) {
	var out []NodeRecord
	err := ForNodes(tx, func(r NodeRecord) error {
		if !r.Removed {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// activeOfficerRecords returns the active officers, in id order.
func activeOfficerRecords(tx *bbolt.Tx) ([]Officer, error) {
	var out []Officer
	err := ForOfficers(tx, func(o Officer) error {
		if o.Active {
			out = append(out, o)
		}
		return nil
	})
	return out, err
}

// nodeKey returns the recorded checkpoint keys of node id.
func nodeKey(tx *bbolt.Tx, id string) (ledger.NodeKey, error) {
	r, found, err := GetNode(tx, id)
	if err != nil {
		return ledger.NodeKey{}, err
	}
	if !found {
		return ledger.NodeKey{}, fmt.Errorf("node %q is not registered", id)
	}
	var k ledger.NodeKey
	if err := k.UnmarshalText([]byte(r.Keys)); err != nil {
		return ledger.NodeKey{}, fmt.Errorf("node %q: recorded keys: %v", id, err)
	}
	return k, nil
}

// checkPolicy checks what a policy's validity depends on in the cluster:
// a threshold the nodes can meet, regions the cluster allows, an escrow
// quorum the officers can meet.
func checkPolicy(tx *bbolt.Tx, p ceremony.Policy) (string, error) {
	nodes, err := ActiveNodes(tx)
	if err != nil {
		return "", err
	}
	if p.Threshold > len(nodes) {
		return fmt.Sprintf("threshold %d exceeds the %d nodes that would hold shares", p.Threshold, len(nodes)), nil
	}
	regions, err := allowedRegions(tx.Bucket(bucketMeta))
	if err != nil {
		return "", err
	}
	for _, r := range slices.Concat(p.Wrap.Regions, p.Unwrap.Regions) {
		if !slices.Contains(regions, r) {
			return fmt.Sprintf("region %s is not among the cluster's allowed regions %s", r, strings.Join(regions, ",")), nil
		}
	}
	if p.Escrow.Enabled {
		officers, err := activeOfficerRecords(tx)
		if err != nil {
			return "", err
		}
		if p.Escrow.M > len(officers) {
			return fmt.Sprintf("escrow m %d exceeds the %d active officers", p.Escrow.M, len(officers)), nil
		}
	}
	return "", nil
}

// escrowWant is what a dealt escrow must be: m of these officers.
type escrowWant struct {
	m        int
	officers []string
}

// checkMaterial checks dealt material for version ver of KEK id with
// threshold t, dealt for ceremony pid: every active node holds exactly one
// share, with a statement it signed over exactly these facts; pub, when
// set, is the public key the material must have (a recovery); esc, when
// set, the escrow it must carry. It returns a reason for a refusal.
func checkMaterial(tx *bbolt.Tx, pid, id string, ver uint32, t int, m *KEKMaterial, pub []byte, esc *escrowWant) (string, error) {
	if m.KEKID != id || m.Version != ver || m.Threshold != t {
		return fmt.Sprintf("material is for kek %q v%d t=%d, want %q v%d t=%d", m.KEKID, m.Version, m.Threshold, id, ver, t), nil
	}
	if len(m.PublicKey) != wrapkey.PublicKeySize {
		return fmt.Sprintf("public key is %d bytes, want %d", len(m.PublicKey), wrapkey.PublicKeySize), nil
	}
	if pub != nil && !bytes.Equal(pub, m.PublicKey) {
		return "re-dealt public key differs from the recorded one", nil
	}
	c, err := threshold.ParseCommitments(m.Commitments)
	if err != nil || len(c) != t {
		return fmt.Sprintf("commitments do not parse as %d commitments", t), nil
	}
	nodes, err := ActiveNodes(tx)
	if err != nil {
		return "", err
	}
	if t > len(nodes) {
		return fmt.Sprintf("threshold %d exceeds the %d nodes", t, len(nodes)), nil
	}
	if len(m.Shares) != len(nodes) {
		return fmt.Sprintf("%d shares for %d nodes: every node must hold one", len(m.Shares), len(nodes)), nil
	}
	cluster := string(tx.Bucket(bucketMeta).Get(keyCluster))
	seen := map[uint16]bool{}
	for i, nr := range nodes {
		s := m.Shares[i]
		if s.Node != nr.ID {
			return fmt.Sprintf("share %d is for node %q, want %q (nodes in id order)", i+1, s.Node, nr.ID), nil
		}
		if s.Index == 0 || int(s.Index) > len(nodes) || seen[s.Index] {
			return fmt.Sprintf("node %s: share index %d is out of range or repeated", s.Node, s.Index), nil
		}
		seen[s.Index] = true
		k, err := nodeKey(tx, s.Node)
		if err != nil {
			return err.Error(), nil
		}
		text, err := ledger.VerifyStatement(s.Statement, k)
		if err != nil {
			return fmt.Sprintf("node %s: %v", s.Node, err), nil
		}
		if want := ledger.ShareSealedStatement(cluster, s.Node, id, ver, s.Index, m.PublicKey, m.Commitments, s.Sealed, pid); text != want {
			return fmt.Sprintf("node %s: its statement does not attest this share", s.Node), nil
		}
	}
	switch {
	case esc == nil && m.Escrow != nil:
		return "escrow dealt, but the policy has none", nil
	case esc != nil && m.Escrow == nil:
		return "no escrow dealt, but the policy requires it", nil
	case esc == nil:
		return "", nil
	}
	if m.Escrow.M != esc.m || !slices.Equal(m.Escrow.Officers, esc.officers) || m.Escrow.Cluster != cluster {
		return fmt.Sprintf("escrow is %d of %v for %q, want %d of %v for %q", m.Escrow.M, m.Escrow.Officers, m.Escrow.Cluster, esc.m, esc.officers, cluster), nil
	}
	rec, err := m.Escrow.Record()
	if err != nil {
		return "escrow: " + err.Error(), nil
	}
	v := &kek.Version{ID: id, Version: ver, Threshold: t, Shares: len(nodes), PublicKey: m.PublicKey, Commitments: c}
	if err := kek.VerifyEscrowRecord(v, rec); err != nil {
		return "escrow: " + err.Error(), nil
	}
	for i, o := range esc.officers {
		rec, found, err := GetOfficer(tx, o)
		if err != nil {
			return "", err
		}
		if !found {
			return fmt.Sprintf("escrow officer %q is not recorded", o), nil
		}
		pk, err := officer.ParsePublicKey([]byte(rec.Bundle))
		if err != nil {
			return fmt.Sprintf("officer %q: %v", o, err), nil
		}
		es, err := kek.ParseEscrowShare(m.Escrow.Sealed[i])
		if err != nil {
			return fmt.Sprintf("escrow share of %q: %v", o, err), nil
		}
		if es.Recipient != kek.EscrowKeyFingerprint(pk.XWingKey()) {
			return fmt.Sprintf("escrow share of %q is not sealed to that officer's key", o), nil
		}
	}
	return "", nil
}

// escrowFor returns the escrow a new version under policy p must carry.
func escrowFor(tx *bbolt.Tx, p ceremony.Policy) (*escrowWant, error) {
	if !p.Escrow.Enabled {
		return nil, nil
	}
	officers, err := activeOfficerRecords(tx)
	if err != nil {
		return nil, err
	}
	w := &escrowWant{m: p.Escrow.M}
	for _, o := range officers {
		w.officers = append(w.officers, o.ID)
	}
	return w, nil
}

// newVersion builds the record of a dealt version.
func newVersion(m *KEKMaterial, created uint64, pid string) KEKVersion {
	return KEKVersion{Version: m.Version, State: ledger.KEKActive, Threshold: m.Threshold, PublicKey: m.PublicKey,
		Commitments: m.Commitments, Shares: m.Shares, Escrow: m.Escrow, Created: created, Ceremony: pid}
}

// refusal is a KEK ceremony's refusal: a code and a reason.
type refusal struct{ code, reason string }

func refuse(code, format string, a ...any) *refusal {
	return &refusal{code, fmt.Sprintf(format, a...)}
}

// executeKEK carries out a ready KEK, legal hold or escrow proposal. The
// details go into the ceremony.execute entry; created is that entry's index.
func executeKEK(tx *bbolt.Tx, p ceremony.Proposal, cmd *Command, created uint64) (*refusal, map[string]string, error) {
	id := p.KEKID() // never empty: ParseProposal checked it
	k, found, err := GetKEK(tx, id)
	if err != nil {
		return nil, nil, err
	}
	details := map[string]string{"kek.id": id}
	if _, ok := p.Params.(ceremony.KEKCreate); ok {
		if found {
			return refuse(errcode.KEKExists, "kek %q already exists", id), nil, nil
		}
	} else if !found {
		return refuse(errcode.UnknownKEK, "no kek %q", id), nil, nil
	}
	// material checks a create, rotate or recovery's dealt version.
	material := func(ver uint32, t int, pub []byte, esc *escrowWant) (*refusal, error) {
		if cmd.PrepError != "" {
			return refuse(errcode.KEKCreationFailed, "%s; nothing was created", cmd.PrepError), nil
		}
		if cmd.KEK == nil {
			return refuse(errcode.KEKCreationFailed, "the leader dealt no key material; nothing was created"), nil
		}
		reason, err := checkMaterial(tx, p.ID, id, ver, t, cmd.KEK, pub, esc)
		if err != nil || reason != "" {
			return refuse(errcode.InvalidKEKMaterial, "%s", reason), err
		}
		details["kek.version"] = strconv.FormatUint(uint64(ver), 10)
		details["kek.threshold"] = strconv.Itoa(t)
		details["kek.public_key"] = hashHex(cmd.KEK.PublicKey)
		details["kek.commitments"] = hashHex(cmd.KEK.Commitments)
		holders := make([]string, len(cmd.KEK.Shares))
		for i, s := range cmd.KEK.Shares {
			holders[i] = s.Node
		}
		details["kek.holders"] = strings.Join(holders, ",")
		if cmd.KEK.Escrow != nil {
			details["kek.escrow"] = fmt.Sprintf("%d of %s", cmd.KEK.Escrow.M, strings.Join(cmd.KEK.Escrow.Officers, ","))
		}
		return nil, nil
	}
	// version finds ver, refusing a missing or destroyed one.
	version := func(ver uint32) (*KEKVersion, *refusal) {
		v, ok := k.Version(ver)
		if !ok {
			return nil, refuse(errcode.UnknownVersion, "kek %q has no version %d", id, ver)
		}
		if v.State == ledger.KEKDestroyed {
			return nil, refuse(errcode.KEKDestroyed, "kek %q v%d is destroyed", id, ver)
		}
		details["kek.version"] = strconv.FormatUint(uint64(ver), 10)
		return v, nil
	}
	held := func(what string) *refusal {
		if k.LegalHold != nil {
			return refuse(errcode.LegalHold, "kek %q is under legal hold (%s): it cannot be %s until the hold is released", id, k.LegalHold.Reason, what)
		}
		return nil
	}
	// setState moves versions (one, or all with all) from one state to another.
	setState := func(ver uint32, all bool, from, to string) *refusal {
		if !all {
			v, r := version(ver)
			if r != nil {
				return r
			}
			if v.State != from {
				return refuse(errcode.NothingToChange, "kek %q v%d is already %s", id, ver, v.State)
			}
			v.State = to
			return nil
		}
		var changed []string
		for i := range k.Versions {
			if k.Versions[i].State == from {
				k.Versions[i].State = to
				changed = append(changed, strconv.FormatUint(uint64(k.Versions[i].Version), 10))
			}
		}
		if len(changed) == 0 {
			return refuse(errcode.NothingToChange, "kek %q has no %s version", id, from)
		}
		details["kek.versions"] = strings.Join(changed, ",")
		return nil
	}

	var r *refusal
	switch ps := p.Params.(type) {
	case ceremony.KEKCreate:
		if reason, err := checkPolicy(tx, ps.Policy); err != nil || reason != "" {
			return refuse(errcode.InvalidPolicy, "%s", reason), nil, err
		}
		esc, err := escrowFor(tx, ps.Policy)
		if err != nil {
			return nil, nil, err
		}
		if r, err = material(1, ps.Policy.Threshold, nil, esc); err != nil || r != nil {
			return r, nil, err
		}
		k = KEK{ID: id, Policy: ps.Policy, Created: created, Versions: []KEKVersion{newVersion(cmd.KEK, created, p.ID)}}
	case ceremony.KEKRotate:
		if reason, err := checkPolicy(tx, k.Policy); err != nil || reason != "" {
			return refuse(errcode.InvalidPolicy, "the kek's policy no longer fits the cluster: %s (change it by kek.policy first)", reason), nil, err
		}
		esc, err := escrowFor(tx, k.Policy)
		if err != nil {
			return nil, nil, err
		}
		if r, err = material(k.Latest()+1, k.Policy.Threshold, nil, esc); err != nil || r != nil {
			return r, nil, err
		}
		k.Versions = append(k.Versions, newVersion(cmd.KEK, created, p.ID))
	case ceremony.KEKDisable:
		if r = held("disabled"); r == nil {
			r = setState(ps.Version, ps.All, ledger.KEKActive, ledger.KEKDisabled)
		}
	case ceremony.KEKEnable:
		r = setState(ps.Version, ps.All, ledger.KEKDisabled, ledger.KEKActive)
	case ceremony.KEKDestroy:
		if r = held("destroyed"); r != nil {
			break
		}
		v, vr := version(ps.Version)
		if vr != nil {
			return vr, nil, nil
		}
		v.State, v.Destroyed, v.DestroyCeremony = ledger.KEKDestroyed, created, p.ID
		for i := range v.Shares {
			v.Shares[i].Sealed = nil
		}
		holders := make([]string, len(v.Shares))
		for i, s := range v.Shares {
			holders[i] = s.Node
		}
		details["kek.holders"] = strings.Join(holders, ",")
	case ceremony.KEKPolicy:
		if reason, err := checkPolicy(tx, ps.Policy); err != nil || reason != "" {
			return refuse(errcode.InvalidPolicy, "%s", reason), nil, err
		}
		k.Policy = ps.Policy
		pj, err := ps.Policy.MarshalJSON()
		if err != nil {
			return nil, nil, err
		}
		details["kek.policy"] = hashHex(pj)
	case ceremony.LegalHoldSet:
		if k.LegalHold != nil {
			return refuse(errcode.AlreadyHeld, "kek %q is already under legal hold (%s)", id, k.LegalHold.Reason), nil, nil
		}
		k.LegalHold = &LegalHold{Reason: ps.Reason, Ceremony: p.ID, Entry: created}
		details["legal_hold.reason"] = ps.Reason
	case ceremony.LegalHoldRelease:
		if k.LegalHold == nil {
			return refuse(errcode.NotHeld, "kek %q is not under legal hold", id), nil, nil
		}
		k.LegalHold = nil
		details["legal_hold.reason"] = ps.Reason
	case ceremony.EscrowRecover:
		v, vr := version(ps.Version)
		if vr != nil {
			return vr, nil, nil
		}
		if v.Escrow == nil {
			return refuse(errcode.NoEscrow, "kek %q v%d has no officer escrow", id, ps.Version), nil, nil
		}
		esc := &escrowWant{m: v.Escrow.M, officers: v.Escrow.Officers}
		var err error
		if r, err = material(ps.Version, k.Policy.Threshold, v.PublicKey, esc); err != nil || r != nil {
			return r, nil, err
		}
		m := cmd.KEK
		v.Threshold, v.Commitments, v.Shares, v.Escrow = m.Threshold, m.Commitments, m.Shares, m.Escrow
		v.Recovered = append(v.Recovered, created)
		details["escrow.reason"] = ps.Reason
	}
	if r != nil {
		return r, nil, nil
	}
	return nil, details, putKEK(tx, k)
}

// applyAttest records a node's statement that it destroyed its sealing key
// of a destroyed version. A repeated attestation changes nothing.
func applyAttest(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContext(cmd)
	if err != nil {
		return Result{}, err
	}
	a := cmd.Attest
	if a == nil || cmd.NodeID == "" {
		return Result{}, cmdErr(typ, "attest and node_id are required")
	}
	k, found, err := GetKEK(tx, a.KEKID)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{}, cmdErr(typ, "no kek %q", a.KEKID)
	}
	v, ok := k.Version(a.Version)
	if !ok || v.State != ledger.KEKDestroyed {
		return Result{}, cmdErr(typ, "kek %q v%d is not destroyed", a.KEKID, a.Version)
	}
	if _, holds := v.Share(cmd.NodeID); !holds {
		return Result{}, cmdErr(typ, "node %q holds no share of kek %q v%d", cmd.NodeID, a.KEKID, a.Version)
	}
	for _, d := range v.Destructions {
		if d.Node == cmd.NodeID {
			return Result{First: d.Entry, Outcome: string(ledger.OutcomeOK)}, nil
		}
	}
	key, err := nodeKey(tx, cmd.NodeID)
	if err != nil {
		return Result{}, cmdErr(typ, "%v", err)
	}
	text, err := ledger.VerifyStatement(a.Statement, key)
	if err != nil {
		return Result{}, cmdErr(typ, "%v", err)
	}
	cluster := string(tx.Bucket(bucketMeta).Get(keyCluster))
	if text != ledger.ShareDestroyedStatement(cluster, cmd.NodeID, a.KEKID, a.Version, v.DestroyCeremony) {
		return Result{}, cmdErr(typ, "statement does not attest the destruction of kek %q v%d by node %q", a.KEKID, a.Version, cmd.NodeID)
	}
	details := map[string]string{"node.id": cmd.NodeID, "statement": hashHex(a.Statement), "ceremony": v.DestroyCeremony,
		"label": kek.Label(a.KEKID, a.Version)}
	first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeDestroyed, KEKID: a.KEKID, KEKVersion: a.Version,
		Outcome: ledger.OutcomeOK, Details: details})
	if err != nil {
		return Result{}, err
	}
	v.Destructions = append(v.Destructions, Destruction{Node: cmd.NodeID, Statement: a.Statement, Entry: first})
	return Result{First: first, Count: 1, Outcome: string(ledger.OutcomeOK)}, putKEK(tx, k)
}

// ErrUnknownKEK: no KEK (or no version) by that id.
var ErrUnknownKEK = errors.New("keysvc: unknown kek")
