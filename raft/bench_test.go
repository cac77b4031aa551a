// Apply throughput and latency on a 3-node loopback cluster with mutual TLS and fsync on.

package raft_test

import (
	"context"
	"runtime"
	"testing"
)

// BenchmarkApply proposes 128-byte commands on the leader, one at a time and from 32
// goroutines. ns/op is the mean wall time per committed command; ops/s the throughput.
func BenchmarkApply(b *testing.B) {
	c := newTCPCluster(b, 3)
	leader := c.leader().node
	cmd := make([]byte, 128)
	ctx := context.Background()

	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	}
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := leader.Apply(ctx, cmd); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("parallel32", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism((32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := leader.Apply(ctx, cmd); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
}
