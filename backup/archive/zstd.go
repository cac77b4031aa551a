package archive

import (
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// frameWriter compresses what is written to it in chunks of chunkSize
// bytes, each an independent zstd frame, on `workers` goroutines at once,
// and writes the frames to dst in order. A plain zstd stream is one frame
// compressed on one core; independent frames use them all and decode as
// one stream (zstd concatenates frames). At most window chunks are in
// flight, so memory is bounded by about window × 2 × chunkSize.
type frameWriter struct {
	dst     io.Writer
	enc     *zstd.Encoder
	chunk   int
	buf     []byte
	jobs    chan *frameJob
	ordered chan *frameJob
	free    chan []byte
	done    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	err      error // first write error
	in, out  int64 // bytes in, compressed bytes out
	closed   bool
	closeErr error
}

type frameJob struct {
	in, out []byte
	done    chan struct{}
}

func newFrameWriter(dst io.Writer, level zstd.EncoderLevel, chunk, workers int) (*frameWriter, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(workers),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(pow2AtLeast(chunk)))
	if err != nil {
		return nil, err
	}
	window := workers + 1
	w := &frameWriter{
		dst: dst, enc: enc, chunk: chunk,
		jobs:    make(chan *frameJob, window),
		ordered: make(chan *frameJob, window),
		free:    make(chan []byte, 2*window+2),
		done:    make(chan struct{}),
	}
	w.buf = w.getBuf()
	for range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				j.out = w.enc.EncodeAll(j.in, j.out[:0])
				close(j.done)
			}
		}()
	}
	go w.writeLoop()
	return w, nil
}

func pow2AtLeast(n int) int {
	p := zstd.MinWindowSize
	for p < n {
		p <<= 1
	}
	return p
}

func (w *frameWriter) getBuf() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
		return make([]byte, 0, w.chunk)
	}
}

func (w *frameWriter) putBuf(b []byte) {
	if cap(b) < w.chunk || cap(b) > 2*w.chunk+1024 {
		return
	}
	select {
	case w.free <- b:
	default:
	}
}

func (w *frameWriter) writeLoop() {
	defer close(w.done)
	for j := range w.ordered {
		<-j.done
		w.mu.Lock()
		failed := w.err != nil
		w.mu.Unlock()
		if !failed {
			n, err := w.dst.Write(j.out)
			w.mu.Lock()
			w.out += int64(n)
			if err == nil && n != len(j.out) {
				err = io.ErrShortWrite
			}
			if err != nil && w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
		w.putBuf(j.in)
		w.putBuf(j.out)
	}
}

func (w *frameWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// submit hands the current chunk to the workers.
func (w *frameWriter) submit() {
	if len(w.buf) == 0 {
		return
	}
	j := &frameJob{in: w.buf, out: w.getBuf(), done: make(chan struct{})}
	w.ordered <- j // blocks while window chunks are in flight
	w.jobs <- j
	w.buf = w.getBuf()
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("archive: write after close")
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):w.chunk], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		w.in += int64(k)
		if len(w.buf) == w.chunk {
			w.submit()
			if err := w.failed(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// Close compresses what is left, waits for every frame to be written and
// returns the first error.
func (w *frameWriter) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	w.submit()
	close(w.ordered)
	close(w.jobs)
	w.wg.Wait()
	<-w.done
	w.enc.Close()
	w.closeErr = w.failed()
	return w.closeErr
}

// abort stops the goroutines without caring about errors.
func (w *frameWriter) abort() {
	if !w.closed {
		w.mu.Lock()
		if w.err == nil {
			w.err = errors.New("archive: aborted")
		}
		w.mu.Unlock()
		_ = w.Close()
	}
}

// sizes returns the bytes written in and compressed bytes out.
func (w *frameWriter) sizes() (in, out int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.in, w.out
}

// maxFrameWindow bounds the window a restore accepts: chunks are at most
// MaxChunkSize, and a single-segment frame's window is its content size.
const maxFrameWindow = 2 * MaxChunkSize

func newFrameReader(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(maxFrameWindow), zstd.WithDecoderMaxMemory(4*maxFrameWindow), zstd.WithDecoderConcurrency(2))
}
