// Share releases: every kek.release must answer a kek.activate logged
// before it, and that activation must carry the client's own signed request
// (docs/design.md, "Share release"). Verify, the custody report and watch all
// follow the log's releases with one ShareReleases.

package audit

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// Finding codes: stable names of what is wrong with an activation or a
// share release. A Failure carries one in Code; watch prints it.
const (
	// A kek.release (ok) names no activation ("activation" missing, not a
	// decimal, or not an earlier entry), in a log that records activations.
	CodeReleaseNoActivation = "release_without_activation"
	// The entry a release names is not an ok kek.activate with a signed
	// request (or no longer one a peer may answer: see ReleaseWindow).
	CodeReleaseNotActivation = "release_activation_not_found"
	// The release and its activation disagree: KEK id, version, request
	// id, the requesting node ("to") or the client ("for").
	CodeReleaseMismatch = "release_activation_mismatch"
	// A node released a share to its own activation.
	CodeReleaseToSelf = "release_to_self"
	// One node released twice for one activation.
	CodeReleaseDuplicate = "release_duplicate"
	// An activation's signed request is missing, malformed, or its
	// signature does not verify with the certificate's key.
	CodeActivationRequestInvalid = "activation_request_invalid"
	// The signed request is not for this activation: cluster, operation,
	// KEK, version, request id, or a time too far from the entry's.
	CodeActivationRequestMismatch = "activation_request_mismatch"
	// The certificate that signed the request is not the actor's: its
	// identity or fingerprint differ, it is a node's or another cluster's,
	// or it was not valid at the request's time.
	CodeActivationClientMismatch = "activation_client_mismatch"
	// A second activation with the request id of one still in the window.
	CodeActivationReplayed = "activation_request_replayed"
)

// ReleaseWindow is how long after an activation (in log time) a release
// for it is accepted. Peers refuse a signed request more than
// reqsig.MaxSkew from their clock, and the serving node one more than
// MaxSkew from its own: a release more than twice that after its
// activation, with as much again for clocks between nodes, is one an
// honest peer does not make. It also bounds what is held in memory.
const ReleaseWindow = 3 * reqsig.MaxSkew

// maxLooked bounds the entries Earlier remembers.
const maxLooked = 1 << 16

// Operations a client request may activate a KEK for.
var activatingOps = []string{reqsig.OpUnwrap, reqsig.OpRewrap, reqsig.OpUnwrapBatch}

// ReleaseFinding is one thing wrong with an activation or a release.
type ReleaseFinding struct {
	Code  string // one of the Code constants
	Index uint64 // the entry concerned
	Msg   string // a sentence an auditor can act on, starting "entry N: "
}

func (f *ReleaseFinding) Error() string { return f.Code + ": " + f.Msg }

// ReleaseCounts is what ShareReleases saw.
type ReleaseCounts struct {
	Activations uint64 `json:"activations"` // ok kek.activate entries with a verified signed request
	Releases    uint64 `json:"releases"`    // ok kek.release entries matched to their activation
	Denied      uint64 `json:"denied"`      // kek.release entries with another outcome (a peer's refusal)
	// Unbound: ok releases (and activations) of the earlier format, with no
	// activation to bind them to a client's signed request, before the
	// log's first entry of the current format.
	Unbound uint64 `json:"unbound"`
	// BeforeStart: ok releases whose activation comes before the entries
	// followed (before the pack): their binding was not checked.
	BeforeStart uint64 `json:"before_start"`
}

type activation struct {
	time     time.Time
	kek      string
	version  uint32
	request  string
	node     string            // the serving (requesting) node
	client   string            // the client's identity URI
	id       identity.Identity // the client, as its certificate says (verified)
	released []string          // nodes that released a share for it
}

// ShareReleases checks a log's activations and share releases, entry by
// entry in log order. It holds the activations of the last ReleaseWindow
// of log time only, so its memory does not grow with the log. Not safe
// for concurrent use.
type ShareReleases struct {
	cluster string
	acts    map[uint64]*activation
	queue   []uint64          // held activations, by index
	byReq   map[string]uint64 // request id → activation index, for held ones
	dropped uint64            // activations below this index were dropped (out of the window)
	looked  map[uint64]bool   // entries before start given to Earlier
	start   uint64            // the first entry followed
	started bool
	bound   bool // an entry of the current format was seen: releases must name an activation
	counts  ReleaseCounts
}

// NewShareReleases follows the share releases of cluster's log. bound says
// that the log already recorded activations with signed requests before
// the first entry it will see (State.ReleasesBound).
func NewShareReleases(cluster string, bound bool) *ShareReleases {
	return &ShareReleases{cluster: cluster, acts: map[uint64]*activation{}, byReq: map[string]uint64{}, looked: map[uint64]bool{}, bound: bound}
}

// Counts returns what was seen so far.
func (s *ShareReleases) Counts() ReleaseCounts { return s.counts }

// Bound reports whether the log records activations with signed requests
// by now: from then on, a release without one is a finding.
func (s *ShareReleases) Bound() bool { return s.bound }

// verified returns the client of the activation at entry i when it is
// held: an ok kek.activate whose signed request verified, of the last
// ReleaseWindow of log time.
func (s *ShareReleases) verified(i uint64) (identity.Identity, bool) {
	a := s.acts[i]
	if a == nil {
		return identity.Identity{}, false
	}
	return a.id, true
}

// Needs returns the activation index e names when e is an ok release whose
// activation comes before the first entry followed and is not held: a
// caller that can fetch that entry (and prove it is in the log) passes it
// to Earlier before e.
func (s *ShareReleases) Needs(e ledger.Entry) (uint64, bool) {
	if e.Type != ledger.TypeRelease || e.Outcome != ledger.OutcomeOK {
		return 0, false
	}
	a, err := strconv.ParseUint(e.Details["activation"], 10, 64)
	if err != nil || (s.started && a >= s.start) || s.acts[a] != nil || s.looked[a] {
		return 0, false
	}
	if !s.started && a >= e.Index {
		return 0, false
	}
	return a, true
}

// Earlier takes the entry a release named as its activation (Needs), from
// before the entries followed, which the caller proved is in the log; it
// checks an activation as Entry would. A release naming an entry given to
// Earlier is then checked against it like any other.
func (s *ShareReleases) Earlier(e ledger.Entry) *ReleaseFinding {
	if len(s.looked) < maxLooked {
		s.looked[e.Index] = true
	}
	if e.Type != ledger.TypeActivate || e.Outcome != ledger.OutcomeOK {
		return nil
	}
	return s.activate(e)
}

// Entry follows entry e, the next in log order, and returns what is wrong
// with it, if anything (nil for entries other than activations and
// releases).
func (s *ShareReleases) Entry(e ledger.Entry) *ReleaseFinding {
	if !s.started {
		s.start, s.started = e.Index, true
	}
	s.expire(e.Time)
	switch e.Type {
	case ledger.TypeActivate:
		if e.Outcome != ledger.OutcomeOK {
			return nil
		}
		return s.activate(e)
	case ledger.TypeRelease:
		return s.release(e)
	}
	return nil
}

// expire drops the activations older than ReleaseWindow at time now.
func (s *ShareReleases) expire(now time.Time) {
	k := 0
	for ; k < len(s.queue); k++ {
		i := s.queue[k]
		a := s.acts[i]
		if now.Sub(a.time) <= ReleaseWindow {
			break
		}
		delete(s.acts, i)
		if s.byReq[a.request] == i {
			delete(s.byReq, a.request)
		}
		s.dropped = max(s.dropped, i+1)
	}
	if k > 0 {
		s.queue = slices.Delete(s.queue, 0, k)
	}
}

func finding(code string, i uint64, format string, args ...any) *ReleaseFinding {
	return &ReleaseFinding{Code: code, Index: i, Msg: fmt.Sprintf("entry %d: ", i) + fmt.Sprintf(format, args...)}
}

// activate checks an ok kek.activate and holds it for its releases.
func (s *ShareReleases) activate(e ledger.Entry) *ReleaseFinding {
	i, d := e.Index, e.Details
	if d[reqsig.DetailRequest] == "" && d[reqsig.DetailSignature] == "" && d[reqsig.DetailCert] == "" {
		if !s.bound {
			s.counts.Unbound++ // the earlier format: logged after the releases, by the node
			return nil
		}
		return finding(CodeActivationRequestInvalid, i, "kek.activate of kek %s v%d carries no signed request, although the log records signed requests since an earlier entry: a node logged an activation no client request backs (or ran a previous version); find who served it (node %s) and why", e.KEKID, e.KEKVersion, e.Node)
	}
	s.bound = true
	invalid := func(format string, args ...any) *ReleaseFinding {
		return finding(CodeActivationRequestInvalid, i, "the signed request of this kek.activate (kek %s v%d, node %s) %s: no client can be shown to have asked for it; treat the activation as unauthorised", e.KEKID, e.KEKVersion, e.Node, fmt.Sprintf(format, args...))
	}
	signed, err := reqsig.FromDetails(d)
	if err != nil {
		var re *reqsig.Error
		errors.As(err, &re)
		return invalid("is incomplete: %s", re.Reason)
	}
	msg, sig, der := signed.Message, signed.Signature, signed.Cert
	if _, err := strconv.ParseUint(d["ttl_seconds"], 10, 63); err != nil {
		return invalid("comes with ttl_seconds %q, not a decimal", d["ttl_seconds"])
	}
	req, err := reqsig.Parse(msg)
	if err != nil {
		return invalid("does not parse: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return invalid("comes with a client certificate that does not parse: %v", err)
	}
	if err := reqsig.VerifySignature(cert.PublicKey, msg, sig); err != nil {
		return invalid("does not verify with the client certificate's key (%v): the request was altered, or not signed by this client", err)
	}

	client := func(format string, args ...any) *ReleaseFinding {
		return finding(CodeActivationClientMismatch, i, "the certificate that signed the request of this kek.activate %s: the entry does not show who asked; treat the activation as unauthorised", fmt.Sprintf(format, args...))
	}
	id, err := identity.FromCertificate(cert)
	switch {
	case err != nil:
		return client("carries no valid custos identity (%v)", err)
	case id.String() != e.Actor.Identity:
		return client("is %s's, but the entry's actor is %q", id, e.Actor.Identity)
	case identity.Fingerprint(cert) != e.Actor.CertFingerprint:
		return client("has fingerprint %s, but the entry's actor names %q", identity.Fingerprint(cert), e.Actor.CertFingerprint)
	case e.Actor.Role != string(id.Role) || e.Actor.Region != id.Region:
		return client("is of role %s in region %s, but the entry's actor says role %q, region %q", id.Role, id.Region, e.Actor.Role, e.Actor.Region)
	case id.Cluster != s.cluster:
		return client("is of cluster %q, not %q", id.Cluster, s.cluster)
	case id.Role == identity.RoleNode:
		return client("is node %s's: a node cannot ask for an activation in a client's name", id.Name)
	}
	if t := time.Unix(req.Time, 0); t.Before(cert.NotBefore) || t.After(cert.NotAfter) {
		return client("was not valid at the request's time %s (valid %s to %s)", t.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}

	mismatch := func(format string, args ...any) *ReleaseFinding {
		return finding(CodeActivationRequestMismatch, i, "the client signed %s: the signed request does not ask for this activation; treat it as unauthorised", fmt.Sprintf(format, args...))
	}
	switch {
	case req.Cluster != s.cluster:
		return mismatch("for cluster %q, not %q", req.Cluster, s.cluster)
	case !slices.Contains(activatingOps, req.Op):
		return mismatch("a %s request, which activates no KEK (unwrap, rewrap or unwrap-batch do)", req.Op)
	case req.KEKID != e.KEKID:
		return mismatch("for kek %q, but the entry activates kek %q", req.KEKID, e.KEKID)
	case req.Version != 0 && req.Version != e.KEKVersion:
		return mismatch("for version %d, but the entry activates v%d", req.Version, e.KEKVersion)
	case req.RequestID != e.RequestID:
		return mismatch("request id %q, but the entry's is %q", req.RequestID, e.RequestID)
	case e.Node == "":
		return mismatch("a request, but the entry names no serving node")
	}
	if d := e.Time.Sub(time.Unix(req.Time, 0)); d > ReleaseWindow || d < -ReleaseWindow {
		return mismatch("a request at %s, %s from the entry's time: nodes refuse requests more than %s from their clock", time.Unix(req.Time, 0).UTC().Format(time.RFC3339), d.Round(time.Second), reqsig.MaxSkew)
	}
	if prev, dup := s.byReq[e.RequestID]; dup {
		return finding(CodeActivationReplayed, i, "kek.activate for request id %q, which entry %d already activated: a signed request was used twice (replayed); find who served both (nodes %s and %s)", e.RequestID, prev, s.acts[prev].node, e.Node)
	}
	a := &activation{time: e.Time, kek: e.KEKID, version: e.KEKVersion, request: e.RequestID, node: e.Node, client: e.Actor.Identity, id: id}
	s.acts[i] = a
	s.byReq[e.RequestID] = i
	if k, _ := slices.BinarySearch(s.queue, i); k == len(s.queue) {
		s.queue = append(s.queue, i)
	} else if s.queue[k] != i {
		s.queue = slices.Insert(s.queue, k, i)
	}
	s.counts.Activations++
	return nil
}

// release checks a kek.release against the activation it names.
func (s *ShareReleases) release(e ledger.Entry) *ReleaseFinding {
	i, d := e.Index, e.Details
	if e.Outcome != ledger.OutcomeOK {
		s.counts.Denied++ // a refusal: no share left
		return nil
	}
	raw, named := d["activation"]
	if !named {
		if !s.bound {
			s.counts.Unbound++
			return nil
		}
		return finding(CodeReleaseNoActivation, i, "node %s released its share of kek %s v%d to node %s (for %s) with no activation: no logged client request backs it; the requesting node may be impersonated (its TLS files stolen) or a node ran a previous version: investigate node %s and rotate kek %s", e.Node, e.KEKID, e.KEKVersion, d["to"], d["for"], d["to"], e.KEKID)
	}
	s.bound = true
	a, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || a >= i || strconv.FormatUint(a, 10) != raw {
		return finding(CodeReleaseNoActivation, i, "node %s released its share of kek %s v%d to node %s naming activation %q, which is not an earlier entry: no logged client request backs it; investigate node %s and rotate kek %s", e.Node, e.KEKID, e.KEKVersion, d["to"], raw, d["to"], e.KEKID)
	}
	if e.Node != "" && e.Node == d["to"] {
		return finding(CodeReleaseToSelf, i, "node %s released its share of kek %s v%d to itself (activation %d): a node must gather t shares from others; investigate node %s", e.Node, e.KEKID, e.KEKVersion, a, e.Node)
	}
	act := s.acts[a]
	if act == nil {
		if a < s.start && !s.looked[a] {
			s.counts.BeforeStart++ // before what was followed: its earlier check stands
			return nil
		}
		why := "is not an ok kek.activate carrying a signed request"
		if a < s.dropped {
			why = fmt.Sprintf("is not an ok kek.activate with a signed request of the last %s of the log (peers refuse requests older than %s)", ReleaseWindow, reqsig.MaxSkew)
		}
		return finding(CodeReleaseNotActivation, i, "node %s released its share of kek %s v%d to node %s naming entry %d as its activation, which %s: no logged client request backs this release; investigate node %s and rotate kek %s", e.Node, e.KEKID, e.KEKVersion, d["to"], a, why, d["to"], e.KEKID)
	}
	mismatch := func(what string, got, want any) *ReleaseFinding {
		return finding(CodeReleaseMismatch, i, "node %s's release names activation %d, but the release is %s %v and the activation %v: the share did not go where the client's request sent it; investigate node %s and rotate kek %s", e.Node, a, what, got, want, d["to"], e.KEKID)
	}
	switch {
	case e.KEKID != act.kek:
		return mismatch("of kek", e.KEKID, act.kek)
	case e.KEKVersion != act.version:
		return mismatch("of version", e.KEKVersion, act.version)
	case e.RequestID != act.request:
		return mismatch("for request id", e.RequestID, act.request)
	case d["to"] != act.node:
		return mismatch("to node", d["to"], act.node)
	case d["for"] != act.client:
		return mismatch("for", d["for"], act.client)
	case e.Node == act.node:
		return finding(CodeReleaseToSelf, i, "node %s released its share of kek %s v%d to its own activation %d: investigate node %s", e.Node, e.KEKID, e.KEKVersion, a, e.Node)
	}
	if slices.Contains(act.released, e.Node) {
		return finding(CodeReleaseDuplicate, i, "node %s released its share of kek %s v%d for activation %d a second time: peers release once per activation; investigate nodes %s and %s", e.Node, e.KEKID, e.KEKVersion, a, e.Node, act.node)
	}
	act.released = append(act.released, e.Node)
	s.counts.Releases++
	return nil
}
