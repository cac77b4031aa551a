// Proposals: canonical encoding, strict parsing, validation, digest, ids.

package ceremony_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

func TestRoundTrip(t *testing.T) {
	seen := map[ceremony.Operation]bool{}
	for _, s := range sampleParams() {
		t.Run(s.name, func(t *testing.T) {
			p := sampleProposal(s.params)
			b := mustMarshal(t, p)
			q, err := ceremony.ParseProposal(b)
			if err != nil {
				t.Fatalf("ParseProposal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", q, p)
			}
			if again := mustMarshal(t, q); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n%s\n%s", again, b)
			}
			if q.Digest() != p.Digest() || q.Operation() != s.params.Operation() {
				t.Fatal("digest or operation changed in the round trip")
			}
			seen[p.Operation()] = true
		})
	}
	for _, op := range ceremony.Operations() {
		if !seen[op] {
			t.Errorf("operation %s has no sample", op)
		}
	}
}

// TestCanonicalShape pins the encoding of one proposal byte for byte.
func TestCanonicalShape(t *testing.T) {
	b := mustMarshal(t, rotate())
	want := `{"cluster":"prod","id":"00112233445566778899aabbccddeeff","operation":"kek.rotate","params":{"kek_id":"payroll"},` +
		`"proposer":"alice","created":"2026-03-01T10:00:00.000000000Z","expires":"2026-03-02T10:00:00.000000000Z","state_version":41}`
	if string(b) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, want)
	}
	p := sampleProposal(ceremony.KEKCreate{KEKID: "k", Policy: ceremony.Policy{Threshold: 2}})
	wantParams := `"params":{"kek_id":"k","policy":{"threshold":2,"activation_ttl_seconds":0,` +
		`"wrap":{"roles":[],"identities":[],"regions":[]},"unwrap":{"roles":[],"identities":[],"regions":[]},` +
		`"required_context":[],"escrow":{"enabled":false,"m":0}}}`
	if b := mustMarshal(t, p); !bytes.Contains(b, []byte(wantParams)) {
		t.Fatalf("Marshal =\n%s\nwant params\n%s", b, wantParams)
	}
	// Empty lists written [] read back as nil, so the round trip is exact.
	pe := p.Params.(ceremony.KEKCreate)
	pe.Policy.Wrap.Roles, pe.Policy.Context = []string{}, []string{}
	p.Params = pe
	q, err := ceremony.ParseProposal(mustMarshal(t, p))
	if err != nil || q.Params.(ceremony.KEKCreate).Policy.Wrap.Roles != nil || q.Params.(ceremony.KEKCreate).Policy.Context != nil {
		t.Fatalf("empty lists: %#v, %v", q.Params, err)
	}
}

func TestMarshalTimesInUTC(t *testing.T) {
	p := rotate()
	paris := time.FixedZone("CET", 3600)
	q := p
	q.Created, q.Expires = p.Created.In(paris), p.Expires.In(paris)
	if !bytes.Equal(mustMarshal(t, p), mustMarshal(t, q)) || p.Digest() != q.Digest() {
		t.Fatal("the same instants in another zone encode differently")
	}
	q.Created = p.Created.Add(time.Nanosecond)
	if bytes.Equal(mustMarshal(t, p), mustMarshal(t, q)) {
		t.Fatal("a nanosecond is lost in the encoding")
	}
}

func TestParseRejectsNonCanonical(t *testing.T) {
	good := string(mustMarshal(t, rotate()))
	create := string(mustMarshal(t, sampleProposal(sampleParams()[6].params)))
	hold := string(mustMarshal(t, sampleProposal(ceremony.LegalHoldSet{KEKID: "k", Reason: "a<b&c"})))
	tests := []struct {
		name string
		data string
		code ceremony.Code // the wrapped refusal, if the bytes are canonical but invalid
	}{
		{name: "empty", data: ""},
		{name: "not json", data: "kek.rotate payroll"},
		{name: "whitespace after colon", data: strings.Replace(good, `"cluster":"prod"`, `"cluster": "prod"`, 1)},
		{name: "leading space", data: " " + good},
		{name: "trailing newline", data: good + "\n"},
		{name: "trailing object", data: good + "{}"},
		{name: "fields reordered", data: strings.Replace(good, `"cluster":"prod","id":"`+testID+`"`, `"id":"`+testID+`","cluster":"prod"`, 1)},
		{name: "unknown field", data: strings.Replace(good, `"state_version":41}`, `"state_version":41,"approved":true}`, 1)},
		{name: "unknown param field", data: strings.Replace(good, `{"kek_id":"payroll"}`, `{"kek_id":"payroll","force":true}`, 1)},
		{name: "missing field", data: strings.Replace(good, `"proposer":"alice",`, ``, 1)},
		{name: "missing params", data: strings.Replace(good, `"params":{"kek_id":"payroll"},`, ``, 1)},
		{name: "null params", data: strings.Replace(good, `{"kek_id":"payroll"}`, `null`, 1)},
		{name: "duplicate key", data: strings.Replace(good, `"cluster":"prod"`, `"cluster":"prod","cluster":"prod"`, 1)},
		{name: "duplicate key, last wins", data: strings.Replace(good, `"cluster":"prod"`, `"cluster":"evil","cluster":"prod"`, 1)},
		{name: "key in other case", data: strings.Replace(good, `"cluster"`, `"Cluster"`, 1)},
		{name: "escaped letter", data: strings.Replace(good, `"alice"`, `"\u0061lice"`, 1)},
		{name: "html-escaped text", data: strings.Replace(hold, `a<b&c`, `a\u003cb\u0026c`, 1)},
		{name: "time without nanoseconds", data: strings.Replace(good, `2026-03-01T10:00:00.000000000Z`, `2026-03-01T10:00:00Z`, 1)},
		{name: "time with offset", data: strings.Replace(good, `2026-03-01T10:00:00.000000000Z`, `2026-03-01T11:00:00.000000000+01:00`, 1)},
		{name: "time lower-case z", data: strings.Replace(good, `2026-03-01T10:00:00.000000000Z`, `2026-03-01T10:00:00.000000000z`, 1)},
		{name: "number with exponent", data: strings.Replace(good, `"state_version":41`, `"state_version":4.1e1`, 1)},
		{name: "number with leading zero", data: strings.Replace(good, `"state_version":41`, `"state_version":041`, 1)},
		{name: "number as string", data: strings.Replace(good, `"state_version":41`, `"state_version":"41"`, 1)},
		{name: "negative number", data: strings.Replace(good, `"state_version":41`, `"state_version":-41`, 1)},
		{name: "number too large", data: strings.Replace(good, `"state_version":41`, `"state_version":18446744073709551616`, 1)},
		{name: "unknown operation", data: strings.Replace(good, `"kek.rotate"`, `"kek.export"`, 1), code: ceremony.CodeInvalidParams},
		{name: "genesis is not a proposal", data: strings.Replace(good, `"kek.rotate"`, `"genesis"`, 1), code: ceremony.CodeInvalidParams},
		{name: "operation of other params", data: strings.Replace(good, `"kek.rotate"`, `"node.remove"`, 1)},
		{name: "list not sorted", data: strings.Replace(create, `["DE","FR"]`, `["FR","DE"]`, 1), code: ceremony.CodeInvalidParams},
		{name: "null list", data: strings.Replace(create, `"required_context":["classification","dataset"]`, `"required_context":null`, 1)},
		{name: "missing list", data: strings.Replace(create, `"required_context":["classification","dataset"],`, ``, 1)},
		{name: "ttl out of range", data: strings.Replace(create, `"activation_ttl_seconds":300`, `"activation_ttl_seconds":9223372037`, 1)},
		{name: "bool as number", data: strings.Replace(create, `"enabled":true`, `"enabled":1`, 1)},
		{name: "invalid params", data: strings.Replace(create, `"threshold":2`, `"threshold":1`, 1), code: ceremony.CodeInvalidParams},
		{name: "invalid proposal", data: strings.Replace(good, `"proposer":"alice"`, `"proposer":"Alice"`, 1), code: ceremony.CodeInvalidProposal},
		{name: "id upper-case hex", data: strings.Replace(good, testID, strings.ToUpper(testID), 1), code: ceremony.CodeInvalidProposal},
		{name: "expires before created", data: strings.Replace(good, `"expires":"2026-03-02`, `"expires":"2026-02-28`, 1), code: ceremony.CodeInvalidProposal},
		{name: "too large", data: good[:len(good)-1] + strings.Repeat(" ", ceremony.MaxProposalSize) + "}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ceremony.ParseProposal([]byte(tt.data))
			var pe *ceremony.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseProposal(%.200s) = %+v, %v; want a *ParseError", tt.data, p, err)
			}
			var re *ceremony.RefusalError
			switch {
			case tt.code == "" && errors.As(err, &re):
				t.Fatalf("error %v wraps a refusal", err)
			case tt.code != "" && refusalCode(err) != tt.code:
				t.Fatalf("error %v: want it to wrap a refusal %s", err, tt.code)
			}
		})
	}
}

func TestValidateProposal(t *testing.T) {
	mod := func(f func(*ceremony.Proposal)) ceremony.Proposal { p := rotate(); f(&p); return p }
	var nilRotate *ceremony.KEKRotate
	tests := []struct {
		name string
		p    ceremony.Proposal
		code ceremony.Code
		msg  string
	}{
		{"cluster missing", mod(func(p *ceremony.Proposal) { p.Cluster = "" }), ceremony.CodeInvalidProposal, "cluster"},
		{"cluster upper case", mod(func(p *ceremony.Proposal) { p.Cluster = "Prod" }), ceremony.CodeInvalidProposal, "cluster"},
		{"id short", mod(func(p *ceremony.Proposal) { p.ID = "0011" }), ceremony.CodeInvalidProposal, "hex"},
		{"id not hex", mod(func(p *ceremony.Proposal) { p.ID = strings.Repeat("g", 32) }), ceremony.CodeInvalidProposal, "hex"},
		{"proposer missing", mod(func(p *ceremony.Proposal) { p.Proposer = "" }), ceremony.CodeInvalidProposal, "proposer"},
		{"proposer with slash", mod(func(p *ceremony.Proposal) { p.Proposer = "officer/alice" }), ceremony.CodeInvalidProposal, "proposer"},
		{"created zero", mod(func(p *ceremony.Proposal) { p.Created = time.Time{} }), ceremony.CodeInvalidProposal, "created"},
		{"expires zero", mod(func(p *ceremony.Proposal) { p.Expires = time.Time{} }), ceremony.CodeInvalidProposal, "expires"},
		{"year 10000", mod(func(p *ceremony.Proposal) { p.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), ceremony.CodeInvalidProposal, "year"},
		{"expires at created", mod(func(p *ceremony.Proposal) { p.Expires = p.Created }), ceremony.CodeInvalidProposal, "not after"},
		{"open too long", mod(func(p *ceremony.Proposal) { p.Expires = p.Created.Add(ceremony.MaxLifetime + 1) }), ceremony.CodeInvalidProposal, "limit"},
		{"nil params", mod(func(p *ceremony.Proposal) { p.Params = nil }), ceremony.CodeInvalidParams, "<nil>"},
		{"pointer params", mod(func(p *ceremony.Proposal) { p.Params = &ceremony.KEKRotate{KEKID: "payroll"} }), ceremony.CodeInvalidParams, "*ceremony.KEKRotate"},
		{"nil pointer params", mod(func(p *ceremony.Proposal) { p.Params = nilRotate }), ceremony.CodeInvalidParams, "*ceremony.KEKRotate"},
		{"invalid params", mod(func(p *ceremony.Proposal) { p.Params = ceremony.KEKRotate{} }), ceremony.CodeInvalidParams, "kek.rotate: kek id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if refusalCode(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v; want %s mentioning %q", err, tt.code, tt.msg)
			}
			if _, err := tt.p.Marshal(); refusalCode(err) != tt.code {
				t.Fatalf("Marshal = %v; want %s", err, tt.code)
			}
			_ = tt.p.Digest() // defined, and must not panic
			if d := ceremony.Describe(tt.p, 2); !strings.HasPrefix(d, "Invalid proposal; it cannot execute: ") {
				t.Fatalf("Describe = %q", d)
			}
		})
	}
	if ok := mod(func(p *ceremony.Proposal) { p.Expires = p.Created.Add(ceremony.MaxLifetime) }); ok.Validate() != nil {
		t.Fatalf("a proposal open for exactly MaxLifetime: %v", ok.Validate())
	}
}

func TestDigest(t *testing.T) {
	p := rotate()
	b := mustMarshal(t, p)
	if want := sha256.Sum256(append([]byte("custos/v1/proposal\x00"), b...)); p.Digest() != want {
		t.Fatalf("Digest = %x, want SHA-256(label || canonical bytes) = %x", p.Digest(), want)
	}
	if ceremony.DomainLabel != "custos/v1/proposal\x00" {
		t.Fatalf("DomainLabel = %q", ceremony.DomainLabel)
	}
	// Every field is covered by the digest.
	changes := map[string]func(*ceremony.Proposal){
		"cluster":       func(p *ceremony.Proposal) { p.Cluster = "prod2" },
		"id":            func(p *ceremony.Proposal) { p.ID = "ffeeddccbbaa99887766554433221100" },
		"operation":     func(p *ceremony.Proposal) { p.Params = ceremony.KEKDestroy{KEKID: "payroll", Version: 1} },
		"params":        func(p *ceremony.Proposal) { p.Params = ceremony.KEKRotate{KEKID: "payroll2"} },
		"proposer":      func(p *ceremony.Proposal) { p.Proposer = "bob" },
		"created":       func(p *ceremony.Proposal) { p.Created = p.Created.Add(time.Nanosecond) },
		"expires":       func(p *ceremony.Proposal) { p.Expires = p.Expires.Add(time.Nanosecond) },
		"state_version": func(p *ceremony.Proposal) { p.StateVersion++ },
	}
	for name, f := range changes {
		q := p
		f(&q)
		if q.Digest() == p.Digest() {
			t.Errorf("changing %s leaves the digest as it was", name)
		}
	}
}

func TestNewID(t *testing.T) {
	id, err := ceremony.NewID(bytes.NewReader([]byte("0123456789abcdefXYZ")))
	if err != nil || id != "30313233343536373839616263646566" {
		t.Fatalf("NewID = %q, %v", id, err)
	}
	p := rotate()
	p.ID = id
	if err := p.Validate(); err != nil {
		t.Fatalf("a NewID id does not validate: %v", err)
	}
	if _, err := ceremony.NewID(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Fatal("NewID with 15 bytes of randomness succeeded")
	}
	if _, err := ceremony.NewID(iotest.ErrReader(errors.New("no entropy"))); err == nil || !strings.Contains(err.Error(), "no entropy") {
		t.Fatalf("NewID with a failing reader: %v", err)
	}
}

func TestParseErrorMessage(t *testing.T) {
	data := strings.Replace(string(mustMarshal(t, rotate())), `"kek_id":"payroll"`, `"kek_id":"Pay"`, 1)
	_, err := ceremony.ParseProposal([]byte(data))
	want := `ceremony: malformed proposal: invalid_params: proposal "` + testID + `": kek.rotate: kek id "Pay" may hold only a-z 0-9 . _ -`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}
