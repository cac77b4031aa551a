package testlog_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/custos-eu/custos/internal/testlog"
)

// Writers on many goroutines lose no line (run with -race for the rest).
func TestBufferConcurrentWriters(t *testing.T) {
	var b testlog.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "writer %d done\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 8 {
		t.Fatalf("%d lines, want 8:\n%s", n, b.String())
	}
	if got := b.Line("writer 5 "); got != "writer 5 done" {
		t.Fatalf("Line = %q", got)
	}
	if got := b.Line("writer 9"); got != "" {
		t.Fatalf("Line of a missing line = %q", got)
	}
	if string(b.Bytes()) != b.String() {
		t.Fatal("Bytes and String differ")
	}
}
