package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/custos-eu/custos/backup/archive"
)

// payloadStart is the offset of age's STREAM payload (after the header
// and the 16-byte nonce).
func payloadStart(t *testing.T, a []byte) int {
	t.Helper()
	i := bytes.Index(a, []byte("\n--- "))
	j := bytes.IndexByte(a[i+1:], '\n')
	return i + 1 + j + 1 + 16
}

// expectNothingRestored runs Restore and checks it fails with want in the
// error and leaves dst empty and its parent untouched.
func expectNothingRestored(t *testing.T, name string, m *archive.Manifest, a, ix []byte, ks keys, want string) {
	t.Helper()
	parent := t.TempDir()
	dst := filepath.Join(parent, "restore")
	res, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: restore: %+v, %v; want an error with %q", name, res, err, want)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("%s: restore dir holds %v", name, ents)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("%s: restore dir's parent holds %v", name, ents)
	}
	if _, err := archive.Verify(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id); err == nil {
		t.Errorf("%s: verify passed", name)
	}
}

func TestTamperedArchives(t *testing.T) {
	src := makeTree(t)
	ks := newKeys(t, testID)
	m, a, ix := backup(t, ks, testID, src)
	p := payloadStart(t, a)
	const chunk = 64<<10 + 16
	if len(a)-p < 4*chunk {
		t.Fatalf("archive too small: %d", len(a))
	}
	flip := func(b []byte, off int) []byte {
		c := bytes.Clone(b)
		c[off] ^= 0x40
		return c
	}
	swap := func(b []byte, i, j int) []byte {
		c := bytes.Clone(b)
		x, y := p+i*chunk, p+j*chunk
		copy(c[x:x+chunk], b[y:y+chunk])
		copy(c[y:y+chunk], b[x:x+chunk])
		return c
	}
	integrity := archive.ErrIntegrity.Error()
	for _, tc := range []struct {
		name  string
		a, ix []byte
		want  string
	}{
		{"flip in header stanza", flip(a, 60), ix, ""},
		{"flip in first chunk", flip(a, p+100), ix, integrity},
		{"flip in middle", flip(a, p+(len(a)-p)/2), ix, integrity},
		{"flip last byte", flip(a, len(a)-1), ix, integrity},
		{"truncated mid-chunk", a[:len(a)-1000], ix, integrity},
		{"truncated at a chunk boundary", a[:p+3*chunk], ix, integrity},
		{"chunks swapped", swap(a, 1, 2), ix, integrity},
		{"extra bytes", append(bytes.Clone(a), 0), ix, integrity},
		{"flip in index", a, flip(ix, len(ix)-20), integrity},
		{"truncated index", a, ix[:len(ix)-17], integrity},
	} {
		expectNothingRestored(t, tc.name, m, tc.a, tc.ix, ks, tc.want)
	}

	// An intact archive under a manifest that disagrees: refused at the end.
	m2 := *m
	m2.Archive.SHA256 = strings.Repeat("0", 64)
	expectNothingRestored(t, "manifest hash", &m2, a, ix, ks, "does not match the manifest")
	// Another archive's index (same key, same tree): refused up front.
	other := "20261122T183000Z-fedcba9876543210"
	m3, _, ix3 := backup(t, ks, other, src)
	_ = m3
	expectNothingRestored(t, "other index", m, a, ix3, ks, "does not match the manifest")
	// A truncated archive whose manifest was made to match: age still
	// notices the missing final chunk.
	short := a[:p+3*chunk]
	m4 := *m
	m4.Archive = archive.Part{Size: int64(len(short)), SHA256: hexSum(short)}
	expectNothingRestored(t, "truncated with matching manifest", &m4, short, ix, ks, integrity)
	// Wrong identity (another KEK): a key error, not an integrity one.
	ks2 := newKeys(t, testID)
	if _, err := archive.Verify(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks2.id); err == nil || errors.Is(err, archive.ErrIntegrity) {
		t.Errorf("wrong key: %v", err)
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// craft encrypts a hand-built tar (with a matching index and manifest) so
// only the restore's own checks stand between it and the disk.
func craft(t *testing.T, ks keys, hdrs []*tar.Header, bodies []string) (*archive.Manifest, []byte, []byte) {
	t.Helper()
	return craftIndexed(t, ks, hdrs, bodies, bodies)
}

// craftIndexed is craft with the index's sizes and hashes taken from
// indexed instead of bodies.
func craftIndexed(t *testing.T, ks keys, hdrs []*tar.Header, bodies, indexed []string) (*archive.Manifest, []byte, []byte) {
	t.Helper()
	return craftTrailed(t, ks, hdrs, bodies, indexed, nil)
}

// craftTrailed is craftIndexed with trailer appended to the tar stream
// before compression (the manifest declares the tar stream's size
// without it).
func craftTrailed(t *testing.T, ks keys, hdrs []*tar.Header, bodies, indexed []string, trailer []byte) (*archive.Manifest, []byte, []byte) {
	t.Helper()
	return craftFormat(t, ks, hdrs, bodies, indexed, trailer, archive.ManifestFormat, archive.IndexFormat, true)
}

// craftFormat is craftTrailed with the manifest's and index's formats, and
// the index compressed or not.
func craftFormat(t *testing.T, ks keys, hdrs []*tar.Header, bodies, indexed []string, trailer []byte, manifestFormat, indexFormat string, compressIndex bool) (*archive.Manifest, []byte, []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	var index bytes.Buffer
	enc := json.NewEncoder(&index)
	enc.Encode(archive.IndexEntry{Format: indexFormat, ArchiveID: testID, Dataset: "hr"})
	for i, h := range hdrs {
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		e := archive.IndexEntry{Name: strings.TrimSuffix(h.Name, "/"), Mode: h.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky), MTime: h.ModTime.UTC(), Target: h.Linkname}
		switch h.Typeflag {
		case tar.TypeDir:
			e.Type = archive.TypeDir
		case tar.TypeSymlink:
			e.Type = archive.TypeSymlink
		default:
			e.Type = archive.TypeFile
			tw.Write([]byte(bodies[i]))
			e.Size, e.SHA256 = int64(len(indexed[i])), hexSum([]byte(indexed[i]))
		}
		enc.Encode(e)
	}
	tw.Close()
	enc.Encode(archive.IndexEntry{End: true, Entries: int64(len(hdrs))})
	zenc, _ := zstd.NewWriter(nil)
	seal := func(b []byte) []byte {
		var out bytes.Buffer
		w, err := age.Encrypt(&out, ks.rcp)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
		return out.Bytes()
	}
	a := seal(zenc.EncodeAll(append(tb.Bytes(), trailer...), nil))
	ixb := index.Bytes()
	if compressIndex {
		ixb = zenc.EncodeAll(ixb, nil)
	}
	ix := seal(ixb)
	m := &archive.Manifest{Format: manifestFormat, ArchiveID: testID, Dataset: "hr", KEK: archive.KEKRef{ID: "backups", Version: 1},
		Archive: archive.Part{Size: int64(len(a)), SHA256: hexSum(a)}, Index: archive.Part{Size: int64(len(ix)), SHA256: hexSum(ix)}, ChunkSize: archive.DefaultChunkSize,
		Stats: archive.Stats{TarBytes: int64(tb.Len())}}
	return m, a, ix
}

func TestHostileEntries(t *testing.T) {
	ks := newKeys(t, testID)
	dir := func(n string) *tar.Header { return &tar.Header{Name: n + "/", Typeflag: tar.TypeDir, Mode: 0o755} }
	file := func(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: 4} }
	link := func(n, target string) *tar.Header {
		return &tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
	}
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string
	}{
		{"dot-dot", []*tar.Header{dir("a"), file("a/../../evil")}, `".." in path`},
		{"leading dot-dot", []*tar.Header{file("../evil")}, `".." in path`},
		{"absolute", []*tar.Header{file("/tmp/evil")}, "absolute path"},
		{"absolute symlink", []*tar.Header{link("l", "/etc")}, "absolute target"},
		{"escaping symlink", []*tar.Header{dir("a"), link("a/l", "../../x")}, "escapes the restore directory"},
		{"write through symlink", []*tar.Header{dir("a"), link("l", "a"), file("l/evil")}, "beneath symlink"},
		{"hard link", []*tar.Header{file("x"), {Name: "y", Typeflag: tar.TypeLink, Linkname: "x"}}, "not one an archive holds"},
		{"device", []*tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, "not one an archive holds"},
		{"duplicate", []*tar.Header{file("x"), file("x")}, "out of order or repeated"},
		{"reordered", []*tar.Header{file("b"), file("a")}, "out of order or repeated"},
		{"dot element", []*tar.Header{file("./x")}, `"." path element`},
	} {
		bodies := make([]string, len(tc.hdrs))
		for i := range bodies {
			bodies[i] = "evil"
		}
		m, a, ix := craft(t, ks, tc.hdrs, bodies)
		expectNothingRestored(t, tc.name, m, a, ix, ks, tc.want)
	}
	// The same machinery restores a benign crafted archive.
	m, a, ix := craft(t, ks, []*tar.Header{dir("a"), link("a/l", "x"), file("a/x")}, []string{"", "", "good"})
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a", "l")); err != nil || string(b) != "good" {
		t.Errorf("benign: %q %v", b, err)
	}
}

// Content that does not match the index fails the restore, whether the file
// is small (checked and written by the file workers) or large (streamed),
// and whether it comes first or last.
func TestContentMismatch(t *testing.T) {
	ks := newKeys(t, testID)
	small, large := "good", strings.Repeat("L", 3<<20)
	bad := func(s string) string { return strings.ToUpper(s[:1]) + s[1:] } // same size, other bytes
	file := func(n string, size int) *tar.Header {
		return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}
	}
	for _, tc := range []struct {
		name            string
		bodies, indexed []string
	}{
		{"small first", []string{bad(small), small, large}, []string{small, small, large}},
		{"small last", []string{small, large, bad(small)}, []string{small, large, small}},
		{"large", []string{small, "l" + large[1:], small}, []string{small, large, small}},
	} {
		hdrs := make([]*tar.Header, len(tc.bodies))
		for i, b := range tc.bodies {
			hdrs[i] = file(fmt.Sprintf("d/f%d", i), len(b))
		}
		m, a, ix := craftIndexed(t, ks, append([]*tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}}, hdrs...),
			append([]string{""}, tc.bodies...), append([]string{""}, tc.indexed...))
		expectNothingRestored(t, tc.name, m, a, ix, ks, "does not match its SHA-256 in the index")
	}
}

// A zstd bomb: a small archive whose tar stream is followed by 256 MiB of
// zeros (zeros are what a tar's end padding holds) decompresses no further
// than the tar size the manifest declares, and restores nothing.
func TestZstdBomb(t *testing.T) {
	ks := newKeys(t, testID)
	hdrs := []*tar.Header{{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}}
	m, a, ix := craftTrailed(t, ks, hdrs, []string{"good"}, []string{"good"}, make([]byte, 256<<20))
	if len(a) > 1<<20 {
		t.Fatalf("the bomb is %d bytes", len(a))
	}
	expectNothingRestored(t, "zstd bomb", m, a, ix, ks, "decompresses to more than the tar size the manifest declares")
	short := *m
	short.Stats.TarBytes += 512
	expectNothingRestored(t, "declared longer", &short, a, ix, ks, "more than the tar size")
}

// Archives of the first format (an index of plain JSON lines) still
// restore; an index whose framing does not match its manifest's format (or
// its own header's) is refused.
func TestIndexFormats(t *testing.T) {
	ks := newKeys(t, testID)
	hdrs := func() []*tar.Header {
		return []*tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}}
	}
	bodies := []string{"", "data"}
	m, a, ix := craftFormat(t, ks, hdrs(), bodies, bodies, nil, archive.ManifestFormatV1, archive.IndexFormatV1, false)
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{}); err != nil {
		t.Fatalf("format 1: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "d", "f")); err != nil || string(b) != "data" {
		t.Fatalf("format 1: restored %q %v", b, err)
	}
	for _, tc := range []struct {
		name, manifest, index string
		compressed            bool
		want                  string
	}{
		{"format 1 manifest, compressed index", archive.ManifestFormatV1, archive.IndexFormatV1, true, "the index is compressed"},
		{"format 2 manifest, plain index", archive.ManifestFormat, archive.IndexFormat, false, "not zstd-compressed"},
		{"format 2 manifest, format 1 index header", archive.ManifestFormat, archive.IndexFormatV1, true, "does not match the manifest"},
		{"format 1 manifest, format 2 index header", archive.ManifestFormatV1, archive.IndexFormat, false, "does not match the manifest"},
	} {
		m, a, ix := craftFormat(t, ks, hdrs(), bodies, bodies, nil, tc.manifest, tc.index, tc.compressed)
		expectNothingRestored(t, tc.name, m, a, ix, ks, tc.want)
	}
}

// A setuid or setgid file or directory restores without those bits unless
// asked; other bits (sticky, permissions) stay.
func TestSetIDNotRestored(t *testing.T) {
	ks := newKeys(t, testID)
	hdrs := []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o2775},
		{Name: "d/sticky", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "d/suid", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 4},
	}
	m, a, ix := craft(t, ks, hdrs, []string{"", "", "evil"})
	for _, keep := range []bool{false, true} {
		dst := filepath.Join(t.TempDir(), "r")
		if _, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{KeepSetID: keep}); err != nil {
			t.Fatal(err)
		}
		want := map[string]os.FileMode{"d": os.ModeDir | 0o775, "d/suid": 0o755, "d/sticky": os.ModeDir | os.ModeSticky | 0o777}
		if keep {
			want["d"] |= os.ModeSetgid
			want["d/suid"] |= os.ModeSetuid
		}
		for name, mode := range want {
			fi, err := os.Lstat(filepath.Join(dst, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModeType | os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != mode {
				t.Errorf("keep %v: %s restored %v, want %v", keep, name, got, mode)
			}
		}
	}
}

// Owners are the restorer's unless asked; asked, they are the archive's
// (this needs root, as CI runs; skipped otherwise).
func TestOwnersNotRestored(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	src := t.TempDir()
	p := filepath.Join(src, "theirs")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 12345, 23456); err != nil {
		t.Fatal(err)
	}
	ks := newKeys(t, testID)
	m, a, ix := backup(t, ks, testID, src)
	for _, keep := range []bool{false, true} {
		dst := filepath.Join(t.TempDir(), "r")
		if _, err := archive.Restore(context.Background(), m, bytes.NewReader(a), bytes.NewReader(ix), ks.id, dst, archive.RestoreOptions{KeepOwners: keep}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(dst, strings.TrimPrefix(p, "/")))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantUID, wantGID := uint32(0), uint32(0)
		if keep {
			wantUID, wantGID = 12345, 23456
		}
		if st.Uid != wantUID || st.Gid != wantGID {
			t.Errorf("keep %v: owner %d:%d, want %d:%d", keep, st.Uid, st.Gid, wantUID, wantGID)
		}
	}
}
