// Raft commands: a versioned JSON envelope, proposed by the leader and
// applied by every node's state machine, and the result Apply returns.

package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// commandVersion is the envelope version this code writes and accepts.
const commandVersion = 1

// Command types. Unknown types are rejected (deterministically). Besides
// CmdLedgerAppend (entries: canonical entries with index 0; Apply numbers
// them), a command is named after the entry it logs:
//
//	ledger.TypeGenesis     cluster, allowed_regions, node, actor, time
//	ledger.TypeNodeAdd     node, actor, time
//	ledger.TypeNodeRemove  node_id, actor, time
//	ledger.TypeInit        init, actor, time
//	ledger.TypePropose     proposal, officer, signature (optional), actor, time
//	ledger.TypeApprove     proposal_id, officer, signature, kek or prep_error (dealt ceremonies), actor, time
//	ledger.TypeAttest      node_id, attest, actor, time: a node destroyed its sealing key
const CmdLedgerAppend = "ledger.append"

// MaxAppendBatch is the most entries one ledger.append command carries.
const MaxAppendBatch = 4096

// reservedTypes are the entry types only the state machine writes.
var reservedTypes = []string{ledger.TypeGenesis, ledger.TypeNodeAdd, ledger.TypeNodeRemove, ledger.TypeInit, ledger.TypePropose, ledger.TypeApprove, ledger.TypeExecute, ledger.TypeRefuse, ledger.TypeDestroyed}

// Reserved reports whether entries of type typ are the state machine's
// own: no append (not even a leader's) may carry one.
func Reserved(typ string) bool { return slices.Contains(reservedTypes, typ) }

// TimeFormat is how commands carry the leader's time: the entry time format.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// Command is the envelope of every raft command. Encoding: one compact JSON
// object, fields in this order, empty ones omitted, nothing HTML-escaped;
// entries come last, embedded as their exact canonical bytes. Decoding is
// strict: unknown fields, trailing data and other versions are rejected.
type Command struct {
	V              int               `json:"v"`
	Type           string            `json:"type"`
	Time           string            `json:"time,omitempty"`      // leader's clock, timeFormat
	ServedBy       string            `json:"served_by,omitempty"` // node that proposed it: the entries' "node"
	Actor          *ActorJSON        `json:"actor,omitempty"`
	Cluster        string            `json:"cluster,omitempty"`
	AllowedRegions []string          `json:"allowed_regions,omitempty"`
	Node           *NodeInfo         `json:"node,omitempty"`
	NodeID         string            `json:"node_id,omitempty"`
	Init           *InitJSON         `json:"init,omitempty"`
	Proposal       string            `json:"proposal,omitempty"` // canonical proposal bytes
	ProposalID     string            `json:"proposal_id,omitempty"`
	Officer        string            `json:"officer,omitempty"`    // the submitting officer (certificate name)
	Signature      []byte            `json:"signature,omitempty"`  // officer.Signature canonical JSON
	KEK            *KEKMaterial      `json:"kek,omitempty"`        // a dealt version, with the approval that executes it
	PrepError      string            `json:"prep_error,omitempty"` // why the leader could not deal it
	Attest         *Attestation      `json:"attest,omitempty"`
	Entries        []json.RawMessage `json:"entries,omitempty"` // last: Encode writes it by hand
}

// ActorJSON is a command's actor: the entries' ledger.Actor.
type ActorJSON struct {
	Identity        string `json:"identity"`
	Role            string `json:"role,omitempty"`
	Region          string `json:"region,omitempty"`
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
}

// ToActorJSON is a's form in a command.
func ToActorJSON(a ledger.Actor) *ActorJSON {
	return &ActorJSON{Identity: a.Identity, Role: a.Role, Region: a.Region, CertFingerprint: a.CertFingerprint}
}

func (a *ActorJSON) actor() ledger.Actor {
	if a == nil {
		return ledger.Actor{}
	}
	return ledger.Actor{Identity: a.Identity, Role: a.Role, Region: a.Region, CertFingerprint: a.CertFingerprint}
}

// Encode returns c's envelope with c.V set to commandVersion.
func Encode(c *Command) ([]byte, error) {
	c.V = commandVersion
	head := *c
	head.Entries = nil
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&head); err != nil {
		return nil, fmt.Errorf("keysvc: encode %s command: %w", c.Type, err)
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(c.Entries) == 0 {
		return out, nil
	}
	// Entries are copied, not encoded: encoding/json may rewrite a
	// json.RawMessage (since Go 1.27 it escapes U+2028 and U+2029 in one even
	// with SetEscapeHTML(false)), and any changed byte makes the entry
	// non-canonical, so the state machine would refuse the whole batch.
	out = append(out[:len(out)-1], `,"entries":[`...) // out ends with the object's '}'
	for i, raw := range c.Entries {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("keysvc: encode %s command: entry %d is not JSON", c.Type, i)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, raw...)
	}
	return append(out, "]}"...), nil
}

// Decode parses an envelope. Its errors are *CommandError.
func Decode(data []byte) (*Command, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Command
	if err := dec.Decode(&c); err != nil {
		return nil, cmdErr("", "malformed command: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, cmdErr(c.Type, "malformed command: data after the object")
	}
	if c.V != commandVersion {
		return nil, cmdErr(c.Type, "command version %d, want %d", c.V, commandVersion)
	}
	switch c.Type {
	case CmdLedgerAppend, ledger.TypeGenesis, ledger.TypeNodeAdd, ledger.TypeNodeRemove, ledger.TypeInit, ledger.TypePropose, ledger.TypeApprove, ledger.TypeAttest:
	default:
		return nil, cmdErr(c.Type, "unknown command type")
	}
	return &c, nil
}

// FormatTime is t as commands carry it (TimeFormat, UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime parses a command's time, which must be in TimeFormat exactly.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil || FormatTime(t) != s {
		return time.Time{}, fmt.Errorf("time %q is not %s", s, TimeFormat)
	}
	return t, nil
}

// Result is what Apply returns to the proposer: where the command's log
// entries went, and whether the request was carried out or denied (a denied
// request is logged and committed like any other; it is not a CommandError).
type Result struct {
	First   uint64 `json:"first"` // index of the first entry appended
	Count   uint64 `json:"count"` // entries appended
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"` // why denied: one of the denial codes
	Reason  string `json:"reason,omitempty"`
	Op      string `json:"op,omitempty"` // the operation a ceremony executed, for the leader's follow-up (raft membership)
}

// Denial codes and the errors they stand for.
var denials = map[string]error{
	errcode.RegionNotAllowed:   ErrRegionNotAllowed,
	errcode.NodeConflict:       ErrNodeConflict,
	errcode.UnknownNode:        ErrUnknownNode,
	errcode.LastNode:           ErrLastNode,
	errcode.InvalidNode:        ErrInvalidNode,
	errcode.CeremonyRequired:   ErrCeremonyRequired,
	errcode.IdentityRevoked:    ErrIdentityRevoked,
	errcode.AlreadyInitialized: ErrAlreadyInitialized,
	errcode.InvalidInit:        ErrInvalidInit,
}

// DecodeResult parses what Apply returned for a command.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("keysvc: unexpected state machine result: %w", err)
	}
	return r, nil
}

// Err returns nil for an ok result, the denial's sentinel wrapped with the
// reason otherwise.
func (r Result) Err() error {
	if r.Outcome == string(ledger.OutcomeOK) {
		return nil
	}
	sentinel := denials[r.Code]
	if sentinel == nil {
		sentinel = errors.New("keysvc: request denied")
	}
	return fmt.Errorf("%w: %s (logged as entry %d)", sentinel, r.Reason, r.First)
}
