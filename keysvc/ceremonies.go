// Officers and quorum ceremonies in the state machine: the cluster.init
// command that names the officers, and the ceremony.propose and
// ceremony.approve commands, decided by package ceremony inside Apply.

package keysvc

import (
	"context"
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

	"github.com/custos-eu/custos/keysvc/errcode"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
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

type initJSON struct {
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

func initialized(tx *bbolt.Tx) bool { return tx.Bucket(bucketMeta).Get(keyInit) != nil }

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
	if !initialized(tx) {
		return nil
	}
	return bumpStateVersion(tx)
}

func getOfficer(tx *bbolt.Tx, id string) (Officer, bool, error) {
	return getRecord[Officer](tx, bucketOfficers, id, "officer")
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func forOfficers(tx *bbolt.Tx, fn func(Officer) error) error {
	return forRecords(tx, bucketOfficers, "officer", fn)
}

func getCeremony(tx *bbolt.Tx, id string) (Ceremony, bool, error) {
	return getRecord[Ceremony](tx, bucketCeremonies, id, "ceremony")
}

// rules reads the cluster's ceremony rules.
func rules(tx *bbolt.Tx) (ceremony.Rules, error) {
	meta := tx.Bucket(bucketMeta)
	r := ceremony.Rules{Cluster: string(meta.Get(keyCluster)), Quorum: metaInt(meta, keyQuorum)}
	err := forOfficers(tx, func(o Officer) error {
		if o.Active {
			r.Officers = append(r.Officers, o.ID)
		}
		return nil
	})
	return r, err
}

// verifier checks signatures with the officers' recorded bundles: parsing
// and verifying are deterministic, so this runs inside Apply.
func verifier(tx *bbolt.Tx) ceremony.VerifyFunc {
	return func(id string, digest [32]byte, sig []byte) error {
		o, found, err := getOfficer(tx, id)
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
func logEntries(tx *bbolt.Tx, cmd *command, t time.Time, actor ledger.Actor, es ...ledger.Entry) (uint64, error) {
	for i := range es {
		es[i].Time, es[i].Actor, es[i].Node = t, actor, cmd.ServedBy
	}
	return appendLogged(tx, cmd.Type, es...)
}

func applyInit(tx *bbolt.Tx, index uint64, cmd *command) (result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return result{}, err
	}
	if cmd.Init == nil {
		return result{}, cmdErr(typ, "init is required")
	}
	in := cmd.Init
	deny := func(code, reason string) (result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, clip(reason), nil)
	}
	if initialized(tx) {
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
	var nodes []nodeRecord
	if err := forNodes(tx, func(r nodeRecord) error {
		if !r.Removed {
			nodes = append(nodes, r)
		}
		return nil
	}); err != nil {
		return result{}, err
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
		return result{}, err
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
		return result{}, err
	}
	regionsJSON, err := json.Marshal(regions)
	if err != nil {
		return result{}, err
	}
	for _, kv := range [][2][]byte{
		{keyInit, u64(index)}, {keyRegions, regionsJSON}, {keyQuorum, []byte(strconv.Itoa(in.Quorum))},
		{keyThreshold, []byte(strconv.Itoa(in.DefaultThreshold))}, {keyStateVersion, u64(1)},
	} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return result{}, err
		}
	}
	for _, pk := range keys {
		o := Officer{ID: pk.Name(), Bundle: string(pk.Marshal()), Fingerprint: pk.Fingerprint(), Active: true, Added: first}
		if err := putJSON(tx.Bucket(bucketOfficers), o.ID, o); err != nil {
			return result{}, err
		}
	}
	return result{First: first, Count: 1, Outcome: string(ledger.OutcomeOK)}, nil
}

// clip bounds a refusal reason to what a log entry field holds, on a
// UTF-8 boundary.
func clip(s string) string {
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

// isProposalID reports whether s has the form of a proposal id.
func isProposalID(s string) bool {
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

// refusalCode is the code of a ceremony decision's error, or "" with err
// itself when it is not a refusal (the caller's bug: a storage failure or
// inconsistent state).
func refusalCode(err error) (string, string) {
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
		"proposal.expires":       formatTime(p.Expires),
	}
}

// supported reports whether this version executes op.
func supported(op ceremony.Operation) bool {
	switch op {
	case ceremony.OpOfficerAdd, ceremony.OpOfficerRemove, ceremony.OpQuorumSet, ceremony.OpRegionsSet,
		ceremony.OpNodeAdd, ceremony.OpNodeRemove, ceremony.OpIdentityRevoke:
		return true
	}
	return isKEKOp(op)
}

func applyPropose(tx *bbolt.Tx, cmd *command) (result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, true)
	if err != nil {
		return result{}, err
	}
	if cmd.Proposal == "" || cmd.Officer == "" {
		return result{}, cmdErr(typ, "proposal and officer are required")
	}
	p, perr := ceremony.ParseProposal([]byte(cmd.Proposal))
	if perr != nil {
		code := string(ceremony.CodeInvalidProposal)
		if c, _ := refusalCode(perr); c != "" {
			code = c
		}
		sum := sha256.Sum256([]byte(cmd.Proposal))
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, clip(perr.Error()),
			map[string]string{"proposal.sha256": hex.EncodeToString(sum[:])})
	}
	details := proposalDetails(p)
	deny := func(code, reason string) (result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, clip(reason), details)
	}
	if cmd.Officer != p.Proposer {
		return deny(errcode.NotProposer, fmt.Sprintf("officer %q submitted a proposal by %q", cmd.Officer, p.Proposer))
	}
	if !supported(p.Operation()) {
		return deny(errcode.NotSupportedYet, fmt.Sprintf("operation %s is not supported by this version of Custos yet", p.Operation()))
	}
	if _, found, err := getCeremony(tx, p.ID); err != nil {
		return result{}, err
	} else if found {
		return deny(errcode.ProposalExists, fmt.Sprintf("a proposal with id %s was already submitted", p.ID))
	}
	r, err := rules(tx)
	if err != nil {
		return result{}, err
	}
	version := getU64(tx.Bucket(bucketMeta), keyStateVersion)
	if err := ceremony.CheckProposal(p, r, t, version); err != nil {
		code, msg := refusalCode(err)
		if code == "" {
			return result{}, &CommandError{Type: typ, Err: err} // inconsistent rules: deterministic, not a storage failure
		}
		return deny(code, msg)
	}
	res, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", details)
	if err != nil {
		return result{}, err
	}
	c := Ceremony{ID: p.ID, Proposal: cmd.Proposal, Approvals: []CeremonyApproval{}, Status: StatusPending, Proposed: res.First}
	if err := putJSON(tx.Bucket(bucketCeremonies), c.ID, c); err != nil {
		return result{}, err
	}
	if len(cmd.Signature) == 0 {
		return res, nil
	}
	// The proposer's signature is their approval: decided as any other.
	ar, err := approve(tx, cmd, t, actor, p.ID, cmd.Officer, cmd.Signature)
	if err != nil {
		return result{}, err
	}
	res.Count += ar.Count
	if ar.Outcome != string(ledger.OutcomeOK) {
		res.Outcome, res.Code, res.Reason = ar.Outcome, ar.Code, ar.Reason
	}
	res.Op = ar.Op
	return res, nil
}

func applyApprove(tx *bbolt.Tx, cmd *command) (result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, true)
	if err != nil {
		return result{}, err
	}
	if !isProposalID(cmd.ProposalID) || cmd.Officer == "" {
		return result{}, cmdErr(typ, "a proposal id (32 lowercase hex digits) and officer are required")
	}
	return approve(tx, cmd, t, actor, cmd.ProposalID, cmd.Officer, cmd.Signature)
}

// approve decides officer's approval of proposal id, logs it, and executes
// or closes the proposal when that decides it. The result's outcome is the
// approval's; the proposal's fate is in its record.
func approve(tx *bbolt.Tx, cmd *command, t time.Time, actor ledger.Actor, id, off string, sig []byte) (result, error) {
	details := map[string]string{"proposal.id": id, "officer": off}
	logApproval := func(outcome ledger.Outcome, code, reason string) (result, error) {
		reason = clip(reason)
		first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeApprove, Outcome: outcome, Reason: reason, Details: details})
		return result{First: first, Count: 1, Outcome: string(outcome), Code: code, Reason: reason}, err
	}
	c, found, err := getCeremony(tx, id)
	if err != nil {
		return result{}, err
	}
	if !found {
		return logApproval(ledger.OutcomeDenied, errcode.UnknownProposal, fmt.Sprintf("no proposal %q", id))
	}
	if c.Status != StatusPending {
		return logApproval(ledger.OutcomeDenied, string(ceremony.CodeClosed), fmt.Sprintf("proposal %s is already %s", id, c.Status))
	}
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return result{}, cmdErr(cmd.Type, "stored proposal %s: %v", id, err)
	}
	for k, v := range proposalDetails(p) {
		details[k] = v
	}
	r, err := rules(tx)
	if err != nil {
		return result{}, err
	}
	version := getU64(tx.Bucket(bucketMeta), keyStateVersion)
	accepted := make([]ceremony.Approval, len(c.Approvals))
	for i, a := range c.Approvals {
		accepted[i] = ceremony.Approval{ProposalID: id, Officer: a.Officer, Signature: a.Signature}
	}
	a := ceremony.Approval{ProposalID: id, Officer: off, Signature: sig}
	verify := verifier(tx)
	if err := ceremony.CheckApproval(p, accepted, a, r, t, version, verify); err != nil {
		code, msg := refusalCode(err)
		if code == "" {
			return result{}, &CommandError{Type: cmd.Type, Err: err}
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
		return result{}, err
	}
	c.Approvals = append(c.Approvals, CeremonyApproval{Officer: off, Signature: sig, Entry: res.First})
	out, err := ceremony.Evaluate(p, append(accepted, a), r, t, version, verify)
	if err != nil {
		return result{}, cmdErr(cmd.Type, "evaluate proposal %s after an accepted approval: %v", id, err)
	}
	if !out.Ready {
		return res, putJSON(tx.Bucket(bucketCeremonies), id, c)
	}
	code, reason, execDetails, err := execute(tx, p, cmd)
	if err != nil {
		return result{}, err
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
		return result{}, err
	}
	details["state_version"] = strconv.FormatUint(getU64(tx.Bucket(bucketMeta), keyStateVersion), 10)
	first, err := logEntries(tx, cmd, t, actor, ledger.Entry{Type: ledger.TypeExecute, Outcome: ledger.OutcomeOK, Details: details})
	if err != nil {
		return result{}, err
	}
	c.Status, c.Closed, c.Quorum = StatusExecuted, first, out.Quorum
	res.Count++
	res.Op = string(p.Operation())
	return res, putJSON(tx.Bucket(bucketCeremonies), id, c)
}

// closeRefused closes c as refused and logs a ceremony.refuse entry.
func closeRefused(tx *bbolt.Tx, cmd *command, t time.Time, actor ledger.Actor, c *Ceremony, details map[string]string, code, reason string) (uint64, error) {
	reason = clip(reason)
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
func execute(tx *bbolt.Tx, p ceremony.Proposal, cmd *command) (code, reason string, details map[string]string, err error) {
	meta := tx.Bucket(bucketMeta)
	if isKEKOp(p.Operation()) {
		size, err := ledger.Size(tx)
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
	if err := forOfficers(tx, func(o Officer) error {
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
		old, found, err := getOfficer(tx, ps.ID)
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
		size, err := ledger.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		o := Officer{ID: ps.ID, Bundle: ps.Bundle, Fingerprint: ps.Fingerprint, Active: true, Added: size}
		return "", "", map[string]string{"officer.id": ps.ID, "officer.fingerprint": ps.Fingerprint}, putJSON(tx.Bucket(bucketOfficers), o.ID, o)
	case ceremony.OfficerRemove:
		o, found, err := getOfficer(tx, ps.ID)
		if err != nil {
			return "", "", nil, err
		}
		if !found || !o.Active {
			return string(ceremony.CodeUnknownOfficer), fmt.Sprintf("officer %q is not active", ps.ID), nil, nil
		}
		if len(active)-1 < quorum {
			return errcode.BelowQuorum, fmt.Sprintf("removing %q would leave %d officers, fewer than the quorum %d", ps.ID, len(active)-1, quorum), nil, nil
		}
		size, err := ledger.Size(tx)
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
		if err := forNodes(tx, func(r nodeRecord) error {
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
		old, found, err := getNode(tx, info.ID)
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
		size, err := ledger.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		return "", "", nodeDetails(info), putNode(tx, nodeRecord{NodeInfo: info, Added: size})
	case ceremony.NodeRemove:
		rec, found, err := getNode(tx, ps.ID)
		if err != nil {
			return "", "", nil, err
		}
		if !found || rec.Removed {
			return errcode.UnknownNode, fmt.Sprintf("node %s is not a member", ps.ID), nil, nil
		}
		active := 0
		if err := forNodes(tx, func(r nodeRecord) error {
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
		size, err := ledger.Size(tx)
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
		size, err := ledger.Size(tx)
		if err != nil {
			return "", "", nil, err
		}
		return executeRevoke(tx, ps, p.ID, size, cmd.Time)
	}
	return errcode.NotSupportedYet, fmt.Sprintf("operation %s is not supported by this version of Custos yet", p.Operation()), nil, nil
}

// Init commits cluster.init, once: it names the officers, the quorum, the
// default KEK threshold and (if in.Regions is not nil) replaces the allowed
// regions fixed at bootstrap. Leader only. Its entry names everything an
// auditor needs to start trusting the cluster: officer fingerprints, the
// nodes' key hashes, quorum and regions. A second call is logged as denied
// and returns ErrAlreadyInitialized; invalid input ErrInvalidInit.
func (n *Node) Init(ctx context.Context, in Init, actor ledger.Actor) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return err
	}
	if actor.Identity == "" {
		return errors.New("keysvc: init: actor identity is required")
	}
	var regions []string
	if in.Regions != nil {
		regions = slices.Clone(in.Regions)
		slices.Sort(regions)
		regions = slices.Compact(regions)
	}
	res, err := n.propose(ctx, &command{
		Type: ledger.TypeInit, Time: formatTime(n.cfg.Now()), ServedBy: n.cfg.NodeID, Actor: toActorJSON(actor),
		Init: &initJSON{Officers: in.Officers, Quorum: in.Quorum, DefaultThreshold: in.DefaultThreshold, Regions: regions},
	})
	if err != nil {
		return fmt.Errorf("keysvc: init: %w", err)
	}
	if err := res.err(); err != nil {
		return fmt.Errorf("keysvc: init: %w", err)
	}
	n.log.Info("keysvc: cluster initialized", "officers", len(in.Officers), "quorum", in.Quorum, "entry", res.First)
	return nil
}

// Propose submits a proposal (its canonical bytes) by officer, the
// identity the caller authenticated; sig, if not empty, is officer's
// signature over the proposal's digest and counts as their approval (an
// approval decided like any other, in the same command). Leader only.
// A refused proposal or approval is logged and returned as a
// *CeremonyRefusal; otherwise the ceremony's record is returned, which may
// already be executed (or refused at execution) when the proposer's
// approval reached the quorum. When the proposal is accepted but its
// signature is refused (bad_signature), the proposal stays recorded,
// pending, and the error is that refusal.
func (n *Node) Propose(ctx context.Context, proposal []byte, officer string, sig []byte, actor ledger.Actor) (Ceremony, error) {
	p, perr := ceremony.ParseProposal(proposal)
	return n.ceremonyCommand(ctx, &command{Type: ledger.TypePropose, Proposal: string(proposal), Officer: officer, Signature: sig}, actor,
		func() string {
			if perr != nil {
				return ""
			}
			return p.ID
		}())
}

// Approve submits officer's approval (signature over the digest) of
// proposal id. Leader only. Errors as Propose's. When the approval makes
// the proposal ready it executes in the same command; for node.add and
// node.remove the leader then changes the raft configuration, and an error
// then says the registration is done but the raft step failed.
func (n *Node) Approve(ctx context.Context, id, officer string, sig []byte, actor ledger.Actor) (Ceremony, error) {
	if !isProposalID(id) {
		return Ceremony{}, &CeremonyRefusal{Code: errcode.UnknownProposal, Reason: fmt.Sprintf("%q is not a proposal id (32 lowercase hex digits)", id)}
	}
	return n.ceremonyCommand(ctx, &command{Type: ledger.TypeApprove, ProposalID: id, Officer: officer, Signature: sig}, actor, id)
}

func (n *Node) ceremonyCommand(ctx context.Context, cmd *command, actor ledger.Actor, id string) (Ceremony, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.leaderOnly(); err != nil {
		return Ceremony{}, err
	}
	if actor.Identity == "" {
		return Ceremony{}, fmt.Errorf("keysvc: %s: actor identity is required", cmd.Type)
	}
	if ok, err := n.Initialized(); err != nil {
		return Ceremony{}, err
	} else if !ok {
		return Ceremony{}, ErrNotInitialized
	}
	// Refusals that need no raft round cost none (screen.go).
	if ref, e, err := n.screen(cmd); err != nil {
		return Ceremony{}, err
	} else if ref != nil {
		return Ceremony{}, n.refuseScreened(ctx, ref, e, actor)
	}
	var d *dealt
	if cmd.Type == ledger.TypeApprove {
		// One approval at a time deals and commits: two dealings of one
		// version would replace each other's sealing keys on the nodes.
		n.dealMu.Lock()
		defer n.dealMu.Unlock()
		d = n.prepareApproval(ctx, cmd)
	}
	cmd.Time, cmd.ServedBy, cmd.Actor = formatTime(n.cfg.Now()), n.cfg.NodeID, toActorJSON(actor)
	res, err := n.propose(ctx, cmd)
	if err == nil && cmd.Type == ledger.TypeApprove {
		defer n.afterApproval(d, id)
	}
	if err != nil {
		return Ceremony{}, fmt.Errorf("keysvc: %s: %w", cmd.Type, err)
	}
	if res.Outcome != string(ledger.OutcomeOK) {
		return Ceremony{}, &CeremonyRefusal{Code: res.Code, Reason: res.Reason, Entry: res.First}
	}
	c, found, err := n.Ceremony(id)
	if err != nil {
		return Ceremony{}, err
	}
	if !found {
		return Ceremony{}, fmt.Errorf("keysvc: %s: ceremony %q not found after commit", cmd.Type, id)
	}
	if c.Status == StatusExecuted && res.Op != "" {
		if err := n.followUp(ctx, c, res.Op); err != nil {
			return c, err
		}
	}
	return c, nil
}

// afterApproval, once an approval committed, destroys the sealing keys
// dealt for it (d, if any) unless it executed the proposal, and forgets the
// proposal's escrow shares once it is closed. When the outcome is unknown
// (no quorum) nothing is discarded: the approval may still commit, and an
// orphan key is replaced when the version is next dealt.
func (n *Node) afterApproval(d *dealt, id string) {
	c, found, err := n.Ceremony(id)
	if err != nil {
		n.log.Warn("keysvc: after approval", "proposal", id, "err", err)
		return
	}
	if d != nil && (!found || c.Status != StatusExecuted) {
		n.discard(d)
	}
	if !found || c.Status != StatusPending {
		n.escrow.drop(id)
	}
}

// followUp makes the raft configuration follow an executed node ceremony.
func (n *Node) followUp(ctx context.Context, c Ceremony, op string) error {
	p, err := ceremony.ParseProposal([]byte(c.Proposal))
	if err != nil {
		return err
	}
	switch ps := p.Params.(type) {
	case ceremony.NodeAdd:
		if err := n.raft.AddVoter(ctx, ps.ID, ps.RaftAddr); err != nil {
			return fmt.Errorf("keysvc: ceremony %s: node %q registered (entry %d), but not yet a voter: %w", c.ID, ps.ID, c.Closed, n.mapRaftErr("add voter", err))
		}
	case ceremony.NodeRemove:
		if err := n.raft.RemoveServer(ctx, ps.ID); err != nil {
			return fmt.Errorf("keysvc: ceremony %s: node %q marked removed (entry %d), but still in the raft configuration: %w", c.ID, ps.ID, c.Closed, n.mapRaftErr("remove server", err))
		}
	}
	return nil
}

// Initialized reports whether cluster.init has been applied on this node.
func (n *Node) Initialized() (ok bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		ok = initialized(tx)
		return nil
	})
	return ok, err
}

// Ceremony returns the record of proposal id as this node has applied it.
func (n *Node) Ceremony(id string) (c Ceremony, found bool, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		c, found, err = getCeremony(tx, id)
		return err
	})
	return c, found, err
}

// Ceremonies returns every recorded proposal, in id order. A pending one
// may be past its expiry or superseded: it is closed by the next approval
// attempt, and the CLI says so from its times and the state version.
func (n *Node) Ceremonies() ([]Ceremony, error) {
	var out []Ceremony
	err := n.state.view(func(tx *bbolt.Tx) error {
		return forRecords(tx, bucketCeremonies, "ceremony", func(c Ceremony) error {
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// Officers returns every officer ever recorded (removed ones inactive), in id order.
func (n *Node) Officers() ([]Officer, error) {
	var out []Officer
	err := n.state.view(func(tx *bbolt.Tx) error {
		return forOfficers(tx, func(o Officer) error {
			out = append(out, o)
			return nil
		})
	})
	return out, err
}
