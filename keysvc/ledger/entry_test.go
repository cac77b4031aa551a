// Entry encoding: the canonical form, round trips, and strict rejection.

package ledger_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestEntryCanonicalForm(t *testing.T) {
	e := ledger.Entry{
		Index: 7,
		Time:  time.Date(2026, 3, 1, 13, 4, 5, 6, time.FixedZone("CET", 3600)),
		Type:  "kek.unwrap",
		Actor: ledger.Actor{Identity: "backup-agent@hr", Role: "agent", Region: "de",
			CertFingerprint: "sha256:00ff"},
		Node: "node-a", KEKID: "backups", KEKVersion: 2, RequestID: "r-1",
		Outcome: ledger.OutcomeDenied, Reason: "a \"quoted\" <b>&\\ \n\t\x01 é",
		Details: map[string]string{"z": "1", "a.b": "2", "ctx_sha256": "ab"},
	}
	want := `{"index":7,"time":"2026-03-01T12:04:05.000000006Z","type":"kek.unwrap",` +
		`"actor":{"identity":"backup-agent@hr","role":"agent","region":"de","cert_fingerprint":"sha256:00ff"},` +
		`"node":"node-a","kek_id":"backups","kek_version":2,"request_id":"r-1","outcome":"denied",` +
		`"reason":"a \"quoted\" <b>&\\ \n\t\u0001 é","details":{"a.b":"2","ctx_sha256":"ab","z":"1"}}`
	got := mustMarshal(t, e)
	if string(got) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", got, want)
	}
	min := ledger.Entry{Time: baseTime, Type: "node.join", Actor: ledger.Actor{Identity: "n"}, Outcome: ledger.OutcomeOK}
	wantMin := `{"index":0,"time":"2026-03-01T12:00:00.000000000Z","type":"node.join","actor":{"identity":"n"},"outcome":"ok"}`
	if got := mustMarshal(t, min); string(got) != wantMin {
		t.Fatalf("Marshal minimal:\n got %s\nwant %s", got, wantMin)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for i := range uint64(40) {
		e := sampleEntry(i)
		b := mustMarshal(t, e)
		got, err := ledger.ParseEntry(b)
		if err != nil {
			t.Fatalf("entry %d: ParseEntry(%s): %v", i, b, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("entry %d: round trip\n got %+v\nwant %+v", i, got, e)
		}
	}
	// A non-UTC time encodes as the same instant in UTC.
	e := sampleEntry(1)
	e.Time = e.Time.In(time.FixedZone("X", -7*3600))
	if string(mustMarshal(t, e)) != string(mustMarshal(t, sampleEntry(1))) {
		t.Fatal("time zone changed the encoding")
	}
}

func TestParseEntryRejects(t *testing.T) {
	good := string(mustMarshal(t, ledger.Entry{
		Index: 3, Time: baseTime, Type: "kek.wrap", Actor: ledger.Actor{Identity: "a", Role: "agent"},
		KEKID: "k", KEKVersion: 1, Outcome: ledger.OutcomeOK, Reason: "x<y",
		Details: map[string]string{"a": "1", "b": "2"},
	}))
	if _, err := ledger.ParseEntry([]byte(good)); err != nil {
		t.Fatalf("good entry rejected: %v", err)
	}
	sub := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test bug: %q not in %s", old, good)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := map[string]string{
		"unknown field":          sub(`"outcome"`, `"extra":"x","outcome"`),
		"unknown actor field":    sub(`"role"`, `"name":"x","role"`),
		"whitespace":             sub(`"index":3,`, `"index": 3,`),
		"trailing newline":       good + "\n",
		"trailing data":          good + "{}",
		"leading space":          " " + good,
		"reordered keys":         sub(`"kek_id":"k","kek_version":1`, `"kek_version":1,"kek_id":"k"`),
		"duplicate key":          sub(`"outcome":"ok"`, `"outcome":"denied","outcome":"ok"`),
		"unsorted details":       sub(`{"a":"1","b":"2"}`, `{"b":"2","a":"1"}`),
		"empty details":          sub(`,"details":{"a":"1","b":"2"}`, `,"details":{}`),
		"null node":              sub(`"kek_id"`, `"node":null,"kek_id"`),
		"empty reason":           sub(`"reason":"x<y"`, `"reason":""`),
		"zero kek_version":       sub(`"kek_version":1`, `"kek_version":0`),
		"html escape":            sub(`x<y`, `x\u003cy`),
		"unicode escape":         sub(`"kek.wrap"`, `"kek.wr\u0061p"`),
		"solidus escape":         sub(`x<y`, `x\/y`),
		"time without nanos":     sub(`12:00:00.000000000Z`, `12:00:00Z`),
		"time short nanos":       sub(`12:00:00.000000000Z`, `12:00:00.0Z`),
		"time with offset":       sub(`12:00:00.000000000Z`, `12:00:00.000000000+00:00`),
		"time lowercase z":       sub(`12:00:00.000000000Z`, `12:00:00.000000000z`),
		"index float":            sub(`"index":3`, `"index":3.0`),
		"index exponent":         sub(`"index":3`, `"index":3e0`),
		"index leading zero":     sub(`"index":3`, `"index":03`),
		"index string":           sub(`"index":3`, `"index":"3"`),
		"index negative":         sub(`"index":3`, `"index":-3`),
		"capitalised key":        sub(`"index"`, `"Index"`),
		"missing time":           sub(`"time":"2026-03-01T12:00:00.000000000Z",`, ``),
		"missing outcome":        sub(`,"outcome":"ok"`, ``),
		"bad outcome":            sub(`"outcome":"ok"`, `"outcome":"OK"`),
		"bad type":               sub(`"kek.wrap"`, `"Kek.Wrap"`),
		"invalid utf-8":          sub(`x<y`, "x\xffy"),
		"raw control char":       sub(`x<y`, "x\x01y"),
		"kek_version without id": sub(`"kek_id":"k",`, ``),
		"not an object":          `[]`,
		"empty":                  ``,
	}
	for name, in := range cases {
		_, err := ledger.ParseEntry([]byte(in))
		var pe *ledger.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: ParseEntry(%s) = %v, want *ParseError", name, in, err)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	ok := sampleEntry(0)
	cases := map[string]func(e *ledger.Entry){
		"zero time":          func(e *ledger.Entry) { e.Time = time.Time{} },
		"year 10000":         func(e *ledger.Entry) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"empty type":         func(e *ledger.Entry) { e.Type = "" },
		"type with space":    func(e *ledger.Entry) { e.Type = "kek unwrap" },
		"type starts digit":  func(e *ledger.Entry) { e.Type = "1kek" },
		"no identity":        func(e *ledger.Entry) { e.Actor.Identity = "" },
		"bad outcome":        func(e *ledger.Entry) { e.Outcome = "maybe" },
		"no outcome":         func(e *ledger.Entry) { e.Outcome = "" },
		"version without id": func(e *ledger.Entry) { e.KEKID = "" },
		"invalid utf-8":      func(e *ledger.Entry) { e.Reason = "\xc3" },
		"long field":         func(e *ledger.Entry) { e.Node = strings.Repeat("n", ledger.MaxFieldLen+1) },
		"bad detail key":     func(e *ledger.Entry) { e.Details = map[string]string{"Key": "v"} },
		"empty detail key":   func(e *ledger.Entry) { e.Details = map[string]string{"": "v"} },
		"index too large":    func(e *ledger.Entry) { e.Index = 1<<63 - 1 },
		"too many details": func(e *ledger.Entry) {
			e.Details = map[string]string{}
			for i := range ledger.MaxDetails + 1 {
				e.Details[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
			}
		},
		"too large": func(e *ledger.Entry) {
			e.Details = map[string]string{}
			for i := range ledger.MaxDetails {
				e.Details[string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("\x01", ledger.MaxFieldLen)
			}
		},
	}
	for name, mutate := range cases {
		e := ok
		e.Details = nil
		mutate(&e)
		_, err := e.Marshal()
		var pe *ledger.ParseError
		if !errors.As(err, &pe) || pe.What != "entry" {
			t.Errorf("%s: Marshal = %v, want *ParseError for entry", name, err)
		}
	}
	if _, err := ok.Marshal(); err != nil {
		t.Fatalf("base entry rejected: %v", err)
	}
}
