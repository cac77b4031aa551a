// A fast decoder for canonical log entries. ledger.ParseEntry (encoding/json
// and a re-encode) costs several microseconds per entry, too slow to verify
// a million entries in a few seconds; this decoder reads the fixed canonical
// layout directly. It never decides alone: an entry counts as canonical only
// if ledger's own encoder, Entry.Marshal, gives back exactly its bytes, and
// whatever this decoder does not recognise goes to ledger.ParseEntry, which
// has the last word (and the error message).

package audit

import (
	"bytes"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// parseEntry decodes canonical entry bytes with the same verdict as
// ledger.ParseEntry: an entry e with e.Marshal() == b, or ParseEntry's
// *ledger.ParseError.
func parseEntry(b []byte) (ledger.Entry, error) {
	if e, ok := decodeEntry(b); ok {
		if m, err := e.Marshal(); err == nil && bytes.Equal(m, b) {
			return e, nil
		}
	}
	return ledger.ParseEntry(b)
}

// entryScanner walks canonical entry bytes. Every method fails (returns
// false) rather than panics on anything unexpected.
type entryScanner struct {
	b []byte
	i int
}

func (s *entryScanner) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// uint reads decimal digits (at most 19, so no overflow).
func (s *entryScanner) uint() (uint64, bool) {
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.i-start < 19 && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		n = n*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	return n, s.i > start
}

// str reads a JSON string with the canonical escapes (\" \\ \n \r \t
// \u00xx); anything else fails.
func (s *entryScanner) str() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			v := string(s.b[start:s.i])
			s.i++
			return v, true
		case '\\':
			return s.escaped(start)
		}
		s.i++
	}
	return "", false
}

// escaped finishes a string that has escapes, begun at start.
func (s *entryScanner) escaped(start int) (string, bool) {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(out), true
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", false
		}
		switch s.b[s.i+1] {
		case '"', '\\':
			out = append(out, s.b[s.i+1])
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if s.i+6 > len(s.b) || s.b[s.i+2] != '0' || s.b[s.i+3] != '0' {
				return "", false
			}
			hi, ok1 := hexVal(s.b[s.i+4])
			lo, ok2 := hexVal(s.b[s.i+5])
			if !ok1 || !ok2 {
				return "", false
			}
			out = append(out, hi<<4|lo)
			s.i += 6
			continue
		default:
			return "", false
		}
		s.i += 2
	}
	return "", false
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// timeLen is the length of "2006-01-02T15:04:05.000000000Z".
const timeLen = 30

// time reads the fixed-layout UTC time. A field out of range is normalised
// by time.Date, and then Marshal no longer reproduces the bytes.
func (s *entryScanner) time() (time.Time, bool) {
	if len(s.b)-s.i < timeLen {
		return time.Time{}, false
	}
	t := s.b[s.i : s.i+timeLen]
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range t[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' || t[29] != 'Z' {
		return time.Time{}, false
	}
	var v [7]int
	for k, r := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 29}} {
		n, ok := num(r[0], r[1])
		if !ok {
			return time.Time{}, false
		}
		v[k] = n
	}
	s.i += timeLen
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6], time.UTC), true
}

// optStr reads `,"key":"value"` if it comes next.
func (s *entryScanner) optStr(key string) (string, bool) {
	if !s.lit(key) {
		return "", true
	}
	return s.str()
}

// decodeEntry decodes b if it has the canonical layout. ok false means
// "ask ledger.ParseEntry"; ok true still needs the Marshal comparison.
func decodeEntry(b []byte) (e ledger.Entry, ok bool) {
	s := &entryScanner{b: b}
	if !s.lit(`{"index":`) {
		return e, false
	}
	if e.Index, ok = s.uint(); !ok {
		return e, false
	}
	if !s.lit(`,"time":"`) {
		return e, false
	}
	if e.Time, ok = s.time(); !ok {
		return e, false
	}
	if !s.lit(`","type":`) {
		return e, false
	}
	if e.Type, ok = s.str(); !ok {
		return e, false
	}
	if !s.lit(`,"actor":{"identity":`) {
		return e, false
	}
	if e.Actor.Identity, ok = s.str(); !ok {
		return e, false
	}
	if e.Actor.Role, ok = s.optStr(`,"role":`); !ok {
		return e, false
	}
	if e.Actor.Region, ok = s.optStr(`,"region":`); !ok {
		return e, false
	}
	if e.Actor.CertFingerprint, ok = s.optStr(`,"cert_fingerprint":`); !ok {
		return e, false
	}
	if !s.lit(`}`) {
		return e, false
	}
	if e.Node, ok = s.optStr(`,"node":`); !ok {
		return e, false
	}
	if e.KEKID, ok = s.optStr(`,"kek_id":`); !ok {
		return e, false
	}
	if s.lit(`,"kek_version":`) {
		v, ok := s.uint()
		if !ok || v > 1<<32-1 {
			return e, false
		}
		e.KEKVersion = uint32(v)
	}
	if e.RequestID, ok = s.optStr(`,"request_id":`); !ok {
		return e, false
	}
	if !s.lit(`,"outcome":`) {
		return e, false
	}
	var out string
	if out, ok = s.str(); !ok {
		return e, false
	}
	e.Outcome = ledger.Outcome(out)
	if e.Reason, ok = s.optStr(`,"reason":`); !ok {
		return e, false
	}
	if s.lit(`,"details":{`) {
		e.Details = make(map[string]string, 4)
		for first := true; ; first = false {
			if s.lit(`}`) {
				if first {
					return e, false // an empty object is never canonical
				}
				break
			}
			if !first && !s.lit(`,`) {
				return e, false
			}
			k, ok := s.str()
			if !ok || !s.lit(`:`) {
				return e, false
			}
			v, ok := s.str()
			if !ok {
				return e, false
			}
			if _, dup := e.Details[k]; dup || len(e.Details) >= ledger.MaxDetails {
				return e, false
			}
			e.Details[k] = v
		}
	}
	if !s.lit(`}`) || s.i != len(b) {
		return e, false
	}
	return e, true
}
