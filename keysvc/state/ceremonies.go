// Officers and ceremonies in the state: cluster.init, proposals,
// approvals and the execution of approved operations.

package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
	"github.com/custos-eu/custos/keysvc/officer"
)

const (
	maxOfficers  = 32 // officers named at init (the init entry lists each fingerprint)
	maxThreshold = 64 // largest default KEK threshold
)

// Ceremony statuses.
const (
	StatusPending  = "pending"
	StatusExecuted = "executed"
	StatusRefused  = "refused"
)

var (
	// ErrNotInitialized: the cluster has no officers yet (custos operator init).
	ErrNotInitialized = errors.New("keysvc: cluster not initialized (no officers yet)")
	// ErrAlreadyInitialized: a second cluster.init.
	ErrAlreadyInitialized = errors.New("keysvc: cluster already initialized")
	// ErrInvalidInit: an Init request that breaks its rules.
	ErrInvalidInit = errors.New("keysvc: invalid init")
)

// CeremonyRefusal is a refused proposal or approval: logged as a denied
// entry, with a stable Code (a ceremony.Code or one of this package's
// Code* constants).
type CeremonyRefusal struct {
	Code   string
	Reason string
	Entry  uint64 // log index of the denied entry
}

func (e *CeremonyRefusal) Error() string {
	return fmt.Sprintf("keysvc: ceremony refused (%s): %s (logged as entry %d)", e.Code, e.Reason, e.Entry)
}

// Init is what cluster.init establishes.
type Init struct {
	Officers         []string // canonical officer public key bundles (officer.PublicKey.Marshal)
	Quorum           int      // M: 2 ≤ M ≤ len(Officers)
	DefaultThreshold int      // default KEK threshold t: 1..64
	Regions          []string // allowed regions; nil keeps those fixed at bootstrap
}

// InitJSON is Init as a cluster.init command carries it.
type InitJSON struct {
	Officers         []string `json:"officers"`
	Quorum           int      `json:"quorum"`
	DefaultThreshold int      `json:"default_threshold"`
	Regions          []string `json:"regions,omitempty"`
}

// Officer is a recorded officer.
type Officer struct {
	ID          string `json:"id"`
	Bundle      string `json:"bundle"`
	Fingerprint string `json:"fingerprint"`
	Active      bool   `json:"active"`
	Added       uint64 `json:"added"`             // log index of the entry that added it
	Removed     uint64 `json:"removed,omitempty"` // log index of its removal
}

// CeremonyApproval is an accepted approval.
type CeremonyApproval struct {
	Officer   string `json:"officer"`
	Signature []byte `json:"signature"` // officer.Signature canonical JSON
	Entry     uint64 `json:"entry"`
}

// Ceremony is a recorded proposal and where it stands.
type Ceremony struct {
	ID        string             `json:"id"`
	Proposal  string             `json:"proposal"` // canonical bytes
	Approvals []CeremonyApproval `json:"approvals"`
	Status    string             `json:"status"`
	Code      string             `json:"code,omitempty"` // why refused
	Reason    string             `json:"reason,omitempty"`
	Proposed  uint64             `json:"proposed"`         // log index of the ceremony.propose entry
	Closed    uint64             `json:"closed,omitempty"` // log index of the execute or refuse entry
	Quorum    int                `json:"quorum,omitempty"` // M when it closed
}

var (
	bucketOfficers   = []byte("officers")
	bucketCeremonies = []byte("ceremonies")

	keyInit         = []byte("init")              // 8-byte BE raft index of cluster.init
	keyQuorum       = []byte("quorum")            // decimal M
	keyThreshold    = []byte("default_threshold") // decimal t
	keyStateVersion = []byte("state_version")     // 8-byte BE
)

// Initialized reports whether cluster.init is applied (officers named).
func Initialized(tx *bbolt.Tx) bool { return tx.Bucket(bucketMeta).Get(keyInit) != nil }

func metaInt(meta *bbolt.Bucket, key []byte) int {
	n, _ := strconv.Atoi(string(meta.Get(key)))
	return n
}

// bumpStateVersion marks a change proposals may act on (officers, quorum,
// regions, nodes): every open proposal made against the old version is then
// superseded.
func bumpStateVersion(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	return meta.Put(keyStateVersion, u64(getU64(meta, keyStateVersion)+1))
}

// bumpMembership bumps the state version for a membership change made
// outside a ceremony (a node joining or removed), once initialized.
func bumpMembership(tx *bbolt.Tx) error {
	if !Initialized(tx) {
		return nil
	}
	return bumpStateVersion(tx)
}

// GetOfficer reads officer id's record; found is false when there is none.
func GetOfficer(tx *bbolt.Tx, id string) (Officer, bool, error) {
	return getRecord[Officer](tx, bucketOfficers, id, "officer")
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// ForOfficers calls fn for every officer record, in id order.
func ForOfficers(tx *bbolt.Tx, fn func(Officer) error) error {
	return forRecords(tx, bucketOfficers, "officer", fn)
}

// GetCeremony reads the ceremony of proposal id; found is false when there is none.
func GetCeremony(tx *bbolt.Tx, id string) (Ceremony, bool, error) {
	return getRecord[Ceremony](tx, bucketCeremonies, id, "ceremony")
}

// Rules reads the cluster's ceremony rules.
func Rules(tx *bbolt.Tx) (ceremony.Rules, error) {
	meta := tx.Bucket(bucketMeta)
	r := ceremony.Rules{Cluster: string(meta.Get(keyCluster)), Quorum: metaInt(meta, keyQuorum)}
	err := ForOfficers(tx, func(o Officer) error {
		if o.Active {
			r.Officers = append(r.Officers, o.ID)
		}
		return nil
	})
	return r, err
}

// Verifier checks signatures with the officers' recorded bundles: parsing
// and verifying are deterministic, so this runs inside Apply.
func Verifier(tx *bbolt.Tx) ceremony.VerifyFunc {
	return func(id string, digest [32]byte, sig []byte) error {
		o, found, err := GetOfficer(tx, id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("officer %q has no recorded key", id)
		}
		pk, err := officer.ParsePublicKey([]byte(o.Bundle))
		if err != nil {
			return fmt.Errorf("officer %q: recorded key: %v", id, err)
		}
		s, err := officer.ParseSignature(sig)
		if err != nil {
			return err
		}
		return pk.Verify(digest, s)
	}
}

// logEntries appends entries made at t by cmd's actor and returns the
// index of the first.
func logEntries(tx *bbolt.Tx, cmd *Command, t time.Time, actor ledger.Actor, es ...ledger.Entry) (uint64, error) {
	for i := range es {
		es[i].Time, es[i].Actor, es[i].Node = t, actor, cmd.ServedBy
	}
	return appendLogged(tx, cmd.Type, es...)
}

func applyInit(tx *bbolt.Tx, index uint64, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return Result{}, err
	}
	if cmd.Init == nil {
		return Result{}, cmdErr(typ, "init is required")
	}
	in := cmd.Init
	deny := func(code, reason string) (Result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, Clip(reason), nil)
	}
	if Initialized(tx) {
		return deny(errcode.AlreadyInitialized, "the cluster was already initialized")
	}
	if n := len(in.Officers); n < 2 || n > maxOfficers {
		return deny(errcode.InvalidInit, fmt.Sprintf("%d officers, want 2..%d", n, maxOfficers))
	}
	keys := make([]*officer.PublicKey, len(in.Officers))
	for i, b := range in.Officers {
		pk, err := officer.ParsePublicKey([]byte(b))
		if err != nil {
			return deny(errcode.InvalidInit, fmt.Sprintf("officer key %d: %v", i+1, err))
		}
		for _, prev := range keys[:i] {
			if prev.Name() == pk.Name() {
				return deny(errcode.InvalidInit, fmt.Sprintf("officer %q named twice", pk.Name()))
			}
		}
		keys[i] = pk
	}
	if in.Quorum < 2 || in.Quorum > len(keys) {
		return deny(errcode.InvalidInit, fmt.Sprintf("quorum %d with %d officers: want 2 ≤ quorum ≤ officers (one officer alone must not decide)", in.Quorum, len(keys)))
	}
	if in.DefaultThreshold < 1 || in.DefaultThreshold > maxThreshold {
		return deny(errcode.InvalidInit, fmt.Sprintf("default threshold %d: want 1..%d", in.DefaultThreshold, maxThreshold))
	}
	meta := tx.Bucket(bucketMeta)
	var nodes []NodeRecord
	if err := ForNodes(tx, func(r NodeRecord) error {
		if !r.Removed {
			nodes = append(nodes, r)
		}
		return nil
	}); err != nil {
		return Result{}, err
	}
	regions := in.Regions
	if regions != nil {
		if len(regions) == 0 || !slices.IsSorted(regions) || len(slices.Compact(slices.Clone(regions))) != len(regions) {
			return deny(errcode.InvalidInit, "regions must be non-empty, sorted and distinct")
		}
		for _, r := range regions {
			if !identity.IsEUEEA(r) {
				return deny(errcode.InvalidInit, fmt.Sprintf("region %q is not an EU/EEA code", r))
			}
		}
		for _, n := range nodes {
			if !slices.Contains(regions, n.Region) {
				return deny(errcode.InvalidInit, fmt.Sprintf("node %s is in %s, which the regions leave out", n.ID, n.Region))
			}
		}
	} else if regions, err = allowedRegions(meta); err != nil {
		return Result{}, err
	}
	if len(keys)+len(nodes)+8 > ledger.MaxDetails {
		return deny(errcode.InvalidInit, "too many officers and nodes to name in one entry")
	}
	details := map[string]string{
		"cluster":           string(meta.Get(keyCluster)),
		"origin":            ledger.Origin(string(meta.Get(keyCluster))),
		"allowed_regions":   strings.Join(regions, ","),
		"quorum":            strconv.Itoa(in.Quorum),
		"default_threshold": strconv.Itoa(in.DefaultThreshold),
		"state_version":     "1",
	}
	// Ids go into values, not keys: detail keys are at most 64 bytes.
	ids := make([]string, len(keys))
	for i, pk := range keys {
		ids[i] = pk.Name()
		details["officer."+strconv.Itoa(i+1)] = pk.Name() + " " + pk.Fingerprint()
	}
	details["officers"] = strings.Join(ids, ",")
	for i, n := range nodes {
		sum := sha256.Sum256([]byte(n.Keys))
		details["node."+strconv.Itoa(i+1)] = n.ID + " keys_sha256:" + hex.EncodeToString(sum[:])
	}
	first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeInit, Outcome: ledger.OutcomeOK, Details: details})
	if err != nil {
		return Result{}, err
	}
	regionsJSON, err := json.Marshal(regions)
	if err != nil {
		return Result{}, err
	}
	for _, kv := range [][2][]byte{
		{keyInit, u64(index)}, {keyRegions, regionsJSON}, {keyQuorum, []byte(strconv.Itoa(in.Quorum))},
		{keyThreshold, []byte(strconv.Itoa(in.DefaultThreshold))}, {keyStateVersion, u64(1)},
	} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return Result{}, err
		}
	}
	for _, pk := range keys {
		o := Officer{ID: pk.Name(), Bundle: string(pk.Marshal()), Fingerprint: pk.Fingerprint(), Active: true, Added: first}
		if err := putJSON(tx.Bucket(bucketOfficers), o.ID, o); err != nil {
			return Result{}, err
		}
	}
	return Result{First: first, Count: 1, Outcome: string(ledger.OutcomeOK)}, nil
}

// Clip bounds a refusal reason to what a log entry field holds, on a
// UTF-8 boundary.
func Clip(s string) string {
	const max = ledger.MaxFieldLen - 24
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + " …"
}

// IsProposalID reports whether s has the form of a proposal id.
func IsProposalID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// RefusalCode is the code of a ceremony decision's error, or "" with err
// itself when it is not a refusal (the caller's bug: a storage failure or
// inconsistent state).
func RefusalCode(err error) (string, string) {
	var re *ceremony.RefusalError
	if errors.As(err, &re) {
		return string(re.Code), re.Msg
	}
	return "", ""
}

func proposalDetails(p ceremony.Proposal) map[string]string {
	d := p.Digest()
	return map[string]string{
		"proposal.id":            p.ID,
		"proposal.operation":     string(p.Operation()),
		"proposal.proposer":      p.Proposer,
		"proposal.digest":        hex.EncodeToString(d[:]),
		"proposal.state_version": strconv.FormatUint(p.StateVersion, 10),
		"proposal.expires":       FormatTime(p.Expires),
	}
}

func applyPropose(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, true)
	if err != nil {
		return Result{}, err
	}
	if cmd.Proposal == "" || cmd.Officer == "" {
		return Result{}, cmdErr(typ, "proposal and officer are required")
	}
	p, perr := ceremony.ParseProposal([]byte(cmd.Proposal))
	if perr != nil {
		code := string(ceremony.CodeInvalidProposal)
		if c, _ := RefusalCode(perr); c != "" {
			code = c
		}
		sum := sha256.Sum256([]byte(cmd.Proposal))
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, Clip(perr.Error()),
			map[string]string{"proposal.sha256": hex.EncodeToString(sum[:])})
	}
	details := proposalDetails(p)
	deny := func(code, reason string) (Result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, Clip(reason), details)
	}
	if cmd.Officer != p.Proposer {
		return deny(errcode.NotProposer, fmt.Sprintf("officer %q submitted a proposal by %q", cmd.Officer, p.Proposer))
	}
	if _, found, err := GetCeremony(tx, p.ID); err != nil {
		return Result{}, err
	} else if found {
		return deny(errcode.ProposalExists, fmt.Sprintf("a proposal with id %s was already submitted", p.ID))
	}
	r, err := Rules(tx)
	if err != nil {
		return Result{}, err
	}
	version := getU64(tx.Bucket(bucketMeta), keyStateVersion)
	if err := ceremony.CheckProposal(p, r, t, version); err != nil {
		code, msg := RefusalCode(err)
		if code == "" {
			return Result{}, &CommandError{Type: typ, Err: err} // inconsistent rules: deterministic, not a storage failure
		}
		return deny(code, msg)
	}
	res, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", details)
	if err != nil {
		return Result{}, err
	}
	c := Ceremony{ID: p.ID, Proposal: cmd.Proposal, Approvals: []CeremonyApproval{}, Status: StatusPending, Proposed: res.First}
	if err := putJSON(tx.Bucket(bucketCeremonies), c.ID, c); err != nil {
		return Result{}, err
	}
	if len(cmd.Signature) == 0 {
		return res, nil
	}
	// The proposer's signature is their approval: decided as any other.
	ar, err := approve(tx, cmd, t, actor, p.ID, cmd.Officer, cmd.Signature)
	if err != nil {
		return Result{}, err
	}
	res.Count += ar.Count
	if ar.Outcome != string(ledger.OutcomeOK) {
		res.Outcome, res.Code, res.Reason = ar.Outcome, ar.Code, ar.Reason
	}
	res.Op = ar.Op
	return res, nil
}

func applyApprove(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, true)
	if err != nil {
		return Result{}, err
	}
	if !IsProposalID(cmd.ProposalID) || cmd.Officer == "" {
		return Result{}, cmdErr(typ, "a proposal id (32 lowercase hex digits) and officer are required")
	}
	return approve(tx, cmd, t, actor, cmd.ProposalID, cmd.Officer, cmd.Signature)
}

// approve decides officer's approval of proposal id, logs it, and executes
// or closes the proposal when that decides it. The result's outcome is the
// approval's; the proposal's fate is in its record.
func approve(tx *bbolt.Tx, cmd *Command, t time.Time, actor ledger.Actor, id, off string, sig []byte) (Result, error) {
	details := map[string]string{"proposal.id": id, "officer": off}
	logApproval := func(outcome ledger.Outcome, code, reason string) (Result, error) {
		reason = Clip(reason)
		first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeApprove, Outcome: outcome, Reason: reason, Details: details})
		return Result{First: first, Count: 1, Outcome: string(outcome), Code: code, Reason: reason}, err
	}
	c, found, err := GetCeremony(tx, id)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return logApproval(ledger.OutcomeDenied, errcode.UnknownProposal, fmt.Sprintf("no proposal %q", id))
	}
	if c.Status != StatusPending {
		return logApproval(ledger.OutcomeDenied, string(ceremony.CodeClosed), fmt.Sprintf("proposal %s is already %s", id, c.Status))
	}
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return Result{}, cmdErr(cmd.Type, "stored proposal %s: %v", id, err)
	}
	for k, v := range proposalDetails(p) {
		details[k] = v
	}
	r, err := Rules(tx)
	if err != nil {
		return Result{}, err
	}
	version := getU64(tx.Bucket(bucketMeta), keyStateVersion)
	accepted := make([]ceremony.Approval, len(c.Approvals))
	for i, a := range c.Approvals {
		accepted[i] = ceremony.Approval{ProposalID: id, Officer: a.Officer, Signature: a.Signature}
	}
	a := ceremony.Approval{ProposalID: id, Officer: off, Signature: sig}
	verify := Verifier(tx)
	if err := ceremony.CheckApproval(p, accepted, a, r, t, version, verify); err != nil {
		code, msg := RefusalCode(err)
		if code == "" {
			return Result{}, &CommandError{Type: cmd.Type, Err: err}
		}
		res, err := logApproval(ledger.OutcomeDenied, code, msg)
		if err != nil || !ceremony.Code(code).Final() {
			return res, err
		}
		n, err := closeRefused(tx, cmd, t, actor, &c, details, code, msg)
		res.Count += n
		return res, err
	}
	res, err := logApproval(ledger.OutcomeOK, "", "")
	if err != nil {
		return Result{}, err
	}
	c.Approvals = append(c.Approvals, CeremonyApproval{Officer: off, Signature: sig, Entry: res.First})
	out, err := ceremony.Evaluate(p, append(accepted, a), r, t, version, verify)
	if err != nil {
		return Result{}, cmdErr(cmd.Type, "evaluate proposal %s after an accepted approval: %v", id, err)
	}
	if !out.Ready {
		return res, putJSON(tx.Bucket(bucketCeremonies), id, c)
	}
	code, reason, execDetails, err := execute(tx, p, cmd)
	if err != nil {
		return Result{}, err
	}
	if code != "" {
		n, err := closeRefused(tx, cmd, t, actor, &c, details, code, reason)
		res.Count += n
		return res, err
	}
	for k, v := range execDetails {
		details[k] = v
	}
	details["approvers"] = strings.Join(out.Approvers, ",")
	if err := bumpStateVersion(tx); err != nil {
		return Result{}, err
	}
	details["state_version"] = strconv.FormatUint(getU64(tx.Bucket(bucketMeta), keyStateVersion), 10)
	first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeExecute, Outcome: ledger.OutcomeOK, Details: details})
	if err != nil {
		return Result{}, err
	}
	c.Status, c.Closed, c.Quorum = StatusExecuted, first, out.Quorum
	res.Count++
	res.Op = string(p.Operation())
	return res, putJSON(tx.Bucket(bucketCeremonies), id, c)
}

// closeRefused closes c as refused and logs a ceremony.refuse entry.
func closeRefused(tx *bbolt.Tx, cmd *Command, t time.Time, actor ledger.Actor, c *Ceremony, details map[string]string, code, reason string) (uint64, error) {
	reason = Clip(reason)
	first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeRefuse, Outcome: ledger.OutcomeDenied, Reason: code + ": " + reason, Details: details})
	if err != nil {
		return 0, err
	}
	c.Status, c.Code, c.Reason, c.Closed = StatusRefused, code, reason, first
	c.Quorum = metaInt(tx.Bucket(bucketMeta), keyQuorum)
	return 1, putJSON(tx.Bucket(bucketCeremonies), c.ID, *c)
}

// execute carries out a ready proposal's operation, checking what depends
// on the state. A refusal is a code and reason; err is a storage failure.
func execute(tx *bbolt.Tx, p ceremony.Proposal, cmd *Command) (code, reason string, details map[string]string, err error) {
	meta := tx.Bucket(bucketMeta)
	if p.Operation().IsKEK() {
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		r, details, err := executeKEK(tx, p, cmd, size)
		if err != nil || r != nil {
			if r == nil {
				r = &refusal{}
			}
			return r.code, r.reason, nil, err
		}
		return "", "", details, nil
	}
	var active []Officer
	if err := ForOfficers(tx, func(o Officer) error {
		if o.Active {
			active = append(active, o)
		}
		return nil
	}); err != nil {
		return "", "", nil, err
	}
	quorum := metaInt(meta, keyQuorum)
	switch ps := p.Params.(type) {
	case ceremony.OfficerAdd:
		pk, err := officer.ParsePublicKey([]byte(ps.Bundle))
		if err != nil {
			return string(ceremony.CodeInvalidParams), fmt.Sprintf("officer bundle: %v", err), nil, nil
		}
		if pk.Name() != ps.ID || pk.Fingerprint() != ps.Fingerprint {
			return string(ceremony.CodeInvalidParams), fmt.Sprintf("bundle names officer %q (%s), not %q", pk.Name(), pk.Fingerprint(), ps.ID), nil, nil
		}
		old, found, err := GetOfficer(tx, ps.ID)
		if err != nil {
			return "", "", nil, err
		}
		if found && old.Active {
			return errcode.OfficerExists, fmt.Sprintf("officer %q is already active", ps.ID), nil, nil
		}
		if len(active) >= maxOfficers {
			return string(ceremony.CodeInvalidParams), fmt.Sprintf("the cluster already has %d officers", len(active)), nil, nil
		}
		if rv, revoked, err := identityRevoked(tx, identity.RoleOfficer, ps.ID); err != nil {
			return "", "", nil, err
		} else if revoked {
			return errcode.IdentityRevoked, fmt.Sprintf("officer identity %s was revoked by entry %d: add the officer under another name", ps.ID, rv.Entry), nil, nil
		}
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		o := Officer{ID: ps.ID, Bundle: ps.Bundle, Fingerprint: ps.Fingerprint, Active: true, Added: size}
		return "", "", map[string]string{"officer.id": ps.ID, "officer.fingerprint": ps.Fingerprint}, putJSON(tx.Bucket(bucketOfficers), o.ID, o)
	case ceremony.OfficerRemove:
		o, found, err := GetOfficer(tx, ps.ID)
		if err != nil {
			return "", "", nil, err
		}
		if !found || !o.Active {
			return string(ceremony.CodeUnknownOfficer), fmt.Sprintf("officer %q is not active", ps.ID), nil, nil
		}
		if len(active)-1 < quorum {
			return errcode.BelowQuorum, fmt.Sprintf("removing %q would leave %d officers, fewer than the quorum %d", ps.ID, len(active)-1, quorum), nil, nil
		}
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		o.Active, o.Removed = false, size
		details, err := revokeRemoved(tx, identity.RoleOfficer, ps.ID, size, cmd.Time, p.ID)
		if err != nil {
			return "", "", nil, err
		}
		details["officer.id"] = ps.ID
		return "", "", details, putJSON(tx.Bucket(bucketOfficers), o.ID, o)
	case ceremony.QuorumSet:
		if ps.M > len(active) {
			return errcode.BelowQuorum, fmt.Sprintf("quorum %d exceeds the %d active officers", ps.M, len(active)), nil, nil
		}
		return "", "", map[string]string{"quorum": strconv.Itoa(ps.M)}, meta.Put(keyQuorum, []byte(strconv.Itoa(ps.M)))
	case ceremony.RegionsSet:
		var inUse string
		if err := ForNodes(tx, func(r NodeRecord) error {
			if !r.Removed && !slices.Contains(ps.Regions, r.Region) && inUse == "" {
				inUse = fmt.Sprintf("node %s is in %s", r.ID, r.Region)
			}
			return nil
		}); err != nil {
			return "", "", nil, err
		}
		if inUse != "" {
			return errcode.RegionInUse, inUse + ", which the new regions leave out", nil, nil
		}
		v, err := json.Marshal(ps.Regions)
		if err != nil {
			return "", "", nil, err
		}
		return "", "", map[string]string{"allowed_regions": strings.Join(ps.Regions, ",")}, meta.Put(keyRegions, v)
	case ceremony.NodeAdd:
		info := NodeInfo{ID: ps.ID, Region: ps.Region, RaftAddr: ps.RaftAddr, APIAddr: ps.APIAddr, Keys: ps.Keys, KEM: ps.KEM, Cert: ps.Cert}
		if err := info.validate(string(meta.Get(keyCluster))); err != nil {
			return errcode.InvalidNode, err.Error(), nil, nil
		}
		regions, err := allowedRegions(meta)
		if err != nil {
			return "", "", nil, err
		}
		if !slices.Contains(regions, info.Region) {
			return errcode.RegionNotAllowed, fmt.Sprintf("region %s is not among the allowed regions %s", info.Region, strings.Join(regions, ",")), nil, nil
		}
		old, found, err := GetNode(tx, info.ID)
		if err != nil {
			return "", "", nil, err
		}
		if found && (!old.Removed || old.Keys != info.Keys) {
			return errcode.NodeConflict, fmt.Sprintf("node %s is (or was) registered", info.ID), nil, nil
		}
		if rv, revoked, err := identityRevoked(tx, identity.RoleNode, info.ID); err != nil {
			return "", "", nil, err
		} else if revoked {
			return errcode.IdentityRevoked, fmt.Sprintf("node identity %s was revoked by entry %d: add the node under another id", info.ID, rv.Entry), nil, nil
		}
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		return "", "", nodeDetails(info), putNode(tx, NodeRecord{NodeInfo: info, Added: size})
	case ceremony.NodeRemove:
		rec, found, err := GetNode(tx, ps.ID)
		if err != nil {
			return "", "", nil, err
		}
		if !found || rec.Removed {
			return errcode.UnknownNode, fmt.Sprintf("node %s is not a member", ps.ID), nil, nil
		}
		active := 0
		if err := ForNodes(tx, func(r NodeRecord) error {
			if !r.Removed {
				active++
			}
			return nil
		}); err != nil {
			return "", "", nil, err
		}
		if active <= 1 {
			return errcode.LastNode, fmt.Sprintf("node %s is the last member", ps.ID), nil, nil
		}
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		details, err := revokeRemoved(tx, identity.RoleNode, ps.ID, size, cmd.Time, p.ID)
		if err != nil {
			return "", "", nil, err
		}
		details["node.id"] = ps.ID
		rec.Removed = true
		return "", "", details, putNode(tx, rec)
	case ceremony.IdentityRevoke:
		size, err := ledgerdb.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		return executeRevoke(tx, ps, p.ID, size, cmd.Time)
	}
	// Unreachable: every operation has a case above.
	return "", "", nil, cmdErr(cmd.Type, "operation %s has no executor", p.Operation())
}
