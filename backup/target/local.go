package target

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Local is a Target in a local directory. Writes are atomic and durable:
// the object is written to a temporary file, fsynced, linked to its name
// (which fails if the name exists: Local never overwrites, ErrExists) and
// the directory fsynced. Each object then gets a sidecar with its size,
// metadata and, when PutOptions.ChecksumSHA256 asks, its SHA-256 under
// ".custos-meta/" (an object a crash left without one lists with an empty
// SHA256). A directory cannot enforce retention or
// legal hold, so Put refuses them (ErrUnsupported). All access goes
// through an os.Root, so names cannot leave the directory.
type Local struct {
	root *os.Root
	dir  string
}

const (
	metaDir   = ".custos-meta"
	tmpPrefix = ".custos-tmp-"
)

var _ Target = (*Local)(nil)

// NewLocal opens (creating if missing, mode 0700) the directory dir.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if err := root.MkdirAll(metaDir, 0o700); err != nil {
		root.Close()
		return nil, err
	}
	return &Local{root: root, dir: dir}, nil
}

// Close releases the directory.
func (l *Local) Close() error { return l.root.Close() }

// Capabilities implements Target: a directory enforces no lock.
func (l *Local) Capabilities() Capabilities { return Capabilities{} }

type sidecar struct {
	SHA256   string            `json:"sha256"`
	Size     int64             `json:"size"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func metaName(name string) string { return metaDir + "/" + name + ".json" }

// Put implements Target.
func (l *Local) Put(ctx context.Context, name string, r io.Reader, opts PutOptions) (ObjectInfo, error) {
	if err := CheckName(name); err != nil {
		return ObjectInfo{}, err
	}
	if opts.Retention != nil || opts.LegalHold {
		return ObjectInfo{}, fmt.Errorf("local target %s: retention and legal hold: %w", l.dir, ErrUnsupported)
	}
	if _, err := l.root.Lstat(name); err == nil {
		return ObjectInfo{}, fmt.Errorf("local target: %s: %w", name, ErrExists)
	}
	dir := path.Dir(name)
	if dir != "." {
		if err := l.root.MkdirAll(dir, 0o700); err != nil {
			return ObjectInfo{}, err
		}
	}
	if err := l.root.MkdirAll(path.Dir(metaName(name)), 0o700); err != nil {
		return ObjectInfo{}, err
	}
	tmp, err := l.writeTemp(ctx, dir, r, opts)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer l.root.Remove(tmp.name) // after the link, or on failure
	// Link: atomic, and fails if the name exists, so of concurrent puts
	// exactly one wins; only the winner writes the sidecar.
	if err := l.root.Link(tmp.name, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ObjectInfo{}, fmt.Errorf("local target: %s: %w", name, ErrExists)
		}
		return ObjectInfo{}, err
	}
	if err := l.root.Remove(tmp.name); err != nil {
		return ObjectInfo{}, err
	}
	if err := l.syncDir(dir); err != nil {
		return ObjectInfo{}, err
	}
	sc := sidecar{SHA256: tmp.sha, Size: tmp.size, Metadata: opts.Metadata}
	b, _ := json.Marshal(sc)
	if err := l.writeAtomic(metaName(name), b); err != nil {
		return ObjectInfo{}, err
	}
	fi, err := l.root.Stat(name)
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Name: name, Size: tmp.size, Modified: fi.ModTime(), SHA256: tmp.sha, Metadata: opts.Metadata}, nil
}

type tempFile struct {
	name string
	sha  string
	size int64
}

func (l *Local) writeTemp(ctx context.Context, dir string, r io.Reader, opts PutOptions) (tempFile, error) {
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	name := path.Join(dir, tmpPrefix+hex.EncodeToString(rb[:]))
	f, err := l.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return tempFile{}, err
	}
	fail := func(err error) (tempFile, error) {
		f.Close()
		l.root.Remove(name)
		return tempFile{}, err
	}
	sw := &syncingWriter{f: f}
	var w io.Writer = sw
	var h hash.Hash
	if opts.ChecksumSHA256 {
		h = sha256.New()
		w = io.MultiWriter(sw, h)
	}
	n, err := io.Copy(w, ctxReader{ctx, r})
	if serr := sw.wait(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return fail(fmt.Errorf("local target: writing %s: %w", name, err))
	}
	if opts.Size > 0 && n != opts.Size {
		return fail(fmt.Errorf("local target: %d bytes read, %d announced", n, opts.Size))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		l.root.Remove(name)
		return tempFile{}, err
	}
	tf := tempFile{name: name, size: n}
	if h != nil {
		tf.sha = hex.EncodeToString(h.Sum(nil))
	}
	return tf, nil
}

// writeAtomic replaces name with b: temp file, fsync, rename, fsync dir.
func (l *Local) writeAtomic(name string, b []byte) error {
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	tmp := path.Join(path.Dir(name), tmpPrefix+hex.EncodeToString(rb[:]))
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.root.Rename(tmp, name)
	}
	if err != nil {
		l.root.Remove(tmp)
		return err
	}
	return l.syncDir(path.Dir(name))
}

func (l *Local) syncDir(dir string) error {
	d, err := l.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncEvery is how much a Put writes between background fsyncs, so the
// final fsync of a large object waits for the last few MiB only, not for
// the whole object to reach the disk.
const syncEvery = 32 << 20

// syncingWriter writes to f and, every syncEvery bytes, fsyncs it on
// another goroutine while writing goes on (one fsync at a time).
type syncingWriter struct {
	f       *os.File
	pending int64
	busy    chan struct{} // closed when the running fsync ends
	err     error         // first fsync error, read after busy is closed
}

func (s *syncingWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.pending += int64(n)
	if err != nil || s.pending < syncEvery {
		return n, err
	}
	if s.busy != nil {
		select {
		case <-s.busy:
		default:
			return n, nil // the last one is still running
		}
		if s.err != nil {
			return n, s.err
		}
	}
	s.pending = 0
	busy := make(chan struct{})
	s.busy = busy
	go func() {
		if err := s.f.Sync(); err != nil {
			s.err = err
		}
		close(busy)
	}()
	return n, nil
}

// wait waits for a running fsync and returns the first fsync error.
func (s *syncingWriter) wait() error {
	if s.busy != nil {
		<-s.busy
	}
	return s.err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (l *Local) info(name string) (ObjectInfo, error) {
	fi, err := l.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("local target: %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("local target: %s: %w", name, ErrNotFound)
	}
	oi := ObjectInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}
	if b, err := l.root.ReadFile(metaName(name)); err == nil {
		var sc sidecar
		if json.Unmarshal(b, &sc) == nil && sc.Size == fi.Size() {
			oi.SHA256, oi.Metadata = sc.SHA256, sc.Metadata
		}
	}
	return oi, nil
}

// Get implements Target.
func (l *Local) Get(ctx context.Context, name string) (io.ReadCloser, ObjectInfo, error) {
	if err := CheckName(name); err != nil {
		return nil, ObjectInfo{}, err
	}
	oi, err := l.info(name)
	if err != nil {
		return nil, oi, err
	}
	f, err := l.root.Open(name)
	if err != nil {
		return nil, oi, err
	}
	return f, oi, nil
}

// List implements Target.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := fs.WalkDir(l.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == metaDir || strings.HasPrefix(d.Name(), tmpPrefix) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		oi, err := l.info(p)
		if err != nil {
			return err
		}
		out = append(out, oi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete implements Target. A directory holds no locks, so only
// ErrNotFound can stop it.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if _, err := l.info(name); err != nil {
		return err
	}
	// The sidecar first: a crash between leaves an object without one
	// (its SHA-256 unknown), never a sidecar a later object could inherit.
	if err := l.root.Remove(metaName(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := l.root.Remove(name); err != nil {
		return err
	}
	return l.syncDir(path.Dir(name))
}
