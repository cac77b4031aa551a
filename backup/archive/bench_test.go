package archive_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/internal/benchcorpus"
)

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusSize int64
)

// benchCorpus is a corpus of CUSTOS_BENCH_MB MiB (default 128), made once
// in a temporary directory removed by TestMain, or kept in
// $CUSTOS_BENCH_CORPUS (made there if missing) to compare with other tools.
func benchCorpus(b *testing.B) (string, int64) {
	corpusOnce.Do(func() {
		mb := int64(128)
		if s := os.Getenv("CUSTOS_BENCH_MB"); s != "" {
			fmt.Sscan(s, &mb)
		}
		if keep := os.Getenv("CUSTOS_BENCH_CORPUS"); keep != "" {
			corpusDir = keep
			if _, err := os.Stat(keep); err == nil {
				filepath.WalkDir(keep, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						fi, _ := d.Info()
						corpusSize += fi.Size()
					}
					return nil
				})
				return
			}
		} else {
			d, err := os.MkdirTemp("", "custos-corpus-")
			if err != nil {
				b.Fatal(err)
			}
			corpusTemp = d
			corpusDir = filepath.Join(d, "corpus")
		}
		c, err := benchcorpus.Generate(corpusDir, mb<<20)
		if err != nil {
			b.Fatal(err)
		}
		corpusSize = c.Bytes
	})
	return corpusDir, corpusSize
}

var corpusTemp string

// benchChunk is $CUSTOS_BENCH_CHUNK_KIB KiB, or 0 (the default chunk size).
func benchChunk() int {
	var kib int
	fmt.Sscan(os.Getenv("CUSTOS_BENCH_CHUNK_KIB"), &kib)
	return kib << 10
}

func TestMain(m *testing.M) {
	code := m.Run()
	if corpusTemp != "" {
		os.RemoveAll(corpusTemp)
	}
	os.Exit(code)
}

// countWriter discards and counts.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func maxRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

// BenchmarkCreate backs up the corpus to a discarding writer: MB/s of
// file bytes, allocations, the peak Go heap while it ran and the
// process's peak RSS.
func BenchmarkCreate(b *testing.B) {
	dir, size := benchCorpus(b)
	ks := newKeys(b, testID)
	runtime.GC()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	stop := sampleHeap()
	var m *archive.Manifest
	for b.Loop() {
		var err error
		m, err = archive.Create(context.Background(), []string{dir}, &countWriter{}, &countWriter{}, archive.CreateOptions{ArchiveID: testID, Dataset: "hr", Recipient: ks.rcp, ChunkSize: benchChunk()})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
	b.ReportMetric(float64(m.Stats.ZstdBytes)/float64(m.Stats.TarBytes), "ratio")
}

// BenchmarkVerify decrypts, decompresses and checks the corpus's archive
// (a restore without the writes).
func BenchmarkVerify(b *testing.B) {
	dir, size := benchCorpus(b)
	ks := newKeys(b, testID)
	af, _ := os.CreateTemp("", "custos-bench-*.age")
	defer os.Remove(af.Name())
	var ix bytes.Buffer
	m, err := archive.Create(context.Background(), []string{dir}, af, &ix, archive.CreateOptions{ArchiveID: testID, Dataset: "hr", Recipient: ks.rcp})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	stop := sampleHeap()
	for b.Loop() {
		af.Seek(0, 0)
		if _, err := archive.Verify(context.Background(), m, bufio.NewReaderSize(af, 256<<10), bytes.NewReader(ix.Bytes()), ks.id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
}

// sampleHeap samples the Go heap every millisecond until the returned
// function is called, which returns the peak.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// Memory stays bounded: backing up 48 MiB (a 24 MiB random file among
// text) keeps the live heap well under the archive's size.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MiB")
	}
	dir := filepath.Join(t.TempDir(), "c")
	if _, err := benchcorpus.Generate(dir, 48<<20); err != nil {
		t.Fatal(err)
	}
	ks := newKeys(t, testID)
	runtime.GC()
	stop := sampleHeap()
	m, err := archive.Create(context.Background(), []string{dir}, &countWriter{}, &countWriter{}, archive.CreateOptions{ArchiveID: testID, Dataset: "hr", Recipient: ks.rcp})
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("48 MiB corpus (%d files): peak heap %.1f MiB", m.Stats.Files, float64(peak)/(1<<20))
	if limit := uint64(40 << 20); peak > limit {
		t.Errorf("peak heap %.1f MiB, want ≤ %d MiB", float64(peak)/(1<<20), limit>>20)
	}
}

// BenchmarkRestore restores the corpus's archive to a fresh directory
// (in the system's temp dir) each time.
func BenchmarkRestore(b *testing.B) {
	dir, size := benchCorpus(b)
	ks := newKeys(b, testID)
	af, _ := os.CreateTemp("", "custos-bench-*.age")
	defer os.Remove(af.Name())
	var ix bytes.Buffer
	m, err := archive.Create(context.Background(), []string{dir}, af, &ix, archive.CreateOptions{ArchiveID: testID, Dataset: "hr", Recipient: ks.rcp})
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.MkdirTemp("", "custos-restore-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(out)
	runtime.GC()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	stop := sampleHeap()
	i := 0
	for b.Loop() {
		af.Seek(0, 0)
		i++
		if _, err := archive.Restore(context.Background(), m, bufio.NewReaderSize(af, 256<<10), bytes.NewReader(ix.Bytes()), ks.id, filepath.Join(out, fmt.Sprint(i)), archive.RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(filepath.Join(out, fmt.Sprint(i)))
		b.StartTimer()
	}
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
}
