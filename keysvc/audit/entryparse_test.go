package audit

import (
	"reflect"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

func sampleEntries(t testing.TB) [][]byte {
	at := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	var out [][]byte
	for _, e := range []ledger.Entry{
		{Index: 0, Time: at, Type: "cluster.genesis", Actor: ledger.Actor{Identity: "ops"}, Outcome: ledger.OutcomeOK},
		{Index: 7, Time: at, Type: "kek.unwrap", Actor: ledger.Actor{Identity: "custos://test/agent/a?region=DE", Role: "agent", Region: "DE", CertFingerprint: "sha256:00"},
			Node: "n1", KEKID: "payroll", KEKVersion: 4294967295, RequestID: "r", Outcome: ledger.OutcomeDenied, Reason: "quote \" backslash \\ tab \t nl \n cr \r ctl \x01 \x1f é ✓ <&>",
			Details: map[string]string{"a": "1", "b.c": "x\"y", "z": ""}},
		// An activation (base64 with + / =) and a share release naming it.
		{Index: 8, Time: at, Type: "kek.activate", Actor: ledger.Actor{Identity: "custos://test/agent/a?region=DE", Role: "agent", Region: "DE", CertFingerprint: "sha256:00"},
			Node: "n1", KEKID: "payroll", KEKVersion: 1, RequestID: "0123456789abcdef", Outcome: ledger.OutcomeOK,
			Details: map[string]string{"request": "Y3VzdG9z+/8=", "signature": "MEUCIQ==", "client_cert": "MIIB+w==", "ttl_seconds": "300"}},
		{Index: 9, Time: at, Type: "kek.release", Actor: ledger.Actor{Identity: "custos://test/node/n2?region=DE", Role: "node", Region: "DE"},
			Node: "n2", KEKID: "payroll", KEKVersion: 1, RequestID: "0123456789abcdef", Outcome: ledger.OutcomeOK,
			Details: map[string]string{"activation": "8", "to": "n1", "for": "custos://test/agent/a?region=DE"}},
		{Index: 1<<63 - 2, Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Type: "x", Actor: ledger.Actor{Identity: "\u2028"}, Outcome: ledger.OutcomeError},
	} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// parseEntry must give ledger.ParseEntry's verdict on every input.
func checkSameVerdict(t *testing.T, b []byte) {
	got, gerr := parseEntry(b)
	want, werr := ledger.ParseEntry(b)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: fast parser says %v, ledger says %v", b, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("%q: fast parser gives %+v, ledger %+v", b, got, want)
	}
	if gerr == nil {
		if _, ok := decodeEntry(b); !ok {
			t.Errorf("%q: canonical entry not taken by the fast path", b)
		}
	}
}

func normal(e ledger.Entry) ledger.Entry {
	if len(e.Details) == 0 {
		e.Details = nil
	}
	e.Time = e.Time.UTC()
	return e
}

func TestParseEntryAgreesWithLedger(t *testing.T) {
	for _, b := range sampleEntries(t) {
		checkSameVerdict(t, b)
		for i := range b {
			c := append([]byte(nil), b...)
			c[i] ^= 0x20
			checkSameVerdict(t, c)
			checkSameVerdict(t, b[:i])
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, b := range sampleEntries(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSameVerdict(t, b) })
}
