package keysvc_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/keysvctest"
)

// BenchmarkAppend measures committed log appends per second on a 3-node
// cluster with 1, 32 and 256 concurrent appenders on the leader: "mem" on the
// in-memory network (state.db without fsync), "tcp" on loopback TCP inside
// mutual TLS with bbolt fsync for both the raft log and state.db. Fake HSMs
// (appending does not touch the HSM).
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"mem", "tcp"} {
		for _, p := range []int{1, 32, 256} {
			b.Run(fmt.Sprintf("%s/appenders=%d", mode, p), func(b *testing.B) {
				var leader *keysvc.Node
				if mode == "mem" {
					leader = keysvctest.NewCluster(b, 3, keysvctest.Options{}).Leader()
				} else {
					leader = newTCPCluster(b, 3, keysvc.GroupCommit{}).nodes[0]
				}
				benchAppend(b, leader, p)
			})
		}
	}
}

func benchAppend(b *testing.B, n *keysvc.Node, appenders int) {
	e := entry("bench-request-0123456789")
	before := n.Metrics()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := n.Append(ctx, e)
				cancel()
				lat[i] = time.Since(t0)
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := n.Metrics()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if batches := after.Batches - before.Batches; batches > 0 {
		b.ReportMetric(float64(after.BatchEntries-before.BatchEntries)/float64(batches), "entries/batch")
	}
}
