package benchcorpus

import (
	"path/filepath"
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
