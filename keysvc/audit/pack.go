// The evidence pack format, custos-evidence/1: its records and their one
// canonical encoding.

package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"golang.org/x/mod/sumdb/tlog"
)

// Format is the value of the header's "format" field.
const Format = "custos-evidence/1"

// MaxLineSize bounds one record (line) of a pack, newline included. The
// reader's memory is this much plus the records held before the entries.
const MaxLineSize = 1 << 20

// maxProofHashes bounds the hashes of a frontier or consistency proof.
const maxProofHashes = 64

// timeLayout is how a pack writes times: UTC, nanoseconds, like the log.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Record types, the "t" field of each line.
const (
	TypeHeader      = "header"
	TypeNodeKeys    = "node_keys"
	TypeOfficer     = "officer"
	TypeCeremony    = "ceremony"
	TypeCertificate = "certificate"
	TypeFrontier    = "frontier"
	TypeEntry       = "entry"
	TypeCheckpoint  = "checkpoint"
	TypeConsistency = "consistency"
)

// rank is the position of each record type in a pack; records come in
// non-decreasing rank.
var rank = map[string]int{
	TypeHeader: 0, TypeNodeKeys: 1, TypeOfficer: 2, TypeCeremony: 3, TypeCertificate: 4,
	TypeFrontier: 5, TypeEntry: 6, TypeCheckpoint: 7, TypeConsistency: 8,
}

// Record is one line of a pack: *Header, *NodeKeys, *Officer, *Ceremony,
// *Certificate, *Frontier, *EntryRecord, *CheckpointRecord or *Consistency.
type Record interface {
	// Type returns the record's "t".
	Type() string
}

// Header opens a pack: the cluster, and the range [From, To) of entries
// the pack holds.
type Header struct {
	Format  string    // Format; NewWriter fills it in when empty
	Cluster string    // cluster id
	Origin  string    // the log's origin, "custos/<cluster>"
	From    uint64    // first entry in the pack
	To      uint64    // one past the last entry: the size of the pack's checkpoint
	Created time.Time // when the pack was made (informative); NewWriter uses the clock when zero
}

// NodeKeys holds checkpoint verifier key lines (ledger.NodeKey.MarshalText)
// of one or more nodes, each node's lines exactly as it registered them.
type NodeKeys struct {
	Text string
}

// Officer is an officer's public key bundle (officer.PublicKey canonical
// encoding) and its fingerprint, "sha256:" and the hex SHA-256 of Bundle.
type Officer struct {
	ID          string
	Bundle      string
	Fingerprint string
}

// Approval is one accepted approval of a ceremony: the officer, their
// hybrid signature over the proposal digest (canonical JSON of
// officer.Signature), and the log index of its ceremony.approve entry.
type Approval struct {
	Officer   string
	Signature string
	Entry     uint64
}

// Ceremony is a ceremony's transcript: the canonical proposal bytes,
// the accepted approvals in order, its status (pending, executed,
// refused) and the log indexes of its propose and closing entries.
type Ceremony struct {
	ID        string
	Proposal  string
	Approvals []Approval
	Status    string
	Proposed  uint64
	Closed    uint64 // 0 while pending
}

// CeremonyFromClient converts a ceremony record as the API serves it.
func CeremonyFromClient(c client.Ceremony) Ceremony {
	out := Ceremony{ID: c.ID, Proposal: c.Proposal, Status: c.Status, Proposed: c.Proposed, Closed: c.Closed,
		Approvals: make([]Approval, len(c.Approvals))}
	for i, a := range c.Approvals {
		out.Approvals[i] = Approval{Officer: a.Officer, Signature: a.Signature, Entry: a.Entry}
	}
	return out
}

// Certificate is a destruction certificate as the API serves it.
type Certificate struct {
	client.DestructionCertificate
}

// Frontier is the hashes of the maximal complete subtrees covering entries
// [0, Size), left to right: what a pack that starts at Size > 0 needs to
// recompute roots (see [Tree]).
type Frontier struct {
	Size   uint64
	Hashes []tlog.Hash
}

// EntryRecord is one log entry: its index and canonical bytes.
type EntryRecord struct {
	Index     uint64
	Canonical []byte
}

// CheckpointRecord is the signed checkpoint (signed note) of the tree of
// the header's To entries.
type CheckpointRecord struct {
	Note []byte
}

// Consistency is a consistency proof between the tree of Old entries and
// the tree of New entries: between the auditor's pinned checkpoint and the
// pack's, whichever is smaller first.
type Consistency struct {
	Old    uint64
	New    uint64
	Hashes []tlog.Hash
}

func (*Header) Type() string           { return TypeHeader }
func (*NodeKeys) Type() string         { return TypeNodeKeys }
func (*Officer) Type() string          { return TypeOfficer }
func (*Ceremony) Type() string         { return TypeCeremony }
func (*Certificate) Type() string      { return TypeCertificate }
func (*Frontier) Type() string         { return TypeFrontier }
func (*EntryRecord) Type() string      { return TypeEntry }
func (*CheckpointRecord) Type() string { return TypeCheckpoint }
func (*Consistency) Type() string      { return TypeConsistency }

// Wire forms: the JSON object of each record, fields in this order.

type headerJSON struct {
	T       string `json:"t"`
	Format  string `json:"format"`
	Cluster string `json:"cluster"`
	Origin  string `json:"origin"`
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Created string `json:"created"`
}

type nodeKeysJSON struct {
	T    string `json:"t"`
	Text string `json:"text"`
}

type officerJSON struct {
	T           string `json:"t"`
	ID          string `json:"id"`
	Bundle      string `json:"bundle"`
	Fingerprint string `json:"fingerprint"`
}

type approvalJSON struct {
	Officer   string `json:"officer"`
	Signature string `json:"signature"`
	Entry     uint64 `json:"entry"`
}

type ceremonyJSON struct {
	T         string         `json:"t"`
	ID        string         `json:"id"`
	Proposal  string         `json:"proposal"`
	Approvals []approvalJSON `json:"approvals"`
	Status    string         `json:"status"`
	Proposed  uint64         `json:"proposed"`
	Closed    uint64         `json:"closed"`
}

type certificateJSON struct {
	T string `json:"t"`
	client.DestructionCertificate
}

type frontierJSON struct {
	T      string      `json:"t"`
	Size   uint64      `json:"size"`
	Hashes []tlog.Hash `json:"hashes"`
}

type checkpointJSON struct {
	T    string `json:"t"`
	Note string `json:"note"`
}

type consistencyJSON struct {
	T      string      `json:"t"`
	Old    uint64      `json:"old"`
	New    uint64      `json:"new"`
	Hashes []tlog.Hash `json:"hashes"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// wire returns the wire form of a record other than an entry.
func wire(r Record) any {
	switch r := r.(type) {
	case *Header:
		return headerJSON{T: TypeHeader, Format: r.Format, Cluster: r.Cluster, Origin: r.Origin, From: r.From, To: r.To,
			Created: r.Created.UTC().Format(timeLayout)}
	case *NodeKeys:
		return nodeKeysJSON{T: TypeNodeKeys, Text: r.Text}
	case *Officer:
		return officerJSON{T: TypeOfficer, ID: r.ID, Bundle: r.Bundle, Fingerprint: r.Fingerprint}
	case *Ceremony:
		as := make([]approvalJSON, len(r.Approvals))
		for i, a := range r.Approvals {
			as[i] = approvalJSON(a)
		}
		return ceremonyJSON{T: TypeCeremony, ID: r.ID, Proposal: r.Proposal, Approvals: as, Status: r.Status,
			Proposed: r.Proposed, Closed: r.Closed}
	case *Certificate:
		return certificateJSON{T: TypeCertificate, DestructionCertificate: r.DestructionCertificate}
	case *Frontier:
		return frontierJSON{T: TypeFrontier, Size: r.Size, Hashes: nonNil(r.Hashes)}
	case *CheckpointRecord:
		return checkpointJSON{T: TypeCheckpoint, Note: string(r.Note)}
	case *Consistency:
		return consistencyJSON{T: TypeConsistency, Old: r.Old, New: r.New, Hashes: nonNil(r.Hashes)}
	}
	panic(fmt.Sprintf("audit: no wire form for %T", r))
}

// encodeRecord returns the canonical line of r (newline included): its wire
// form as encoding/json writes it, without HTML escaping. An entry has a
// hand-written encoding (appendEntryLine).
func encodeRecord(r Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wire(r)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeRecord decodes a canonical line (newline included) of type typ:
// strict JSON (no unknown fields, nothing after the object) that encodes
// back to the same bytes.
func decodeRecord(typ string, line []byte) (Record, error) {
	var v any
	switch typ {
	case TypeHeader:
		v = new(headerJSON)
	case TypeNodeKeys:
		v = new(nodeKeysJSON)
	case TypeOfficer:
		v = new(officerJSON)
	case TypeCeremony:
		v = new(ceremonyJSON)
	case TypeCertificate:
		v = new(certificateJSON)
	case TypeFrontier:
		v = new(frontierJSON)
	case TypeCheckpoint:
		v = new(checkpointJSON)
	case TypeConsistency:
		v = new(consistencyJSON)
	default:
		return nil, fmt.Errorf("unknown record type %q", typ)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%s record: %v", typ, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s record: data after the object", typ)
	}
	var rec Record
	switch j := v.(type) {
	case *headerJSON:
		t, err := time.Parse(timeLayout, j.Created)
		if err != nil {
			return nil, fmt.Errorf("header: created %q is not UTC RFC 3339 with 9 fractional digits", j.Created)
		}
		rec = &Header{Format: j.Format, Cluster: j.Cluster, Origin: j.Origin, From: j.From, To: j.To, Created: t}
	case *nodeKeysJSON:
		rec = &NodeKeys{Text: j.Text}
	case *officerJSON:
		rec = &Officer{ID: j.ID, Bundle: j.Bundle, Fingerprint: j.Fingerprint}
	case *ceremonyJSON:
		c := &Ceremony{ID: j.ID, Proposal: j.Proposal, Status: j.Status, Proposed: j.Proposed, Closed: j.Closed,
			Approvals: make([]Approval, len(j.Approvals))}
		for i, a := range j.Approvals {
			c.Approvals[i] = Approval(a)
		}
		rec = c
	case *certificateJSON:
		rec = &Certificate{DestructionCertificate: j.DestructionCertificate}
	case *frontierJSON:
		rec = &Frontier{Size: j.Size, Hashes: j.Hashes}
	case *checkpointJSON:
		rec = &CheckpointRecord{Note: []byte(j.Note)}
	case *consistencyJSON:
		rec = &Consistency{Old: j.Old, New: j.New, Hashes: j.Hashes}
	}
	again, err := encodeRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("%s record: %v", typ, err)
	}
	if !bytes.Equal(again, line) {
		return nil, fmt.Errorf("%s record is not in canonical form", typ)
	}
	return rec, nil
}
