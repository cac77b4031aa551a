package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
)

// smallFile is the size up to which a file's content is read into a
// buffer and handed to the file workers, which hash it and (restoring)
// write it while the reader goes on decrypting and decompressing. Larger
// files stream through the reader's goroutine.
const smallFile = 1 << 20

// filePool checks and writes small files on a few goroutines. It holds at
// most about 3 × workers + 1 buffers of smallFile bytes. The first failure
// stops the work; err reports it once every worker has stopped.
type filePool struct {
	x    *extractor // nil: verify only
	jobs chan fileJob
	free chan []byte
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error
}

type fileJob struct {
	e    IndexEntry
	data []byte
}

func newFilePool(x *extractor, workers int) *filePool {
	p := &filePool{x: x, jobs: make(chan fileJob, 2*workers), free: make(chan []byte, 3*workers+1)}
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *filePool) work() {
	defer p.wg.Done()
	var d dirHandle
	defer d.close()
	for j := range p.jobs {
		if p.failed() == nil {
			if err := p.file(&d, j); err != nil {
				p.fail(err)
			}
		}
		p.put(j.data)
	}
}

func (p *filePool) file(d *dirHandle, j fileJob) error {
	sum := sha256.Sum256(j.data)
	if hex.EncodeToString(sum[:]) != j.e.SHA256 {
		return integrity("entry %q: content does not match its SHA-256 in the index", j.e.Name)
	}
	if p.x == nil {
		return nil
	}
	f, err := p.x.create(d, j.e)
	if err != nil {
		return err
	}
	if _, err := f.Write(j.data); err != nil {
		f.Close()
		return fmt.Errorf("archive: restoring %q: %w", j.e.Name, err)
	}
	return p.x.fileDone(d, f, j.e)
}

// get returns a buffer of n ≤ smallFile bytes.
func (p *filePool) get(n int64) []byte {
	select {
	case b := <-p.free:
		return b[:n]
	default:
		return make([]byte, n, smallFile)
	}
}

func (p *filePool) put(b []byte) {
	select {
	case p.free <- b:
	default:
	}
}

// submit reads e's content (e.Size ≤ smallFile bytes) from r and queues it.
func (p *filePool) submit(e IndexEntry, r io.Reader) error {
	b := p.get(e.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		p.put(b)
		return readErr(fmt.Sprintf("entry %q", e.Name), err)
	}
	p.jobs <- fileJob{e: e, data: b}
	return nil
}

func (p *filePool) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *filePool) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// wait lets the queued files finish and returns the first failure.
func (p *filePool) wait() error {
	if p.jobs != nil {
		close(p.jobs)
		p.wg.Wait()
		p.jobs = nil
	}
	return p.failed()
}

// dirHandle keeps the directory of the last file written open, so the
// next file in it (archives list a directory's files together) is
// created, chmod-ed and timed with one-component operations instead of a
// walk from the staging root for each.
type dirHandle struct {
	name string
	root *os.Root
}

func (d *dirHandle) open(x *extractor, dir string) (*os.Root, error) {
	if d.root != nil && d.name == dir {
		return d.root, nil
	}
	d.close()
	r, err := x.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	d.name, d.root = dir, r
	return r, nil
}

func (d *dirHandle) close() {
	if d.root != nil {
		d.root.Close()
		d.root = nil
	}
}

// create creates e's file (new, owner-only until fileDone sets its mode).
func (x *extractor) create(d *dirHandle, e IndexEntry) (*os.File, error) {
	r, err := d.open(x, path.Dir(e.Name))
	if err != nil {
		return nil, fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	f, err := r.OpenFile(path.Base(e.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, integrity("entry %q repeats another entry's name", e.Name)
		}
		return nil, fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	return f, nil
}

// fileDone sets the mode and mtime of e's file f, written, and closes it.
func (x *extractor) fileDone(d *dirHandle, f *os.File, e IndexEntry) error {
	var err error
	if x.opts.KeepOwners { // before the mode: a chown clears setuid and setgid
		err = f.Chown(e.uid, e.gid)
	}
	if err == nil {
		err = f.Chmod(x.opts.mode(e))
	}
	if err == nil {
		err = d.root.Chtimes(path.Base(e.Name), e.MTime, e.MTime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive: restoring %q: %w", e.Name, err)
	}
	return nil
}
