// Proposals: the document officers sign, its canonical JSON encoding, its
// strict parser and its digest.

package ceremony

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// DomainLabel prefixes the canonical bytes of a proposal in its digest, so
// that an officer's signature over a proposal digest can mean nothing else.
const DomainLabel = "custos/v1/proposal\x00"

// Time limits of a proposal.
const (
	// MaxLifetime is the longest a proposal may stay open: Expires - Created.
	MaxLifetime = 30 * 24 * time.Hour
	// MaxClockSkew is how far in the future of the state machine's time a
	// new proposal's Created may be (the proposer's clock may run ahead).
	MaxClockSkew = 5 * time.Minute
)

// timeLayout is how proposals write times: RFC 3339, UTC, nanoseconds.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// idLen is the length of a proposal id in bytes; it is written in hex.
const idLen = 16

// Proposal is one ceremony: an operation with its parameters, which
// executes once enough officers approve it, before it expires, and only
// while the cluster's state is still the one it was made against.
//
// Its canonical encoding ([Proposal.Marshal]) is a compact JSON object with
// every field present, in this order, nothing HTML-escaped:
//
//	{"cluster":"prod","id":"<32 hex digits>","operation":"kek.rotate",
//	 "params":{"kek_id":"payroll"},"proposer":"alice",
//	 "created":"2026-03-01T10:00:00.000000000Z",
//	 "expires":"2026-03-02T10:00:00.000000000Z","state_version":41}
//
// The params object is the encoding/json form of the Params value (the
// struct tags of each parameter type; [Policy] for policies).
type Proposal struct {
	Cluster  string // cluster id: identity name rule
	ID       string // 32 lowercase hex digits, from NewID
	Params   Params // the operation and its parameters
	Proposer string // officer id of the proposer
	// Created and Expires bound the proposal's life: approvals count only
	// while the state machine's time is before Expires. Encoded in UTC with
	// nanoseconds; Expires is after Created, by at most MaxLifetime.
	Created time.Time
	Expires time.Time
	// StateVersion is the version of the cluster state the proposal was made
	// against: it executes only if the state is still at this version.
	StateVersion uint64
}

// NewID returns a fresh proposal id: 16 bytes read from rnd, in lowercase
// hex. rnd should be crypto/rand.Reader outside tests.
func NewID(rnd io.Reader) (string, error) {
	var b [idLen]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("ceremony: new proposal id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Operation returns the operation of p.Params, or "" if p.Params is not one
// of this package's parameter values.
func (p Proposal) Operation() Operation { return opOf(p.Params) }

// Validate checks every field of p, the parameters included, with no regard
// to any cluster state. It is deterministic. Errors are *RefusalError with
// code invalid_proposal or invalid_params.
func (p Proposal) Validate() error {
	bad := func(format string, args ...any) error {
		return refuse(CodeInvalidProposal, "proposal %q: %s", p.ID, fmt.Sprintf(format, args...))
	}
	if err := checkName("cluster", p.Cluster); err != nil {
		return bad("%v", err)
	}
	if err := checkID(p.ID); err != nil {
		return bad("%v", err)
	}
	if err := checkName("proposer", p.Proposer); err != nil {
		return bad("%v", err)
	}
	for _, t := range [...]struct {
		name string
		t    time.Time
	}{{"created", p.Created}, {"expires", p.Expires}} {
		if t.t.IsZero() {
			return bad("%s time is required", t.name)
		}
		if y := t.t.UTC().Year(); y < 1 || y > 9999 {
			return bad("%s year %d outside 0001-9999", t.name, y)
		}
	}
	if !p.Expires.After(p.Created) {
		return bad("expires %s is not after created %s", fmtTime(p.Expires), fmtTime(p.Created))
	}
	if life := p.Expires.Sub(p.Created); life > MaxLifetime {
		return bad("open for %v, over the limit of %v", life, MaxLifetime)
	}
	op := opOf(p.Params)
	if op == "" {
		return refuse(CodeInvalidParams, "proposal %q: parameters of type %T are not an operation's", p.ID, p.Params)
	}
	if err := p.Params.Validate(); err != nil {
		return refuse(CodeInvalidParams, "proposal %q: %s: %v", p.ID, op, err)
	}
	return nil
}

func checkID(id string) error {
	if len(id) != 2*idLen {
		return fmt.Errorf("id %q is not %d lowercase hex digits", id, 2*idLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("id %q is not %d lowercase hex digits", id, 2*idLen)
		}
	}
	return nil
}

// proposalJSON is the wire form of a proposal.
type proposalJSON struct {
	Cluster      string          `json:"cluster"`
	ID           string          `json:"id"`
	Operation    Operation       `json:"operation"`
	Params       json.RawMessage `json:"params"`
	Proposer     string          `json:"proposer"`
	Created      string          `json:"created"`
	Expires      string          `json:"expires"`
	StateVersion uint64          `json:"state_version"`
}

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// encode writes p's canonical form without validating it.
func (p Proposal) encode() []byte {
	params, err := marshal(p.Params)
	if err == nil {
		var b []byte
		b, err = marshal(proposalJSON{
			Cluster: p.Cluster, ID: p.ID, Operation: opOf(p.Params), Params: params, Proposer: p.Proposer,
			Created: fmtTime(p.Created), Expires: fmtTime(p.Expires), StateVersion: p.StateVersion,
		})
		if err == nil {
			return b
		}
	}
	// Every field is a string, an integer, a boolean or a list of strings.
	panic("ceremony: unreachable: encoding a proposal failed: " + err.Error())
}

// Marshal returns the canonical encoding of p: the bytes officers review
// and whose digest they sign. Equal proposals give equal bytes. It returns
// p.Validate's *RefusalError for an invalid proposal, and one with code
// invalid_proposal if the encoding is over MaxProposalSize.
func (p Proposal) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := p.encode()
	if len(b) > MaxProposalSize {
		return nil, refuse(CodeInvalidProposal, "proposal %q: encoding is %d bytes, over the limit of %d", p.ID, len(b), MaxProposalSize)
	}
	return b, nil
}

// Digest returns SHA-256(DomainLabel || canonical bytes of p): what
// officers sign to approve p. It does not validate p (the digest of an
// invalid proposal is well defined but no decision accepts it).
func (p Proposal) Digest() [32]byte {
	h := sha256.New()
	h.Write([]byte(DomainLabel))
	h.Write(p.encode())
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// ParseProposal decodes the canonical encoding of a valid proposal. It is
// strict: unknown, missing, repeated or reordered fields, whitespace, other
// escapes or number forms, non-UTC or differently formatted times, an
// unknown operation, data after the object and invalid proposals are all
// rejected, because it accepts data only if Marshal of the result gives the
// same bytes back. Errors are *ParseError (wrapping Validate's
// *RefusalError when the proposal is well-formed but invalid).
func ParseProposal(data []byte) (Proposal, error) {
	perr := func(format string, args ...any) error {
		return &ParseError{Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxProposalSize {
		return Proposal{}, perr("%d bytes, over the limit of %d", len(data), MaxProposalSize)
	}
	var j proposalJSON
	if err := strictDecode(data, &j); err != nil {
		return Proposal{}, perr("%v", err)
	}
	created, err := time.Parse(timeLayout, j.Created)
	if err != nil {
		return Proposal{}, perr("created %q is not UTC RFC 3339 with 9 fractional digits", j.Created)
	}
	expires, err := time.Parse(timeLayout, j.Expires)
	if err != nil {
		return Proposal{}, perr("expires %q is not UTC RFC 3339 with 9 fractional digits", j.Expires)
	}
	decode := decoders[j.Operation]
	if decode == nil {
		return Proposal{}, &ParseError{Msg: fmt.Sprintf("unknown operation %q", j.Operation),
			Err: refuse(CodeInvalidParams, "proposal %q: unknown operation %q", j.ID, j.Operation)}
	}
	params, err := decode(j.Params)
	if err != nil {
		return Proposal{}, perr("%s params: %v", j.Operation, err)
	}
	p := Proposal{Cluster: j.Cluster, ID: j.ID, Params: params, Proposer: j.Proposer,
		Created: created, Expires: expires, StateVersion: j.StateVersion}
	if !bytes.Equal(p.encode(), data) {
		return Proposal{}, perr("not in canonical form")
	}
	if err := p.Validate(); err != nil {
		re := err.(*RefusalError)
		return Proposal{}, &ParseError{Msg: string(re.Code) + ": " + re.Msg, Err: re}
	}
	return p, nil
}
