package archive

// Reading the sources ahead of the tar writer: the per-file system calls
// (open, fstat, read, close) and the SHA-256 of small files run on a few
// goroutines while Create writes the tar stream and the index in order on
// its own. On a tree of small files these calls, not compression, were
// what a backup waited for.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
)

// Read-ahead bounds: files up to readAheadMax bytes are read whole, as
// long as the files read and not yet written take at most readAheadBudget
// bytes (buffer capacities); larger ones are opened ahead and streamed by
// the writer. At most readAheadEntries entries are in flight.
const (
	readAheadMax     = 1 << 20
	readAheadBudget  = 4 << 20
	readAheadEntries = 64
)

// walkEntry is one entry of the walk, filled by a reader before done is
// closed.
type walkEntry struct {
	path string
	d    fs.DirEntry
	done chan struct{}

	err  error         // the walk's or the reader's, reported in walk order
	fi   fs.FileInfo   // regular files: fstat of the open file; others: lstat
	link string        // symlinks: the target
	f    io.ReadCloser // a regular file not read ahead: open, for the writer to stream
	data []byte        // a regular file read ahead: its content, from the pool
	sum  [sha256.Size]byte
}

// walker walks sources in order on one goroutine and reads ahead on
// readers goroutines; next hands the entries out in walk order.
type walker struct {
	out      chan *walkEntry
	work     chan *walkEntry
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	progress *atomic.Int64

	mu   sync.Mutex
	used int                             // bytes of read-ahead buffers taken
	kept int                             // bytes of the buffers in free
	free [len(readAheadClasses)][][]byte // buffers given back, by class
}

// readAheadClasses are the capacities of read-ahead buffers: few, so
// that a buffer given back is likely to be taken again (a file takes the
// smallest that holds it).
var readAheadClasses = [...]int{64 << 10, 256 << 10, readAheadMax}

func newWalker(ctx context.Context, sources []string, readers int, progress *atomic.Int64) *walker {
	w := &walker{
		out:      make(chan *walkEntry, readAheadEntries),
		work:     make(chan *walkEntry, readAheadEntries),
		stop:     make(chan struct{}),
		progress: progress,
	}
	w.wg.Add(1 + readers)
	go func() {
		defer w.wg.Done()
		defer close(w.work)
		defer close(w.out)
		for _, src := range sources {
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				e := &walkEntry{path: p, d: d, done: make(chan struct{})}
				if err != nil {
					err = fmt.Errorf("archive: walking: %w", err)
				} else {
					err = ctx.Err()
				}
				if err != nil {
					e.err = err
					close(e.done)
					w.send(w.out, e)
					return fs.SkipAll
				}
				if !w.send(w.out, e) {
					return fs.SkipAll
				}
				if !w.send(w.work, e) {
					close(e.done) // no reader will
					return fs.SkipAll
				}
				return nil
			})
			if err != nil || w.stopped() {
				return
			}
		}
	}()
	for range readers {
		go func() {
			defer w.wg.Done()
			for e := range w.work {
				if !w.stopped() {
					w.read(e)
				}
				close(e.done)
			}
		}()
	}
	return w
}

func (w *walker) send(ch chan *walkEntry, e *walkEntry) bool {
	select {
	case ch <- e:
		return true
	case <-w.stop:
		return false
	}
}

func (w *walker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// next returns the next entry in walk order once it is read, or nil at
// the end. The caller gives a regular file's data back with done.
func (w *walker) next() *walkEntry {
	e, ok := <-w.out
	if !ok {
		return nil
	}
	<-e.done
	return e
}

// close stops the walk and the readers, closing what they left open.
func (w *walker) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	for e := range w.out {
		<-e.done
		w.done(e)
	}
	w.wg.Wait()
}

// done gives back what e holds: its buffer, its open file.
func (w *walker) done(e *walkEntry) {
	if e.f != nil {
		e.f.Close()
		e.f = nil
	}
	if e.data != nil {
		w.putBuf(e.data)
		e.data = nil
	}
}

// read fills e: for a regular file, open it (not following a symlink
// that replaced it) and fstat it, then read it whole and hash it if it is
// small enough and the budget allows, or leave it open; for the others,
// lstat and readlink.
func (w *walker) read(e *walkEntry) {
	t := e.d.Type()
	if !t.IsRegular() {
		if e.fi, e.err = e.d.Info(); e.err != nil {
			e.err = fmt.Errorf("archive: %w", e.err)
			return
		}
		if e.fi.Mode().Type() == fs.ModeSymlink {
			if e.link, e.err = os.Readlink(e.path); e.err != nil {
				e.err = fmt.Errorf("archive: %w", e.err)
			}
		}
		return
	}
	f, fi, err := openRegular(e.path)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			err = fmt.Errorf("%s changed type during the backup", e.path)
		}
		e.err = fmt.Errorf("archive: %w", err)
		return
	}
	if !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s changed type during the backup", e.path)
	}
	if err != nil {
		f.Close()
		e.err = fmt.Errorf("archive: %w", err)
		return
	}
	e.fi = fi
	size := fi.Size()
	buf := w.getBuf(size)
	if buf == nil {
		e.f = f // large, or over the budget: the writer streams it
		return
	}
	n, err := io.ReadFull(f, buf)
	f.Close()
	if w.progress != nil {
		w.progress.Add(int64(n))
	}
	if err == io.ErrUnexpectedEOF || (err == io.EOF && size > 0) {
		err = fmt.Errorf("%s shrank from %d to %d bytes during the backup", e.path, size, n)
	}
	if err != nil {
		w.putBuf(buf)
		e.err = fmt.Errorf("archive: %w", err)
		return
	}
	e.data, e.sum = buf, sha256.Sum256(buf)
}

// sizeClass is the class of the smallest buffer that holds n ≤
// readAheadMax bytes.
func sizeClass(n int64) int {
	c := 0
	for int64(readAheadClasses[c]) < n {
		c++
	}
	return c
}

// getBuf returns a buffer of n bytes if n ≤ readAheadMax and the budget
// has room for its class, else nil. Buffers given back are kept for reuse
// (up to the budget's worth), not left to the garbage collector: a larger
// one serves if none of the class is free.
func (w *walker) getBuf(n int64) []byte {
	if n > readAheadMax {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := sizeClass(n); c < len(readAheadClasses); c++ {
		if f := w.free[c]; len(f) > 0 {
			if w.used+readAheadClasses[c] > readAheadBudget {
				return nil
			}
			b := f[len(f)-1]
			w.free[c] = f[:len(f)-1]
			w.kept -= cap(b)
			w.used += cap(b)
			return b[:n]
		}
	}
	c := sizeClass(n)
	if w.used+readAheadClasses[c] > readAheadBudget {
		return nil
	}
	w.used += readAheadClasses[c]
	return make([]byte, n, readAheadClasses[c])
}

func (w *walker) putBuf(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.used -= cap(b)
	if w.kept+cap(b) <= readAheadBudget {
		w.free[sizeClass(int64(cap(b)))] = append(w.free[sizeClass(int64(cap(b)))], b)
		w.kept += cap(b)
	}
}
