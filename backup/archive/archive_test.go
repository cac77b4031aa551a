package archive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/backup/archive"
)

const testID = "20261122T183000Z-0123456789abcdef"

// makeTree builds a tree with dirs, modes, mtimes, symlinks, empty files,
// a 10 MiB random file and a FIFO.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "srv", "hr")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "docs", "deep", "er"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "private"), 0o700))
	must(os.WriteFile(filepath.Join(root, "docs", "a.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "docs", "deep", "er", "b.txt"), bytes.Repeat([]byte("compressible "), 100000), 0o640))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o600))
	must(os.WriteFile(filepath.Join(root, "private", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	big := make([]byte, 10<<20)
	rand.Read(big)
	must(os.WriteFile(filepath.Join(root, "random.bin"), big, 0o644))
	must(os.Symlink("docs/a.txt", filepath.Join(root, "link-to-a")))
	must(os.Symlink("../a.txt", filepath.Join(root, "docs", "deep", "up")))
	must(os.Symlink("dangling", filepath.Join(root, "dangling-link")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(os.Chmod(filepath.Join(root, "docs", "deep"), 0o2750)) // setgid dir
	mt := time.Date(2024, 2, 29, 12, 34, 56, 123456789, time.UTC)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if d.Type()&fs.ModeSymlink == 0 && d.Type()&fs.ModeNamedPipe == 0 {
			must(os.Chtimes(p, mt, mt.Add(time.Duration(len(p))*time.Second)))
		}
		return nil
	})
	return root
}

// sameTree compares two trees: types, modes, mtimes (not symlinks'),
// contents and link targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, _ := os.Lstat(p)
		if wi.Mode()&fs.ModeNamedPipe != 0 {
			if _, err := os.Lstat(q); err == nil {
				t.Errorf("%s: FIFO was restored", rel)
			}
			return nil
		}
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		n++
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if wi.Mode()&fs.ModeSymlink != 0 {
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(q)
			if wl != gl {
				t.Errorf("%s: link %q, want %q", rel, gl, wl)
			}
			return nil
		}
		if !wi.ModTime().Equal(gi.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		if wi.Mode().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("compared only %d entries", n)
	}
}

func TestRoundTrip(t *testing.T) {
	src := makeTree(t)
	ks := newKeys(t, testID)
	m, a, ix := backup(t, ks, testID, src)

	st := m.Stats
	if st.Files != 5 || st.Symlinks != 3 || st.SkippedSpecial != 1 || st.Dirs != 5 || st.FileBytes < 10<<20 {
		t.Errorf("stats %+v", st)
	}
	if m.KEK.ID != "backups" || m.KEK.Version != 1 || m.Archive.Size != int64(len(a)) || m.Index.Size != int64(len(ix)) {
		t.Errorf("manifest %+v", m)
	}
	// The manifest names no file.
	mb, _ := m.Marshal()
	for _, name := range []string{"a.txt", "docs", "random", "srv", "hr/"} {
		if bytes.Contains(mb, []byte(name)) {
			t.Errorf("manifest mentions %q:\n%s", name, mb)
		}
	}
	if _, err := archive.ParseManifest(mb); err != nil {
		t.Fatal(err)
	}
	// Nor do the ciphertexts.
	if bytes.Contains(a, []byte("a.txt")) || bytes.Contains(ix, []byte("a.txt")) {
		t.Error("a file name travels in clear")
	}
	if err := archive.VerifyCiphertext(bytes.NewReader(a), m.Archive); err != nil {
		t.Error(err)
	}
	if err := archive.VerifyCiphertext(bytes.NewReader(ix), m.Archive); !errors.Is(err, archive.ErrIntegrity) {
		t.Errorf("index as archive: %v", err)
	}
	ctx := context.Background()
	vr, err := archive.Verify(ctx, m, bytes.NewReader(a), bytes.NewReader(ix), ks.id)
	if err != nil || vr.Files != 5 || vr.Restored != nil {
		t.Fatalf("verify: %+v, %v", vr, err)
	}

	dst := filepath.Join(t.TempDir(), "restore")
	res, err := archive.Restore(ctx, m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restored) != 1 || res.Restored[0] != strings.Split(strings.TrimPrefix(src, "/"), "/")[0] || res.Files != 5 {
		t.Errorf("result %+v", res)
	}
	sameTree(t, src, filepath.Join(dst, strings.TrimPrefix(src, "/")))
	if ents, _ := os.ReadDir(dst); len(ents) != 1 {
		t.Errorf("restore dir holds %d entries (staging left?)", len(ents))
	}
	// Restoring again over the same names: refused, nothing changed.
	if _, err := archive.Restore(ctx, m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second restore: %v", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 1 {
		t.Errorf("restore dir holds %d entries after a refused restore", len(ents))
	}
}

func TestCreateRefusals(t *testing.T) {
	ks := newKeys(t, testID)
	d := t.TempDir()
	for _, srcs := range [][]string{nil, {"relative"}, {"/"}, {d, d + "/x"}, {d + "/../x"}, {d + "/missing"}} {
		if _, err := archive.Create(context.Background(), srcs, &bytes.Buffer{}, &bytes.Buffer{}, archive.CreateOptions{Dataset: "hr", Recipient: ks.rcp}); err == nil {
			t.Errorf("sources %q accepted", srcs)
		}
	}
}

// Several sources whose names sort differently as strings and as paths
// ("a-b" < "a/c" as strings; a's subtree comes first in a walk).
func TestSeveralSources(t *testing.T) {
	base := t.TempDir()
	for _, p := range []string{"a/c", "a-b/d", "b"} {
		os.MkdirAll(filepath.Join(base, p), 0o755)
		os.WriteFile(filepath.Join(base, p, "f"), []byte(p), 0o644)
	}
	ks := newKeys(t, testID)
	m, a, ix := backup(t, ks, testID, filepath.Join(base, "b"), filepath.Join(base, "a-b"), filepath.Join(base, "a"))
	dst := t.TempDir()
	if _, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/c", "a-b/d", "b"} {
		if b, err := os.ReadFile(filepath.Join(dst, base, p, "f")); err != nil || string(b) != p {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
}

// Progress counts every byte of file content, and only that.
func TestCreateProgress(t *testing.T) {
	src := makeTree(t)
	ks := newKeys(t, testID)
	var done atomic.Int64
	m, err := archive.Create(context.Background(), []string{src}, io.Discard, io.Discard, archive.CreateOptions{
		ArchiveID: testID, Dataset: "hr", Recipient: ks.rcp, Progress: &done,
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Stats.FileBytes == 0 || done.Load() != m.Stats.FileBytes {
		t.Errorf("progress %d, file bytes %d", done.Load(), m.Stats.FileBytes)
	}
}
