// Benchmarks: the digest officers sign, the decision Apply makes on every
// approval, and the parser.

package ceremony_test

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/ceremony"
)

func benchProposal() ceremony.Proposal {
	return sampleProposal(ceremony.KEKCreate{KEKID: "payroll", Policy: samplePolicy()})
}

func BenchmarkDigest(b *testing.B) {
	p := benchProposal()
	b.SetBytes(int64(len(mustMarshal(b, p))))
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Digest()
	}
}

// BenchmarkEvaluate decides a kek.create proposal with 3 approvals of a
// quorum of 3 among 5 officers. The fake verify costs one SHA-256; a real
// hybrid verify (ECDSA P-256 + ML-DSA-65) adds roughly 150 µs per approval.
func BenchmarkEvaluate(b *testing.B) {
	p := benchProposal()
	rules := ceremony.Rules{Cluster: "prod", Officers: []string{"alice", "bob", "carol", "dave", "erin"}, Quorum: 3}
	approvals := []ceremony.Approval{approve(p, "alice"), approve(p, "carol"), approve(p, "erin")}
	b.ReportAllocs()
	for b.Loop() {
		out, err := ceremony.Evaluate(p, approvals, rules, t0, 41, fakeVerify)
		if err != nil || !out.Ready {
			b.Fatal(out, err)
		}
	}
}

func BenchmarkParseProposal(b *testing.B) {
	data := mustMarshal(b, benchProposal())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ceremony.ParseProposal(data); err != nil {
			b.Fatal(err)
		}
	}
}
