package audit_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// benchPack writes a pack of n key operations after genesis (n+2 entries)
// to a file, signed by n1, and returns it with a trust file pinned at the
// first two entries. Entries are streamed to disk, never held.
func benchPack(b *testing.B, n int) (string, *audit.Trust) {
	b.Helper()
	s := newSynth(b) // entries 0 and 1: genesis, n1
	path := filepath.Join(b.TempDir(), "pack.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	size := uint64(n) + 2
	w, err := audit.NewWriter(bw, audit.Header{Cluster: synthCluster, Origin: "custos/" + synthCluster, To: size})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.NodeKeys(s.nodeKeysText("n1")); err != nil {
		b.Fatal(err)
	}
	var tree audit.Tree
	for i := uint64(0); i < 2; i++ {
		if err := w.Entry(i, s.entries[i]); err != nil {
			b.Fatal(err)
		}
		tree.Add(tlog.RecordHash(s.entries[i]))
	}
	at := s.now
	for i := uint64(2); i < size; i++ {
		at = at.Add(time.Millisecond)
		e := ledger.Entry{Index: i, Time: at, Type: "kek.unwrap",
			Actor: ledger.Actor{Identity: "custos://prod/agent/backup-7?region=DE", Role: "agent", Region: "DE",
				CertFingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			Node: "n1", KEKID: "payroll", KEKVersion: 3, RequestID: fmt.Sprintf("%032x", i), Outcome: ledger.OutcomeOK,
			Details: map[string]string{"context": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
				"wrapped": "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}}
		if i%10 == 0 {
			e.Outcome, e.Reason = ledger.OutcomeDenied, "region_not_allowed: FR is not among DE"
		}
		raw, err := e.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Entry(i, raw); err != nil {
			b.Fatal(err)
		}
		tree.Add(tlog.RecordHash(raw))
	}
	n1 := synthNodeKey(b, "n1")
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "custos/" + synthCluster, Size: size, Hash: tree.Root()}, n1.key.Name, n1.ec, n1.ml)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Checkpoint(note); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, s.trust(2)
}

// BenchmarkVerify verifies packs of 100k and 1M key operations from a
// file. It reports entries/s, the peak live heap sampled during the run
// (flat: it must not grow with the entries) and the process's peak RSS.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			path, trust := benchPack(b, n)
			st, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			var peak atomic.Uint64
			done := make(chan struct{})
			stopped := make(chan struct{})
			go func() { // sample the live heap without stopping the world
				defer close(stopped)
				sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for {
					metrics.Read(sample)
					if v := sample[0].Value.Uint64(); v > peak.Load() {
						peak.Store(v)
					}
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			}()
			b.SetBytes(st.Size())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r, err := audit.Verify(f, trust, audit.Options{})
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				if r.Entries != uint64(n)+2 || r.Pinned.Relation != audit.RelationExtends {
					b.Fatalf("report: %d entries, %s", r.Entries, r.Pinned.Relation)
				}
			}
			b.StopTimer()
			close(done)
			<-stopped
			b.ReportMetric(float64(n+2)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
			var ru syscall.Rusage
			if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
			}
		})
	}
}
