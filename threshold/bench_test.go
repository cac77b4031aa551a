// Benchmarks of Deal, Verify and Recover at the cluster's usual sizes.

package threshold_test

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/custos-eu/custos/threshold"
)

var benchSizes = []struct{ t, n int }{{2, 3}, {3, 5}}

func BenchmarkDeal(b *testing.B) {
	for _, p := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", p.t, p.n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := threshold.Deal(rand.Reader, p.t, p.n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, p := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", p.t, p.n), func(b *testing.B) {
			_, d := mustDeal(b, rand.Reader, p.t, p.n)
			s := &d.Shares[p.n-1]
			for b.Loop() {
				if err := threshold.Verify(d.Commitments, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecover recovers from exactly t shares, verifying each.
func BenchmarkRecover(b *testing.B) {
	for _, p := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", p.t, p.n), func(b *testing.B) {
			_, d := mustDeal(b, rand.Reader, p.t, p.n)
			shares := d.Shares[p.n-p.t:]
			for b.Loop() {
				if _, err := threshold.Recover(d.Commitments, shares); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
