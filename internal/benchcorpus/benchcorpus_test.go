package benchcorpus

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The corpus is what it says (sizes, mix) and the same every time.
func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Generate(dir, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.Files < 20 || c.Bytes < 2<<20 || c.TextBytes < (2<<20)*8/10 || c.RandomBytes == 0 {
		t.Fatalf("corpus %+v", c)
	}
	c2, _ := Generate(filepath.Join(t.TempDir(), "c"), 2<<20)
	if c2 != c {
		t.Fatalf("not deterministic: %+v vs %+v", c, c2)
	}
}

// Text copies text files in path order, decompresses gzip ones, skips
// binary ones, symlinks and missing sources, stops at the size, and is the
// same every time.
func TestText(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "b"), 0o755)
	line := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 100) // 4400 bytes
	os.WriteFile(filepath.Join(src, "a.txt"), []byte(line), 0o644)
	os.WriteFile(filepath.Join(src, "bin"), append([]byte("ELF"), 0, 1, 2), 0o755)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(line))
	zw.Close()
	os.WriteFile(filepath.Join(src, "b", "man.1.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(src, "b", "z.txt"), []byte(line), 0o644)
	os.WriteFile(filepath.Join(src, "c.txt"), []byte(line), 0o644)
	os.Symlink("a.txt", filepath.Join(src, "link"))

	// Room for three files: a.txt, b/man.1 (decompressed), b/z.txt.
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Text(dir, 3*4400-1, []string{filepath.Join(t.TempDir(), "missing"), src})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "text" || c.Files != 3 || c.Bytes != 3*4400 || c.TextBytes != c.Bytes || !strings.Contains(c.About, src) {
		t.Fatalf("corpus %+v", c)
	}
	label := strings.ReplaceAll(strings.Trim(filepath.ToSlash(src), "/"), "/", "_")
	for _, name := range []string{"a.txt", "b/man.1", "b/z.txt"} {
		if b, err := os.ReadFile(filepath.Join(dir, label, name)); err != nil || string(b) != line {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"bin", "c.txt", "link", "b/man.1.gz"} {
		if _, err := os.Lstat(filepath.Join(dir, label, name)); err == nil {
			t.Errorf("%s was copied", name)
		}
	}
	c2, err := Text(filepath.Join(t.TempDir(), "c"), 3*4400-1, []string{src})
	if err != nil || c2 != c {
		t.Fatalf("not deterministic: %+v vs %+v (%v)", c, c2, err)
	}
}
