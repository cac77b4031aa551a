package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// CreateOptions configures Create.
type CreateOptions struct {
	// ArchiveID; NewID(Now()) if empty.
	ArchiveID      string
	Dataset        string
	Classification string
	// Recipient encrypts the archive and, separately (its own file key,
	// its own wrap), the index: normally a custosage recipient whose
	// context names the dataset and the archive id. If it has a Receipt
	// method (the custosage recipients do), the manifest records the KEK
	// version and wrap log index from it.
	Recipient age.Recipient
	// ChunkSize of the independent zstd frames; DefaultChunkSize if 0.
	ChunkSize int
	// Workers compressing at once; GOMAXPROCS if 0.
	Workers int
	// Now; time.Now if nil.
	Now func() time.Time
	// Policy is the decision that let this archive go to its target,
	// recorded in the manifest.
	Policy *policy.Decision
	// Progress, if set, is added the bytes of file content read so far
	// (for a progress bar; the total is the sum of the files' sizes).
	Progress *atomic.Int64
}

// CreateBufferBytes is the most memory Create's chunk buffers take with
// chunks of chunk bytes compressed on workers goroutines: (2 × workers +
// 3) × chunk (see frameWriter). libzstd's state is small beside it (about
// 1 MiB per worker).
func CreateBufferBytes(chunk, workers int) int64 {
	return int64(2*workers+3) * int64(chunk)
}

// CreateHeapBytes is the part of CreateBufferBytes on the Go heap, for a
// soft memory limit: none with cgo, whose buffers are C memory; all of it
// without.
func CreateHeapBytes(chunk, workers int) int64 {
	if buffersInC {
		return 0
	}
	return CreateBufferBytes(chunk, workers)
}

// WrapContext is the context archives wrap their file keys under: the
// dataset, its classification and the archive id, so a stanza cannot be
// moved to another archive or dataset without the unwrap failing.
func WrapContext(dataset, classification, archiveID string) wrapkey.Context {
	c := wrapkey.Context{"dataset": dataset, "archive": archiveID, "purpose": "backup"}
	if classification != "" {
		c["classification"] = classification
	}
	return c
}

// Expect is what a custosage.Identity should require of the stanzas of
// the archive m describes (its Expect field): its dataset and archive id.
func (m *Manifest) Expect() map[string]string {
	return map[string]string{"dataset": m.Dataset, "archive": m.ArchiveID}
}

type receipter interface {
	Receipt() (custosage.Receipt, bool)
}

// Create archives sources (absolute, clean paths, none inside another) to
// archive, an age file of a zstd-compressed PAX tar, and writes the
// encrypted index (zstd-compressed JSON lines: entry names, modes, mtimes,
// per-file SHA-256) to index. It streams with bounded memory (CreateBufferBytes, plus a few MiB)
// and returns the manifest with sizes and the ciphertexts'
// SHA-256; the caller adds the policy decision and the upload receipt.
//
// Entry names are the sources' paths without the leading "/", so
// /srv/hr/a.txt is srv/hr/a.txt. Directories, regular files and symlinks
// are archived with their modes and mtimes (to the nanosecond, PAX);
// sockets, devices and FIFOs are skipped and counted.
func Create(ctx context.Context, sources []string, archive, index io.Writer, opts CreateOptions) (*Manifest, error) {
	if opts.Recipient == nil {
		return nil, errors.New("archive: no recipient")
	}
	if opts.Dataset == "" {
		return nil, errors.New("archive: no dataset")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := &Manifest{Format: ManifestFormat, ArchiveID: opts.ArchiveID, Dataset: opts.Dataset, Classification: opts.Classification, Created: now().UTC(), Policy: opts.Policy}
	if m.ArchiveID == "" {
		m.ArchiveID = NewID(m.Created)
	} else if !ValidID(m.ArchiveID) {
		return nil, fmt.Errorf("archive: archive id %q is malformed", m.ArchiveID)
	}
	chunk := opts.ChunkSize
	if chunk == 0 {
		chunk = DefaultChunkSize
	}
	if chunk < MinChunkSize || chunk > MaxChunkSize {
		return nil, fmt.Errorf("archive: chunk size %d: want %d..%d", chunk, MinChunkSize, MaxChunkSize)
	}
	m.ChunkSize = chunk
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	srcs, err := checkSources(sources)
	if err != nil {
		return nil, err
	}

	// Archive: tar → frames → age → hash → archive.
	ach := &countingHash{dst: archive, h: sha256.New()}
	aw, err := age.Encrypt(ach, opts.Recipient)
	if err != nil {
		return nil, fmt.Errorf("archive: encrypting the archive: %w", err)
	}
	if r, ok := opts.Recipient.(receipter); ok {
		if rc, ok := r.Receipt(); ok {
			m.KEK = KEKRef{ID: rc.KEKID, Version: rc.KEKVersion, WrapLogIndex: rc.LogIndex}
		}
	}
	fw, err := newFrameWriter(aw, chunk, workers)
	if err != nil {
		return nil, err
	}
	defer fw.abort()
	tw := tar.NewWriter(fw)

	// Index: JSON lines → zstd → age → hash → index.
	ich := &countingHash{dst: index, h: sha256.New()}
	iw, err := age.Encrypt(ich, opts.Recipient)
	if err != nil {
		return nil, fmt.Errorf("archive: encrypting the index: %w", err)
	}
	izw, err := newIndexWriter(iw)
	if err != nil {
		return nil, err
	}
	defer izw.Close()
	ib := bufio.NewWriterSize(izw, 64<<10)
	ienc := json.NewEncoder(ib)
	if err := ienc.Encode(IndexEntry{Format: IndexFormat, ArchiveID: m.ArchiveID, Dataset: m.Dataset}); err != nil {
		return nil, err
	}

	c := &creator{tw: tw, ienc: ienc, st: &m.Stats, buf: make([]byte, 256<<10), progress: opts.Progress}
	wk := newWalker(ctx, srcs, max(2, workers), opts.Progress)
	defer wk.close()
	for e := wk.next(); e != nil; e = wk.next() {
		err := c.add(e)
		wk.done(e)
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("archive: tar: %w", err)
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("archive: writing the archive: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("archive: writing the archive: %w", err)
	}
	m.Stats.TarBytes, m.Stats.ZstdBytes = fw.sizes()
	if err := ienc.Encode(IndexEntry{End: true, Entries: c.entries}); err != nil {
		return nil, err
	}
	if err := ib.Flush(); err != nil {
		return nil, fmt.Errorf("archive: writing the index: %w", err)
	}
	if err := izw.Close(); err != nil {
		return nil, fmt.Errorf("archive: writing the index: %w", err)
	}
	if err := iw.Close(); err != nil {
		return nil, fmt.Errorf("archive: writing the index: %w", err)
	}
	m.Archive, m.Index = ach.part(), ich.part()
	return m, nil
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// checkSources returns the sources sorted, refusing relative, unclean,
// root, missing or nested ones.
func checkSources(sources []string) ([]string, error) {
	if len(sources) == 0 {
		return nil, errors.New("archive: no source paths")
	}
	srcs := slices.Clone(sources)
	slices.SortFunc(srcs, func(a, b string) int { return compareNames(a[1:], b[1:]) })
	for i, s := range srcs {
		if !filepath.IsAbs(s) || filepath.Clean(s) != s || s == "/" {
			return nil, fmt.Errorf("archive: source %q: want an absolute, clean path other than /", s)
		}
		for _, prev := range srcs[:i] {
			if s == prev || strings.HasPrefix(s, prev+"/") {
				return nil, fmt.Errorf("archive: source %q is inside source %q", s, prev)
			}
		}
		if _, err := os.Lstat(s); err != nil {
			return nil, fmt.Errorf("archive: source: %w", err)
		}
	}
	return srcs, nil
}

type creator struct {
	tw       *tar.Writer
	ienc     *json.Encoder
	st       *Stats
	entries  int64
	buf      []byte
	progress *atomic.Int64
}

// add writes e to the tar stream and the index.
func (c *creator) add(e *walkEntry) error {
	if e.err != nil {
		return e.err
	}
	p, fi := e.path, e.fi
	name := strings.TrimPrefix(filepath.ToSlash(p), "/")
	if err := checkName(name); err != nil {
		return fmt.Errorf("archive: %v", err)
	}
	ie := IndexEntry{Name: name, Mode: fi.Mode() & modeMask, MTime: fi.ModTime().UTC()}
	switch t := fi.Mode().Type(); {
	case t == fs.ModeDir:
		ie.Type = TypeDir
	case t == 0:
		ie.Type = TypeFile
	case t == fs.ModeSymlink:
		ie.Type = TypeSymlink
		ie.Target = e.link
	default:
		c.st.SkippedSpecial++
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, e.link)
	if err != nil {
		return fmt.Errorf("archive: %s: %w", p, err)
	}
	hdr.Name, hdr.Format = name, tar.FormatPAX
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = ie.MTime, time.Time{}, time.Time{}
	if ie.Type == TypeDir {
		hdr.Name += "/"
	}
	switch ie.Type {
	case TypeDir:
		c.st.Dirs++
		if err := c.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive: tar: %w", err)
		}
	case TypeSymlink:
		c.st.Symlinks++
		if err := c.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive: tar: %w", err)
		}
	case TypeFile:
		if err := c.file(e, hdr, &ie); err != nil {
			return err
		}
	}
	c.entries++
	return c.ienc.Encode(ie)
}

// file writes a regular file: the header (its size from an fstat of the
// open file), then exactly that many bytes, read ahead and hashed by the
// walker or streamed and hashed here.
func (c *creator) file(e *walkEntry, hdr *tar.Header, ie *IndexEntry) error {
	hdr.Size = e.fi.Size()
	ie.Size = hdr.Size
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive: tar: %w", err)
	}
	if e.f == nil {
		if _, err := c.tw.Write(e.data); err != nil {
			return fmt.Errorf("archive: %s: %w", e.path, err)
		}
		ie.SHA256 = hex.EncodeToString(e.sum[:])
		c.st.Files++
		c.st.FileBytes += hdr.Size
		return nil
	}
	h := sha256.New()
	var r io.Reader = io.LimitReader(e.f, hdr.Size)
	if c.progress != nil {
		r = &countingReader{r: r, n: c.progress}
	}
	n, err := io.CopyBuffer(io.MultiWriter(c.tw, h), r, c.buf)
	if err != nil {
		return fmt.Errorf("archive: %s: %w", e.path, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("archive: %s shrank from %d to %d bytes during the backup", e.path, hdr.Size, n)
	}
	ie.SHA256 = hex.EncodeToString(h.Sum(nil))
	c.st.Files++
	c.st.FileBytes += n
	return nil
}
