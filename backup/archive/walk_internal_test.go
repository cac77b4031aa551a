package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// The walker hands entries out in walk order, small files read and hashed
// ahead within the budget, large ones open to stream; everything it took
// is given back.
func TestWalkerOrderAndBudget(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 120 {
		size := 100 << 10 // 100 KiB: the budget holds 40 of these
		if i%40 == 7 {
			size = readAheadMax + 1
		}
		p := filepath.Join(dir, fmt.Sprintf("d%d", i/50), fmt.Sprintf("f%03d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { want = append(want, p); return nil })
	fds := openFDs(t)

	w := newWalker(context.Background(), []string{dir}, 3, nil)
	var got []string
	streamed := 0
	for e := w.next(); e != nil; e = w.next() {
		if e.err != nil {
			t.Fatal(e.err)
		}
		got = append(got, e.path)
		w.mu.Lock()
		used := w.used
		w.mu.Unlock()
		if used > readAheadBudget {
			t.Fatalf("%d bytes read ahead, budget %d", used, readAheadBudget)
		}
		if e.d.Type().IsRegular() {
			content, _ := os.ReadFile(e.path)
			switch {
			case e.f != nil:
				streamed++
				if e.data != nil || e.fi.Size() != int64(len(content)) {
					t.Errorf("%s: open to stream, with data %d, size %d", e.path, len(e.data), e.fi.Size())
				}
			case !bytes.Equal(e.data, content) || e.sum != sha256.Sum256(content):
				t.Errorf("%s: read ahead wrong", e.path)
			}
		}
		w.done(e)
	}
	w.close()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n%v\nwant\n%v", got, want)
	}
	if streamed < 3 {
		t.Errorf("%d files streamed, want the 3 large ones at least", streamed)
	}
	if w.used != 0 {
		t.Errorf("%d bytes of buffers not given back", w.used)
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d files left open", n-fds)
	}
}

// A file that became a symlink after the directory was read is refused,
// not followed.
func TestWalkerFileReplacedBySymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o600)
	ents, err := os.ReadDir(dir)
	if err != nil || ents[0].Name() != "f" {
		t.Fatal(ents, err)
	}
	os.Remove(filepath.Join(dir, "f"))
	os.Symlink("secret", filepath.Join(dir, "f"))
	w := &walker{}
	e := &walkEntry{path: filepath.Join(dir, "f"), d: ents[0]}
	w.read(e)
	if e.err == nil || !strings.Contains(e.err.Error(), "changed type during the backup") || e.data != nil {
		t.Fatalf("err %v, data %q", e.err, e.data)
	}
}

// Stopping early (a failed entry, a cancelled backup) ends the walk and
// its readers and closes what they opened.
func TestWalkerStopsEarly(t *testing.T) {
	dir := t.TempDir()
	for i := range 300 {
		size := 10
		if i%10 == 0 {
			size = readAheadMax + 1
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), make([]byte, size), 0o644)
	}
	fds := openFDs(t)
	w := newWalker(context.Background(), []string{dir}, 2, nil)
	for range 5 {
		e := w.next()
		w.done(e)
	}
	w.close() // entries in flight, files open
	if n := openFDs(t); n > fds {
		t.Errorf("%d files left open", n-fds)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w = newWalker(ctx, []string{dir}, 2, nil)
	var err error
	for i := 0; ; i++ {
		if i == 3 {
			cancel()
		}
		e := w.next()
		if e == nil {
			break
		}
		err = e.err
		w.done(e)
		if err != nil {
			break
		}
	}
	w.close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk ended with %v", err)
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d files left open after cancel", n-fds)
	}
}
