package target_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/custos-eu/custos/backup/target"
)

func TestLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	l, err := target.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if l.Capabilities() != (target.Capabilities{}) {
		t.Error("a directory claims lock support")
	}
	body := "archive bytes"
	sum := sha256.Sum256([]byte(body))
	oi, err := l.Put(ctx, "hr/a1.age", strings.NewReader(body), target.PutOptions{ChecksumSHA256: true, Metadata: map[string]string{"dataset": "hr"}, Size: int64(len(body))})
	if err != nil || oi.Size != int64(len(body)) || oi.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put: %+v, %v", oi, err)
	}
	if _, err := l.Put(ctx, "hr/a1.age", strings.NewReader("other"), target.PutOptions{}); !errors.Is(err, target.ErrExists) {
		t.Errorf("overwrite: %v", err)
	}
	rc, gi, err := l.Get(ctx, "hr/a1.age")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != body || gi.SHA256 != oi.SHA256 || gi.Metadata["dataset"] != "hr" {
		t.Errorf("get: %q %+v", got, gi)
	}
	// Without ChecksumSHA256 nothing is hashed (the caller has the hash).
	if oi, err := l.Put(ctx, "hr/a2.age", strings.NewReader("x"), target.PutOptions{}); err != nil || oi.SHA256 != "" || oi.Size != 1 {
		t.Errorf("put without checksum: %+v, %v", oi, err)
	}
	l.Put(ctx, "web/a1.age", strings.NewReader("y"), target.PutOptions{})
	list, err := l.List(ctx, "hr/")
	if err != nil || len(list) != 2 || list[0].Name != "hr/a1.age" || list[1].Name != "hr/a2.age" {
		t.Errorf("list hr/: %+v, %v", list, err)
	}
	if all, _ := l.List(ctx, ""); len(all) != 3 {
		t.Errorf("list all: %+v", all)
	}
	if err := l.Delete(ctx, "hr/a2.age"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Get(ctx, "hr/a2.age"); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := l.Delete(ctx, "hr/a2.age"); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	// Locks cannot be honoured by a directory.
	for _, opts := range []target.PutOptions{{LegalHold: true}, {Retention: &target.Retention{Mode: target.Compliance, Until: time.Now().Add(time.Hour)}}} {
		if _, err := l.Put(ctx, "hr/locked", strings.NewReader("z"), opts); !errors.Is(err, target.ErrUnsupported) {
			t.Errorf("put %+v: %v", opts, err)
		}
	}
	// Names that could leave the directory, or reserved ones.
	for _, bad := range []string{"", "/abs", "../x", "a/../b", "a//b", "a/", "./a", `a\b`, ".custos-meta/x", "a/.custos-tmp-1"} {
		if _, err := l.Put(ctx, bad, strings.NewReader("z"), target.PutOptions{}); err == nil {
			t.Errorf("put %q accepted", bad)
		}
	}
	// A failed read leaves nothing behind, not even a temporary file.
	if _, err := l.Put(ctx, "hr/broken", iotest.TimeoutReader(strings.NewReader(strings.Repeat("x", 100000))), target.PutOptions{}); err == nil {
		t.Error("failing reader accepted")
	}
	if _, err := l.Put(ctx, "hr/short", strings.NewReader("abc"), target.PutOptions{Size: 4}); err == nil {
		t.Error("short content accepted")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "hr"))
	if len(ents) != 1 {
		t.Errorf("hr/ holds %v", ents)
	}
	// A cancelled context stops the write.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Put(cctx, "hr/c", strings.NewReader("x"), target.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled put: %v", err)
	}
}

// Concurrent puts of one name: exactly one wins.
func TestLocalPutRace(t *testing.T) {
	l, err := target.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Put(context.Background(), "x/same", strings.NewReader(strings.Repeat("a", i+1)), target.PutOptions{ChecksumSHA256: true})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, target.ErrExists) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d puts won", wins)
	}
	list, _ := l.List(context.Background(), "")
	if len(list) != 1 || list[0].SHA256 == "" {
		t.Errorf("list %+v", list)
	}
}
