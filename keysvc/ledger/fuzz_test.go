// Fuzzers for every parser: no panics, errors of the parser's type, and
// parse -> encode -> parse round trips.

package ledger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// seedVectors adds the vectors file's values, picked by pick, as seeds.
func seedVectors(f *testing.F, pick func(v vectorFile) []string) {
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		f.Fatal(err)
	}
	for _, s := range pick(v) {
		f.Add([]byte(s))
	}
}

func FuzzParseEntry(f *testing.F) {
	seedVectors(f, func(v vectorFile) (out []string) {
		for _, e := range v.Entries {
			out = append(out, e.Entry)
		}
		return out
	})
	f.Add([]byte(`{"index":0}`))
	f.Add([]byte(`{"index":1,"time":"2026-01-01T00:00:00Z","type":"x","actor":{"identity":"a"},"outcome":"ok","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ledger.ParseEntry(data)
		if err != nil {
			var pe *ledger.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		out, err := e.Marshal()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted %q but Marshal gives %q, %v", data, out, err)
		}
	})
}

// FuzzMarshalEntry checks the other direction: whatever Marshal accepts,
// ParseEntry reads back to the same entry (ledgerdb.AppendEntries relies on it).
func FuzzMarshalEntry(f *testing.F) {
	f.Add(uint64(3), int64(1772366400123456789), "kek.unwrap", "agent \"x\"", "de", "k", uint32(2), "denied", "why\n\x00é", "sha256", "ab")
	f.Add(uint64(0), int64(0), "a", "\u2028", "", "", uint32(0), "ok", "", "", "")
	f.Fuzz(func(t *testing.T, index uint64, nanos int64, typ, identity, region, kekID string, version uint32,
		outcome, reason, dk, dv string) {
		e := ledger.Entry{
			Index: index, Time: time.Unix(0, nanos), Type: typ,
			Actor: ledger.Actor{Identity: identity, Region: region},
			KEKID: kekID, KEKVersion: version, Outcome: ledger.Outcome(outcome), Reason: reason,
		}
		if dk != "" || dv != "" {
			e.Details = map[string]string{dk: dv}
		}
		b, err := e.Marshal()
		if err != nil {
			var pe *ledger.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Marshal error %v is %T", err, err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Marshal produced invalid JSON %q", b)
		}
		got, err := ledger.ParseEntry(b)
		if err != nil {
			t.Fatalf("ParseEntry(Marshal) = %v for %q", err, b)
		}
		if !got.Time.Equal(e.Time) || got.Reason != e.Reason || got.Actor != e.Actor || got.KEKID != e.KEKID ||
			got.Index != e.Index || (e.Details != nil && got.Details[dk] != dv) {
			t.Fatalf("round trip changed the entry: %+v -> %+v", e, got)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	seedVectors(f, func(v vectorFile) (out []string) {
		for _, c := range v.Checkpoints {
			out = append(out, c.Body)
		}
		return out
	})
	f.Add([]byte("o\n01\nAAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ledger.ParseCheckpoint(data)
		if err != nil {
			var pe *ledger.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *ParseError", err, err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted %q but Marshal gives %q, %v", data, out, err)
		}
	})
}

var fuzzKeys = sync.OnceValue(func() []node {
	return []node{testNode(nil, "custos.test/node-a"), testNode(nil, "custos.test/node-b")}
})

func FuzzVerifyCheckpoint(f *testing.F) {
	seedVectors(f, func(v vectorFile) []string { return []string{v.SignedCheckpoint} })
	a := fuzzKeys()[0]
	for _, size := range []uint64{0, 1, 1 << 40} {
		f.Add(a.Sign(f, ledger.Checkpoint{Origin: testOrigin, Size: size}))
	}
	msg := a.Sign(f, ledger.Checkpoint{Origin: testOrigin, Size: 9})
	f.Add(msg[:bytes.LastIndexByte(msg[:len(msg)-1], '\n')+1]) // ML-DSA line dropped
	f.Fuzz(func(t *testing.T, msg []byte) {
		keys := fuzzKeys()
		c, signer, err := ledger.VerifyCheckpoint(msg, testOrigin, keys[0].Key, keys[1].Key)
		if err != nil {
			var ce *ledger.CheckpointError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, not *CheckpointError", err, err)
			}
			for _, s := range []error{ledger.ErrMalformedCheckpoint, ledger.ErrCheckpointSignature,
				ledger.ErrCheckpointUntrusted, ledger.ErrCheckpointOrigin} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no documented sentinel", err)
		}
		body, _ := c.Marshal()
		if !bytes.HasPrefix(msg, append(body, '\n')) || (signer != keys[0].Name && signer != keys[1].Name) {
			t.Fatalf("accepted %q as %+v by %q", msg, c, signer)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	seedVectors(f, func(v vectorFile) []string { return []string{v.InclusionProof, v.ConsistencyProof} })
	f.Add([]byte(`{"index":0,"size":1,"hashes":[]}`))
	f.Add([]byte(`{"old":0,"new":0,"hashes":[]}`))
	f.Add([]byte(` {"old" : 1, "new":2, "hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(what string, v any, enc func() ([]byte, error), parse func([]byte) (any, error), err error) {
			if err != nil {
				var pe *ledger.ParseError
				if !errors.As(err, &pe) || pe.What != what {
					t.Fatalf("%s: error %v (%T) is not a *ParseError for it", what, err, err)
				}
				return
			}
			out, err := enc()
			if err != nil {
				t.Fatal(err)
			}
			again, err := parse(out)
			if err != nil {
				t.Fatalf("%s: re-parse of %s: %v", what, out, err)
			}
			out2, _ := json.Marshal(again)
			if !bytes.Equal(out, out2) {
				t.Fatalf("%s: round trip %s -> %s", what, out, out2)
			}
			if strings.Contains(string(out), " ") {
				t.Fatalf("%s: encoding not compact: %s", what, out)
			}
		}
		ip, err := ledger.ParseInclusionProof(data)
		check("inclusion proof", ip, func() ([]byte, error) { return json.Marshal(ip) },
			func(b []byte) (any, error) { return ledger.ParseInclusionProof(b) }, err)
		cp, err := ledger.ParseConsistencyProof(data)
		check("consistency proof", cp, func() ([]byte, error) { return json.Marshal(cp) },
			func(b []byte) (any, error) { return ledger.ParseConsistencyProof(b) }, err)
	})
}

// FuzzFoldOf: a fold read from hostile details never panics, and one it
// accepts is consistent with its entry.
func FuzzFoldOf(f *testing.F) {
	f.Add("3", "2026-12-05T10:00:00.000000000Z", "2026-12-05T10:00:01.000000000Z", "4", uint64(9))
	f.Add("0", "x", "", "09", uint64(0))
	f.Fuzz(func(t *testing.T, count, first, last, after string, index uint64) {
		e := ledger.Entry{Index: index, Time: time.Date(2026, 12, 5, 10, 0, 2, 0, time.UTC), Outcome: ledger.OutcomeDenied,
			Details: map[string]string{ledger.DetailFoldCount: count, ledger.DetailFoldFirst: first, ledger.DetailFoldLast: last, ledger.DetailFoldAfter: after}}
		fold, ok, err := ledger.FoldOf(e)
		if !ok {
			t.Fatal("fold details not seen")
		}
		if err != nil {
			return
		}
		if fold.Count == 0 || fold.Last.Before(fold.First) || e.Time.Before(fold.Last) || (index > 0 && fold.After >= index) {
			t.Fatalf("accepted an impossible fold %+v of entry %d", fold, index)
		}
		if ledger.Denials(e) != fold.Count {
			t.Fatalf("Denials %d, fold count %d", ledger.Denials(e), fold.Count)
		}
	})
}
