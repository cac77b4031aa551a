// Log entries and their canonical JSON encoding: the bytes that are hashed
// into the tree, so one Entry has exactly one encoding.

package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits on entries. They keep a hostile or buggy entry from growing the log
// or an auditor's memory without bound.
const (
	MaxEntrySize = 64 << 10 // canonical bytes of one entry
	MaxFieldLen  = 1024     // bytes of any one string field or detail value
	MaxDetails   = 64       // entries in Details
)

const (
	maxTypeLen   = 64
	maxDetailKey = 64
	timeLayout   = "2006-01-02T15:04:05.000000000Z"
	maxTreeSize  = math.MaxInt64 // tlog counts records with int64
)

// Outcome is how a logged request ended.
type Outcome string

// The outcomes an entry may record. A denied or failed request is logged
// like a successful one.
const (
	OutcomeOK     Outcome = "ok"
	OutcomeDenied Outcome = "denied"
	OutcomeError  Outcome = "error"
)

// Actor is who asked for the logged operation.
type Actor struct {
	Identity        string // required: client certificate subject, officer id, or node id for node-initiated events
	Role            string // e.g. "agent", "officer", "auditor", "node"
	Region          string // e.g. "de"
	CertFingerprint string // e.g. "sha256:<hex>" of the client certificate
}

// Entry is one key-operation log record. It never holds secrets: key
// material, shares, plaintexts and tokens stay out; Details holds hashes and
// identifiers only.
//
// Entry has no JSON tags on purpose: [Entry.Marshal] is the only encoder and
// [ParseEntry] the only decoder. encoding/json on an Entry does not produce
// the canonical form.
type Entry struct {
	Index      uint64    // position in the log, assigned at append
	Time       time.Time // assigned by the leader; encoded in UTC
	Type       string    // operation, e.g. "kek.unwrap": [a-z][a-z0-9._-]{0,63}
	Actor      Actor
	Node       string // id of the node that served the request
	KEKID      string
	KEKVersion uint32 // 0 means none; versions start at 1
	RequestID  string
	Outcome    Outcome
	Reason     string            // why it was denied or failed; may be set for ok
	Details    map[string]string // keys [a-z0-9._-]{1,64}; hashes and ids, never secrets
}

// ParseError reports bytes that are not the canonical encoding of an entry,
// a checkpoint, a proof or a verifier key. What names which.
type ParseError struct {
	What string // "entry", "checkpoint", "inclusion proof", "consistency proof", "verifier key"
	Msg  string
}

func (e *ParseError) Error() string { return "ledger: malformed " + e.What + ": " + e.Msg }

func parseErr(what, format string, args ...any) *ParseError {
	return &ParseError{What: what, Msg: fmt.Sprintf(format, args...)}
}

// Marshal returns the canonical encoding of e, the bytes that are logged and
// hashed (leaf hash = tlog.RecordHash of them). It is deterministic: equal
// entries give equal bytes, and e.Time is converted to UTC. It returns a
// *ParseError (What "entry") if e breaks a rule in the package doc.
func (e Entry) Marshal() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"actor":{"identity":`...)
	b = appendString(b, e.Actor.Identity)
	b = appendOpt(b, "role", e.Actor.Role)
	b = appendOpt(b, "region", e.Actor.Region)
	b = appendOpt(b, "cert_fingerprint", e.Actor.CertFingerprint)
	b = append(b, '}')
	b = appendOpt(b, "node", e.Node)
	b = appendOpt(b, "kek_id", e.KEKID)
	if e.KEKVersion != 0 {
		b = append(b, `,"kek_version":`...)
		b = strconv.AppendUint(b, uint64(e.KEKVersion), 10)
	}
	b = appendOpt(b, "request_id", e.RequestID)
	b = append(b, `,"outcome":`...)
	b = appendString(b, string(e.Outcome))
	b = appendOpt(b, "reason", e.Reason)
	if len(e.Details) > 0 {
		b = append(b, `,"details":{`...)
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Details[k])
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	if len(b) > MaxEntrySize {
		return nil, parseErr("entry", "encoding is %d bytes, over the %d-byte limit", len(b), MaxEntrySize)
	}
	return b, nil
}

func (e *Entry) check() error {
	bad := func(format string, args ...any) error { return parseErr("entry", format, args...) }
	if e.Index > maxTreeSize-1 {
		return bad("index %d out of range", e.Index)
	}
	if e.Time.IsZero() {
		return bad("time is required")
	}
	if y := e.Time.UTC().Year(); y < 0 || y > 9999 {
		return bad("time year %d outside 0000-9999", y)
	}
	if !validToken(e.Type, maxTypeLen, true) {
		return bad("type %q is not [a-z][a-z0-9._-]{0,63}", e.Type)
	}
	if e.Actor.Identity == "" {
		return bad("actor identity is required")
	}
	switch e.Outcome {
	case OutcomeOK, OutcomeDenied, OutcomeError:
	default:
		return bad("outcome %q is not ok, denied or error", e.Outcome)
	}
	if e.KEKVersion != 0 && e.KEKID == "" {
		return bad("kek_version without kek_id")
	}
	for _, f := range [...]struct{ name, v string }{
		{"actor identity", e.Actor.Identity}, {"actor role", e.Actor.Role},
		{"actor region", e.Actor.Region}, {"actor cert_fingerprint", e.Actor.CertFingerprint},
		{"node", e.Node}, {"kek_id", e.KEKID}, {"request_id", e.RequestID}, {"reason", e.Reason},
	} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	if len(e.Details) > MaxDetails {
		return bad("%d details, over the limit of %d", len(e.Details), MaxDetails)
	}
	for k, v := range e.Details {
		if !validToken(k, maxDetailKey, false) {
			return bad("detail key %q is not [a-z0-9._-]{1,64}", k)
		}
		if err := checkText("detail "+k, v); err != nil {
			return err
		}
	}
	return nil
}

func checkText(name, v string) error {
	if len(v) > MaxFieldLen {
		return parseErr("entry", "%s is %d bytes, over the limit of %d", name, len(v), MaxFieldLen)
	}
	if !utf8.ValidString(v) {
		return parseErr("entry", "%s is not valid UTF-8", name)
	}
	return nil
}

// validToken reports whether s is 1..max bytes of [a-z0-9._-], starting
// with a letter if letterFirst.
func validToken(s string, max int, letterFirst bool) bool {
	if s == "" || len(s) > max {
		return false
	}
	if letterFirst && (s[0] < 'a' || s[0] > 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func appendOpt(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a canonical JSON string: '"' and '\' escaped
// with a backslash, newline, carriage return and tab as \n \r \t, other
// bytes below 0x20 as \u00xx (lowercase hex), everything else as raw UTF-8.
// s must be valid UTF-8 (checked by the caller).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// entryJSON and actorJSON mirror Entry for decoding only.
type entryJSON struct {
	Index      uint64            `json:"index"`
	Time       string            `json:"time"`
	Type       string            `json:"type"`
	Actor      actorJSON         `json:"actor"`
	Node       string            `json:"node"`
	KEKID      string            `json:"kek_id"`
	KEKVersion uint32            `json:"kek_version"`
	RequestID  string            `json:"request_id"`
	Outcome    string            `json:"outcome"`
	Reason     string            `json:"reason"`
	Details    map[string]string `json:"details"`
}

type actorJSON struct {
	Identity        string `json:"identity"`
	Role            string `json:"role"`
	Region          string `json:"region"`
	CertFingerprint string `json:"cert_fingerprint"`
}

// ParseEntry decodes canonical entry bytes. It is strict: unknown fields,
// duplicate or reordered keys, whitespace, other escapes or number forms,
// a non-UTC or differently formatted time, and anything after the object are
// all rejected, because it accepts data only if [Entry.Marshal] of the
// result gives data back byte for byte. Errors are *ParseError.
func ParseEntry(data []byte) (Entry, error) {
	if len(data) > MaxEntrySize {
		return Entry{}, parseErr("entry", "%d bytes, over the %d-byte limit", len(data), MaxEntrySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j entryJSON
	if err := dec.Decode(&j); err != nil {
		return Entry{}, parseErr("entry", "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Entry{}, parseErr("entry", "data after the object")
	}
	t, err := time.Parse(timeLayout, j.Time)
	if err != nil {
		return Entry{}, parseErr("entry", "time %q is not UTC RFC 3339 with 9 fractional digits", j.Time)
	}
	e := Entry{
		Index: j.Index, Time: t, Type: j.Type,
		Actor: Actor{Identity: j.Actor.Identity, Role: j.Actor.Role, Region: j.Actor.Region,
			CertFingerprint: j.Actor.CertFingerprint},
		Node: j.Node, KEKID: j.KEKID, KEKVersion: j.KEKVersion, RequestID: j.RequestID,
		Outcome: Outcome(j.Outcome), Reason: j.Reason, Details: j.Details,
	}
	again, err := e.Marshal()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, data) {
		return Entry{}, parseErr("entry", "not in canonical form")
	}
	return e, nil
}
