package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// ErrIntegrity marks every failure that means the archive or its index is
// not what was backed up: tampered, truncated, reordered, or not matching
// the manifest. Restore and Verify wrap it; test with errors.Is.
var ErrIntegrity = errors.New("archive integrity check failed")

func integrity(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrIntegrity}, a...)...)
}

// VerifyCiphertext checks r against part (size and SHA-256) without
// decrypting: what a store holds is what was written.
func VerifyCiphertext(r io.Reader, part Part) error {
	ch := &countingHash{dst: io.Discard, h: sha256.New()}
	if _, err := io.Copy(ch, r); err != nil {
		return err
	}
	got := ch.part()
	if got.Size != part.Size {
		return integrity("ciphertext is %d bytes, the manifest says %d", got.Size, part.Size)
	}
	if got.SHA256 != part.SHA256 {
		return integrity("ciphertext SHA-256 %s, the manifest says %s", got.SHA256, part.SHA256)
	}
	return nil
}

// Result reports a restore or a full verification.
type Result struct {
	Entries  int64
	Files    int64
	Dirs     int64
	Symlinks int64
	Bytes    int64 // file content bytes
	// Restored lists the top-level names moved into the restore
	// directory (empty for Verify). Set only when everything verified.
	Restored []string
	Duration time.Duration
}

// RestoreOptions are what a restore may put back beyond content, names,
// permissions and times.
type RestoreOptions struct {
	// KeepSetID restores the setuid and setgid bits.
	KeepSetID bool
	// KeepOwners restores each entry's owner and group (numeric ids, from
	// the archive's tar headers); it needs the privilege to chown.
	KeepOwners bool
}

// mode is the mode e is restored with.
func (o RestoreOptions) mode(e IndexEntry) fs.FileMode {
	if o.KeepSetID {
		return e.Mode
	}
	return e.Mode &^ (fs.ModeSetuid | fs.ModeSetgid)
}

// RestoreBufferBytes is about the most memory Restore and Verify hold in
// buffers on workers goroutines: 3 × workers + 1 small-file buffers (see
// filePool) and the decompressor's window of two frames of the default
// chunk size.
func RestoreBufferBytes(workers int) int64 {
	return int64(3*workers+1)*smallFile + 2*DefaultChunkSize
}

// Verify decrypts the archive and index with identity, checks them against
// the manifest (ciphertext hashes and sizes, archive id, dataset) and
// every entry against the index (order, type, mode, mtime, size, per-file
// SHA-256, link target), and writes nothing.
func Verify(ctx context.Context, m *Manifest, archive, index io.Reader, identity age.Identity) (*Result, error) {
	return run(ctx, m, archive, index, identity, nil)
}

// Restore decrypts and checks like Verify while extracting, confined to
// dir (created if missing) with os.Root: entries are written under a
// staging directory inside dir with temporary names, and only once the
// whole archive has verified are the top-level entries renamed into dir
// and reported. A failure before that removes the staging directory and
// restores nothing. Existing names in dir are not overwritten (an error).
// Names that are absolute or hold "..", symlinks whose target leaves dir,
// entries beneath a symlink, hard links and special files, and entries
// out of order or repeated are refused. With a custosage.Identity, set
// its Expect to m.Expect() so a stanza bound to another archive is
// refused before any unwrap.
//
// Setuid and setgid bits are not restored, nor owners (files belong to
// whoever restores), unless opts asks: an archive is data, and a restore
// run as root must not plant a setuid-root program or hand a file to
// another user because the archive says so.
func Restore(ctx context.Context, m *Manifest, archive, index io.Reader, identity age.Identity, dir string, opts RestoreOptions) (*Result, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	staging := ".custos-restore-" + hex.EncodeToString(rb[:])
	if err := root.Mkdir(staging, 0o700); err != nil {
		return nil, err
	}
	sroot, err := root.OpenRoot(staging)
	if err != nil {
		_ = root.Remove(staging)
		return nil, err
	}
	x := &extractor{root: sroot, made: map[string]bool{}, opts: opts}
	res, err := run(ctx, m, archive, index, identity, x)
	sroot.Close()
	if err == nil {
		err = x.commit(root, staging, res)
	}
	if rerr := root.RemoveAll(staging); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// run reads archive and index in lockstep.
func run(ctx context.Context, m *Manifest, archive, index io.Reader, identity age.Identity, x *extractor) (*Result, error) {
	start := time.Now()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	// Index: hash, decrypt, header.
	ich := &countingHash{dst: io.Discard, h: sha256.New()}
	index = io.TeeReader(index, ich)
	ir, err := age.Decrypt(index, identity)
	if err != nil {
		return nil, fmt.Errorf("archive: decrypting the index: %w", ageErr(err))
	}
	lines, idec, err := newIndexReader(ir, m.indexFormat())
	if err != nil {
		return nil, err
	}
	if idec != nil {
		defer idec.Close()
	}
	idx := &indexReader{s: bufio.NewScanner(lines)}
	idx.s.Buffer(make([]byte, 64<<10), 2*maxNameLen+4096)
	hdr, err := idx.next()
	if err != nil {
		return nil, err
	}
	if hdr.Format != m.indexFormat() || hdr.ArchiveID != m.ArchiveID || hdr.Dataset != m.Dataset {
		return nil, integrity("index header %q/%q/%q does not match the manifest's %s archive %s of dataset %s", hdr.Format, hdr.ArchiveID, hdr.Dataset, m.Format, m.ArchiveID, m.Dataset)
	}

	ach := &countingHash{dst: io.Discard, h: sha256.New()}
	archive = io.TeeReader(archive, ach)
	ar, err := age.Decrypt(archive, identity)
	if err != nil {
		return nil, fmt.Errorf("archive: decrypting the archive: %w", ageErr(err))
	}
	dec, err := newFrameReader(ar)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	if m.Stats.TarBytes <= 0 {
		return nil, integrity("the manifest declares no tar size to bound decompression with")
	}
	// The tar stream is exactly as long as the manifest (bound to the log)
	// says: no more is decompressed, whatever the frames claim.
	zr := &boundedReader{r: dec, left: m.Stats.TarBytes}
	tr := tar.NewReader(zr)
	pool := newFilePool(x, runtime.GOMAXPROCS(0))
	defer pool.wait()
	var d dirHandle // large files' directory
	defer d.close()
	res := &Result{}
	buf := make([]byte, 256<<10)
	links := map[string]bool{} // nothing may be archived beneath a symlink
	var prev string            // the previous entry's name
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := pool.failed(); err != nil {
			return nil, err
		}
		th, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr("archive", err)
		}
		want, err := idx.next()
		if err != nil {
			return nil, err
		}
		want.uid, want.gid = th.Uid, th.Gid
		if want.End {
			return nil, integrity("the archive has an entry %q the index does not list", th.Name)
		}
		if err := checkHeader(th, want); err != nil {
			return nil, err
		}
		if prev != "" && compareNames(prev, want.Name) >= 0 {
			return nil, integrity("entry %q follows %q: entries are out of order or repeated", want.Name, prev)
		}
		prev = want.Name
		for p := path.Dir(want.Name); p != "."; p = path.Dir(p) {
			if links[p] {
				return nil, integrity("entry %q lies beneath symlink %q", want.Name, p)
			}
		}
		if want.Type == TypeSymlink {
			links[want.Name] = true
		}
		if x != nil {
			if err := x.check(want); err != nil {
				return nil, err
			}
		}
		res.Entries++
		switch want.Type {
		case TypeDir:
			res.Dirs++
			if x != nil {
				if err := x.dir(want); err != nil {
					return nil, err
				}
			}
		case TypeSymlink:
			res.Symlinks++
			if x != nil {
				if err := x.symlink(want); err != nil {
					return nil, err
				}
			}
		case TypeFile:
			res.Files++
			res.Bytes += want.Size
			if want.Size <= smallFile {
				if err := pool.submit(want, tr); err != nil {
					return nil, err
				}
				continue
			}
			if err := x.largeFile(&d, want, tr, buf); err != nil {
				return nil, err
			}
		}
	}
	// Every file checked (and written) before the end is looked at.
	if err := pool.wait(); err != nil {
		return nil, err
	}
	// The tar end: what follows (record padding) must be zeros to the end
	// of the stream, which also makes age check its final chunk.
	if err := drainZeros(zr); err != nil {
		return nil, err
	}
	if zr.left != 0 {
		return nil, integrity("the tar stream is %d bytes shorter than the manifest declares", zr.left)
	}
	end, err := idx.next()
	if err != nil {
		return nil, err
	}
	if !end.End {
		return nil, integrity("the archive ends before entry %q the index lists", end.Name)
	}
	if end.Entries != res.Entries {
		return nil, integrity("the index's trailer counts %d entries, the archive has %d", end.Entries, res.Entries)
	}
	if idx.s.Scan() || idx.s.Err() != nil {
		if err := idx.s.Err(); err != nil {
			return nil, readErr("index", err)
		}
		return nil, integrity("data after the index's trailer")
	}
	if _, err := io.Copy(io.Discard, lines); err != nil {
		return nil, readErr("index", err)
	}
	if _, err := io.Copy(io.Discard, ir); err != nil {
		return nil, readErr("index", err)
	}
	// Both ciphertexts read to the end: compare with the manifest.
	if _, err := io.Copy(io.Discard, archive); err != nil {
		return nil, err
	}
	if got := ach.part(); got != m.Archive {
		return nil, integrity("archive ciphertext (%d bytes, SHA-256 %s) does not match the manifest (%d bytes, %s)", got.Size, got.SHA256, m.Archive.Size, m.Archive.SHA256)
	}
	if _, err := io.Copy(io.Discard, index); err != nil {
		return nil, err
	}
	if got := ich.part(); got != m.Index {
		return nil, integrity("index ciphertext (%d bytes, SHA-256 %s) does not match the manifest", got.Size, got.SHA256)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// ageErr keeps age's errors but marks payload failures as integrity ones.
func ageErr(err error) error {
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return err
	}
	if strings.Contains(err.Error(), "header") {
		return fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	return err
}

// readErr turns a failure reading the decrypted stream (age's chunk
// authentication, truncation, zstd, tar) into an integrity error.
func readErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("archive: %s: %w", what, err) // a local write failed
	}
	return integrity("%s: %v", what, err)
}

func drainZeros(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if slices.ContainsFunc(buf[:n], func(b byte) bool { return b != 0 }) {
			return integrity("data after the end of the tar stream")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readErr("archive end", err)
		}
	}
}

// checkHeader compares a tar header with its index entry.
func checkHeader(th *tar.Header, want IndexEntry) error {
	name := strings.TrimSuffix(th.Name, "/")
	if err := checkName(name); err != nil {
		return integrity("%v", err)
	}
	if name != want.Name {
		return integrity("the archive has entry %q where the index lists %q (reordered or substituted)", name, want.Name)
	}
	var typ string
	switch th.Typeflag {
	case tar.TypeDir:
		typ = TypeDir
	case tar.TypeReg:
		typ = TypeFile
	case tar.TypeSymlink:
		typ = TypeSymlink
	default:
		return integrity("entry %q: tar type %q is not one an archive holds", name, th.Typeflag)
	}
	fm := th.FileInfo().Mode() & modeMask
	switch {
	case typ != want.Type:
		return integrity("entry %q is a %s in the archive, a %s in the index", name, typ, want.Type)
	case fm != want.Mode:
		return integrity("entry %q: mode %v in the archive, %v in the index", name, fm, want.Mode)
	case !th.ModTime.Equal(want.MTime):
		return integrity("entry %q: mtime differs from the index", name)
	case typ == TypeFile && th.Size != want.Size:
		return integrity("entry %q: %d bytes in the archive, %d in the index", name, th.Size, want.Size)
	case typ == TypeSymlink && th.Linkname != want.Target:
		return integrity("entry %q: link target differs from the index", name)
	case typ == TypeFile && !sha256RE.MatchString(want.SHA256):
		return integrity("entry %q: the index has no SHA-256 for it", name)
	case typ == TypeSymlink:
		if err := checkLinkTarget(name, th.Linkname); err != nil {
			return integrity("%v", err)
		}
	}
	return nil
}

type indexReader struct {
	s *bufio.Scanner
}

func (ir *indexReader) next() (IndexEntry, error) {
	var e IndexEntry
	if !ir.s.Scan() {
		if err := ir.s.Err(); err != nil {
			return e, readErr("index", err)
		}
		return e, integrity("the index ends early")
	}
	dec := json.NewDecoder(bytes.NewReader(ir.s.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, integrity("index record: %v", err)
	}
	return e, nil
}

// boundedReader reads at most left bytes from r; past them it fails.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(b.r, one[:]); n > 0 {
			return 0, integrity("the archive decompresses to more than the tar size the manifest declares")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// extractor writes entries under a staging root.
type extractor struct {
	opts RestoreOptions
	root *os.Root
	dirs []IndexEntry    // to apply modes and mtimes last, deepest first
	made map[string]bool // directories that exist under root
}

// check makes e's parent directories (those not archived: the sources'
// own parents).
func (x *extractor) check(e IndexEntry) error {
	d := path.Dir(e.Name)
	if d == "." || x.made[d] {
		return nil
	}
	if err := x.root.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	for ; d != "." && !x.made[d]; d = path.Dir(d) {
		x.made[d] = true
	}
	return nil
}

func (x *extractor) dir(e IndexEntry) error {
	if err := x.root.Mkdir(e.Name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	if fi, err := x.root.Lstat(e.Name); err != nil || !fi.IsDir() {
		return integrity("entry %q: directory repeats another entry's name", e.Name)
	}
	x.dirs = append(x.dirs, e)
	x.made[e.Name] = true
	return nil
}

func (x *extractor) symlink(e IndexEntry) error {
	if err := x.root.Symlink(e.Target, e.Name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return integrity("entry %q repeats another entry's name", e.Name)
		}
		return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	if x.opts.KeepOwners {
		if err := x.root.Lchown(e.Name, e.uid, e.gid); err != nil {
			return fmt.Errorf("archive: restoring the owner of %q: %w", e.Name, err)
		}
	}
	return nil
}

// largeFile streams e's content from r through a hash (and, restoring,
// into its file), in the reader's goroutine; x may be nil (verify).
func (x *extractor) largeFile(d *dirHandle, e IndexEntry, r io.Reader, buf []byte) error {
	var dst io.Writer = io.Discard
	var f *os.File
	if x != nil {
		var err error
		if f, err = x.create(d, e); err != nil {
			return err
		}
		dst = f
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(dst, h), r, buf)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return readErr(fmt.Sprintf("entry %q", e.Name), err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		if f != nil {
			f.Close()
		}
		return integrity("entry %q: content does not match its SHA-256 in the index", e.Name)
	}
	if f == nil {
		return nil
	}
	return x.fileDone(d, f, e)
}

// commit moves the verified tree from staging into root, then applies the
// directories' modes and mtimes, deepest first.
func (x *extractor) commit(root *os.Root, staging string, res *Result) error {
	d, err := root.Open(staging)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := root.Lstat(n); err == nil {
			return fmt.Errorf("archive: restore: %q already exists in the restore directory; restore elsewhere or move it away (nothing was restored)", n)
		}
	}
	for _, n := range names {
		if err := root.Rename(staging+"/"+n, n); err != nil {
			return fmt.Errorf("archive: restore: moving %q into place: %w", n, err)
		}
		res.Restored = append(res.Restored, n)
	}
	for _, e := range slices.Backward(x.dirs) {
		if x.opts.KeepOwners { // before the mode: a chown clears setuid and setgid
			if err := root.Lchown(e.Name, e.uid, e.gid); err != nil {
				return fmt.Errorf("archive: restoring the owner of %q: %w", e.Name, err)
			}
		}
		if err := root.Chmod(e.Name, x.opts.mode(e)); err != nil {
			return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
		}
		if err := root.Chtimes(e.Name, e.MTime, e.MTime); err != nil {
			return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
		}
	}
	return nil
}
