// Package benchcorpus makes the corpora the backup benchmarks run on
// (backup/archive's go test -bench and custos dev bench-backup), so both
// measure the same data: Generate writes a synthetic mix of text and
// random bytes, Text copies real text found on the machine.
package benchcorpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Corpus describes a corpus.
type Corpus struct {
	// Name is "generated" (Generate) or "text" (Text).
	Name string `json:"name"`
	// About says what the corpus is made of.
	About       string `json:"about"`
	MiB         int64  `json:"mib"`
	Bytes       int64  `json:"bytes"`
	Files       int    `json:"files"`
	TextBytes   int64  `json:"text_bytes"`
	RandomBytes int64  `json:"random_bytes"`
}

// Generate writes about size bytes under dir, deterministically: 80%
// compressible text in files of 4-64 KiB, 20% random bytes in files of
// 64 KiB-2 MiB, in nested directories.
func Generate(dir string, size int64) (Corpus, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"custody", "archive", "kek", "wrap", "region", "backup", "ledger", "quorum", "officer", "drill", "restore", "policy", "zstd", "age", "tar"}
	c := Corpus{Name: "generated", MiB: size >> 20,
		About: "generated: 80% lines of random words and numbers in files of 4-64 KiB, 20% random bytes in files of 64 KiB-2 MiB"}
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
	var err error
	c.Bytes, err = diskBytes(dir)
	return c, err
}

func diskBytes(dir string) (int64, error) {
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
	return sum, err
}

// TextSources are the directories Text copies from by default, in this
// order: Go's own source tree (goroot/src), C headers, Debian's package
// documentation (changelogs, READMEs, copyright files) and licences, and
// manual pages. Missing ones are skipped.
func TextSources(goroot string) []string {
	var s []string
	if goroot != "" {
		s = append(s, filepath.Join(goroot, "src"))
	}
	return append(s, "/usr/include", "/usr/share/doc", "/usr/share/common-licenses", "/usr/share/man")
}

// textHead is how much of a file is read to tell text from binary.
const textHead = 8 << 10

// Text copies real text into dir until it holds at least size bytes: the
// regular files under sources (each walked in lexical order, the sources
// in the order given) with no NUL byte in their first 8 KiB, gzip files
// (manual pages, changelogs) decompressed first under their name without
// ".gz". Symlinks, binary files, other compressed files and unreadable
// ones are skipped. The same sources give the same corpus; its About names
// them.
func Text(dir string, size int64, sources []string) (Corpus, error) {
	c := Corpus{Name: "text", MiB: size >> 20}
	var used []string
	errFull := errors.New("full")
	buf := make([]byte, 256<<10)
	for _, src := range sources {
		if _, err := os.Stat(src); err != nil {
			continue
		}
		used = append(used, src)
		label := strings.ReplaceAll(strings.Trim(filepath.ToSlash(src), "/"), "/", "_")
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if d != nil && d.IsDir() && p != src {
					return fs.SkipDir // unreadable directory
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if c.Bytes >= size {
				return errFull
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			n, err := copyText(filepath.Join(dir, label, rel), p, buf)
			if err != nil {
				return err
			}
			if n > 0 {
				c.Files++
				c.Bytes += n
			}
			return nil
		})
		if errors.Is(err, errFull) {
			break
		}
		if err != nil {
			return c, err
		}
	}
	c.TextBytes = c.Bytes
	c.About = fmt.Sprintf("text: the text files of %s (gzip ones decompressed), in path order, up to %d MiB", strings.Join(used, ", "), c.MiB)
	if c.Bytes < size {
		c.About += fmt.Sprintf(" (only %d MiB found)", c.Bytes>>20)
	}
	return c, nil
}

// copyText copies src to dst if it is text (decompressed if gzip), and
// returns the bytes written: 0 for a file skipped.
func copyText(dst, src string, buf []byte) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, nil // unreadable: skipped
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 64<<10)
	if strings.HasSuffix(src, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0, nil
		}
		r, dst = zr, strings.TrimSuffix(dst, ".gz")
	}
	head := make([]byte, textHead)
	k, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, nil
	}
	head = head[:k]
	if k == 0 || bytes.IndexByte(head, 0) >= 0 {
		return 0, nil // empty or binary
	}
	if _, err := os.Lstat(dst); err == nil {
		return 0, nil // a.gz beside a: keep the first
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(out, io.MultiReader(bytes.NewReader(head), r), buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A corrupt gzip file: drop what was copied of it.
		os.Remove(dst)
		if strings.HasSuffix(src, ".gz") {
			return 0, nil
		}
		return 0, err
	}
	return n, nil
}
