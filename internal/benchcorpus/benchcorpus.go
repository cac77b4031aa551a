// Package benchcorpus generates the corpus the backup benchmarks run on
// (backup/archive's go test -bench and custos dev bench-backup), so both
// measure the same data.
package benchcorpus

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Corpus describes a generated corpus.
type Corpus struct {
	MiB         int64 `json:"mib"`
	Bytes       int64 `json:"bytes"`
	Files       int   `json:"files"`
	TextBytes   int64 `json:"text_bytes"`
	RandomBytes int64 `json:"random_bytes"`
}

// Generate writes about size bytes under dir, deterministically: 80%
// compressible text in files of 4-64 KiB, 20% random bytes in files of
// 64 KiB-2 MiB, in nested directories.
func Generate(dir string, size int64) (Corpus, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"custody", "archive", "kek", "wrap", "region", "backup", "ledger", "quorum", "officer", "drill", "restore", "policy", "zstd", "age", "tar"}
	c := Corpus{MiB: size >> 20}
	write := func(sz int, text bool) error {
		n := c.Files
		d := filepath.Join(dir, fmt.Sprintf("d%02d", n%37), fmt.Sprintf("e%d", n%5))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(d, fmt.Sprintf("f%05d", n)))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 64<<10)
		if text {
			for written := 0; written < sz; {
				k, _ := fmt.Fprintf(w, "%s %d %s\n", words[rng.IntN(len(words))], rng.IntN(100000), words[rng.IntN(len(words))])
				written += k
			}
			c.TextBytes += int64(sz)
		} else {
			cr := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8)})
			if _, err := io.CopyN(w, cr, int64(sz)); err != nil {
				f.Close()
				return err
			}
			c.RandomBytes += int64(sz)
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		c.Files++
		return nil
	}
	total := func() int64 { return c.TextBytes + c.RandomBytes }
	for total() < size*8/10 {
		if err := write(4<<10+rng.IntN(60<<10), true); err != nil {
			return c, err
		}
	}
	for total() < size {
		if err := write(64<<10+rng.IntN(2<<20-64<<10), false); err != nil {
			return c, err
		}
	}
	// Text files are written a line at a time: count the bytes on disk.
	var sum int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, err := d.Info()
			if err == nil {
				sum += fi.Size()
			}
		}
		return err
	})
	c.Bytes = sum
	return c, err
}
