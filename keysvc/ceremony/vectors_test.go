// Known-answer vectors in testdata/vectors.json: canonical proposals of
// every operation with their digests and descriptions, and bytes the parser
// must refuse. Run with -update to regenerate; otherwise every vector is
// checked, and the file must hold no field this harness does not know.

package ceremony_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testvectors"
	"github.com/custos-eu/custos/keysvc/ceremony"
)

const vectorsPath = "testdata/vectors.json"

type vectorFile struct {
	Comment   []string         `json:"comment"`
	Label     string           `json:"label"`
	Proposals []proposalVector `json:"proposals"`
	Invalid   []invalidVector  `json:"invalid"`
}

// proposalVector: Proposal is canonical; Digest is hex SHA-256(Label ||
// Proposal); Describe is Describe(proposal, 2).
type proposalVector struct {
	Name     string `json:"name"`
	Proposal string `json:"proposal"`
	Digest   string `json:"digest"`
	Describe string `json:"describe"`
}

// invalidVector: bytes ParseProposal must refuse; Code is the refusal its
// *ParseError wraps, empty when the bytes are not canonical JSON at all.
type invalidVector struct {
	Name     string `json:"name"`
	Proposal string `json:"proposal"`
	Code     string `json:"code"`
}

// katProposals are the proposals behind the vectors, by name.
func katProposals() []struct {
	name string
	p    ceremony.Proposal
} {
	var out []struct {
		name string
		p    ceremony.Proposal
	}
	for _, s := range sampleParams() {
		out = append(out, struct {
			name string
			p    ceremony.Proposal
		}{s.name, sampleProposal(s.params)})
	}
	edge := sampleProposal(ceremony.LegalHoldSet{KEKID: "k", Reason: "quote \" backslash \\ € \U0001F512 <&> é 東京"})
	edge.Cluster, edge.ID, edge.Proposer = "a", "ffffffffffffffffffffffffffffffff", "z"
	edge.Created = time.Date(9999, 12, 2, 0, 0, 0, 1, time.UTC)
	edge.Expires = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	edge.StateVersion = math.MaxUint64
	out = append(out, struct {
		name string
		p    ceremony.Proposal
	}{"edge", edge})
	return out
}

// katInvalid derives refused inputs from the canonical kek.create vector.
func katInvalid(t *testing.T) []invalidVector {
	good := string(mustMarshal(t, sampleProposal(ceremony.KEKCreate{KEKID: "payroll", Policy: samplePolicy()})))
	repl := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("katInvalid: %q not in %s", old, good)
		}
		return strings.Replace(good, old, new, 1)
	}
	return []invalidVector{
		{"indented", repl(`{"cluster"`, "{\n  \"cluster\""), ""},
		{"reordered", repl(`"cluster":"prod","id":"00112233445566778899aabbccddeeff"`, `"id":"00112233445566778899aabbccddeeff","cluster":"prod"`), ""},
		{"missing field", repl(`"proposer":"alice",`, ``), ""},
		{"unknown field", repl(`"state_version":41}`, `"state_version":41,"note":""}`), ""},
		{"unknown policy field", repl(`"threshold":2,`, `"threshold":2,"shares":3,`), ""},
		{"duplicate key", repl(`"kek_id":"payroll"`, `"kek_id":"other","kek_id":"payroll"`), ""},
		{"escaped character", repl(`"payroll"`, `"pay\u0072oll"`), ""},
		{"time in seconds", repl(`2026-03-01T10:00:00.000000000Z`, `2026-03-01T10:00:00Z`), ""},
		{"null list", repl(`"identities":[]`, `"identities":null`), ""},
		{"float", repl(`"state_version":41`, `"state_version":41.0`), ""},
		{"trailing data", good + " ", ""},
		{"unknown operation", repl(`"kek.create"`, `"kek.export"`), "invalid_params"},
		{"genesis", repl(`"kek.create"`, `"genesis"`), "invalid_params"},
		{"threshold 1", repl(`"threshold":2`, `"threshold":1`), "invalid_params"},
		{"escrow m 1", repl(`"m":2`, `"m":1`), "invalid_params"},
		{"unsorted regions", repl(`["DE","FR"]`, `["FR","DE"]`), "invalid_params"},
		{"region outside EU/EEA", repl(`["DE","FR"]`, `["DE","US"]`), "invalid_params"},
		{"upper-case id", repl(`"id":"00112233445566778899aabbccddeeff"`, `"id":"00112233445566778899AABBCCDDEEFF"`), "invalid_proposal"},
		{"expires before created", repl(`"expires":"2026-03-02`, `"expires":"2026-02-02`), "invalid_proposal"},
		{"open 31 days", repl(`"expires":"2026-03-02`, `"expires":"2026-04-01`), "invalid_proposal"},
	}
}

func digestHex(b []byte) string {
	d := sha256.Sum256(append([]byte(ceremony.DomainLabel), b...))
	return hex.EncodeToString(d[:])
}

func generateVectors(t *testing.T) vectorFile {
	v := vectorFile{
		Comment: []string{
			"Known-answer vectors for keysvc/ceremony. Regenerate with: go test ./keysvc/ceremony -run TestVectors -update",
			"proposals: canonical proposal JSON; digest = hex SHA-256(label || proposal), what officers sign; describe = Describe(proposal, 2).",
			"invalid: bytes ParseProposal refuses; code is the refusal its error wraps (empty: not canonical JSON).",
		},
		Label:   ceremony.DomainLabel,
		Invalid: katInvalid(t),
	}
	for _, k := range katProposals() {
		b := mustMarshal(t, k.p)
		v.Proposals = append(v.Proposals, proposalVector{Name: k.name, Proposal: string(b), Digest: digestHex(b),
			Describe: ceremony.Describe(k.p, 2)})
	}
	return v
}

func readVectors(t testing.TB) vectorFile {
	var v vectorFile
	testvectors.Load(t, vectorsPath, &v)
	return v
}

func TestVectors(t *testing.T) {
	if testvectors.Updating() {
		testvectors.Write(t, vectorsPath, generateVectors(t), testvectors.NoEscapeHTML())
	}
	v := readVectors(t)
	if v.Label != "custos/v1/proposal\x00" {
		t.Fatalf("label %q", v.Label)
	}
	gen := map[string]ceremony.Proposal{}
	for _, k := range katProposals() {
		gen[k.name] = k.p
	}
	ops := map[ceremony.Operation]bool{}
	for _, pv := range v.Proposals {
		p, err := ceremony.ParseProposal([]byte(pv.Proposal))
		if err != nil {
			t.Fatalf("%s: %v", pv.Name, err)
		}
		ops[p.Operation()] = true
		if got := digestHex([]byte(pv.Proposal)); got != pv.Digest {
			t.Fatalf("%s: SHA-256(label || proposal) = %s, vector says %s", pv.Name, got, pv.Digest)
		}
		if d := p.Digest(); hex.EncodeToString(d[:]) != pv.Digest {
			t.Fatalf("%s: Digest = %x, want %s", pv.Name, d, pv.Digest)
		}
		if got := ceremony.Describe(p, 2); got != pv.Describe {
			t.Fatalf("%s: Describe =\n%s\nwant\n%s", pv.Name, got, pv.Describe)
		}
		if again := mustMarshal(t, p); string(again) != pv.Proposal {
			t.Fatalf("%s: re-encoding differs", pv.Name)
		}
		if g, ok := gen[pv.Name]; ok && string(mustMarshal(t, g)) != pv.Proposal {
			t.Fatalf("%s: Marshal =\n%s\nwant\n%s", pv.Name, mustMarshal(t, g), pv.Proposal)
		}
	}
	for _, op := range ceremony.Operations() {
		if !ops[op] {
			t.Errorf("no vector for %s", op)
		}
	}
	if len(v.Invalid) == 0 {
		t.Fatal("no invalid vectors")
	}
	for _, iv := range v.Invalid {
		_, err := ceremony.ParseProposal([]byte(iv.Proposal))
		var pe *ceremony.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("invalid %q: ParseProposal = %v, want a *ParseError", iv.Name, err)
		}
		var re *ceremony.RefusalError
		switch {
		case iv.Code == "" && errors.As(err, &re):
			t.Fatalf("invalid %q: %v wraps refusal %s", iv.Name, err, re.Code)
		case iv.Code != "" && string(refusalCode(err)) != iv.Code:
			t.Fatalf("invalid %q: %v, want refusal %s", iv.Name, err, iv.Code)
		}
	}
}
