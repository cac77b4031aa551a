package archive

// The archive's zstd stream: independent frames, one per chunk of tar,
// compressed on every core at once (frameWriter), and the bounded reader a
// restore decompresses them with (newFrameReader).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// frameEncoder compresses one chunk into one complete, independent zstd
// frame whose window is at most the chunk's length (so a restore bounds
// it by MaxChunkSize). Each compressing goroutine owns one: it is not safe
// for concurrent use. newFrameEncoder (zstd_cgo.go: libzstd; without cgo,
// zstd_nocgo.go: klauspost/compress) makes one for chunks of up to chunk
// bytes.
type frameEncoder interface {
	// appendFrame appends src's frame to dst and returns the result.
	appendFrame(dst, src []byte) ([]byte, error)
	// close frees the encoder's state (C memory for libzstd).
	close()
}

// frameWriter compresses what is written to it in chunks of chunkSize
// bytes, each an independent zstd frame, on `workers` goroutines at once,
// and writes the frames to dst in order. A plain zstd stream is one frame
// compressed on one core; independent frames use them all and decode as
// one stream (zstd concatenates frames).
//
// Memory: at most workers+1 chunks are between Write and dst (compressing,
// or compressed and waiting their turn), and one is being filled. A
// chunk's input buffer is reused as soon as it is compressed, its frame's
// buffer once written, so the buffers are at most workers+2 inputs and
// workers+1 outputs: (2 × workers + 3) × chunkSize, whatever the size of
// the stream. With cgo they are C memory (allocBuf), outside the Go heap:
// the garbage collector neither scans nor counts them, and an output
// buffer's pages are resident only as far as frames have filled them.
// Close frees them.
type frameWriter struct {
	dst     io.Writer
	chunk   int
	buf     []byte
	jobs    chan *frameJob
	ordered chan *frameJob
	inFree  chan []byte
	outFree chan []byte
	done    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	bufs     [][]byte // every buffer allocBuf gave, for Close to free
	err      error    // first error
	in, out  int64    // bytes in, compressed bytes out
	closed   bool
	closeErr error
}

type frameJob struct {
	in, out []byte
	err     error
	done    chan struct{}
}

func newFrameWriter(dst io.Writer, chunk, workers int) (*frameWriter, error) {
	encs := make([]frameEncoder, workers)
	for i := range encs {
		e, err := newFrameEncoder(chunk)
		if err != nil {
			for _, e := range encs[:i] {
				e.close()
			}
			return nil, err
		}
		encs[i] = e
	}
	// ordered holds the chunks after the one writeLoop holds: workers+1
	// chunks between Write and dst.
	w := &frameWriter{
		dst: dst, chunk: chunk,
		jobs:    make(chan *frameJob, workers),
		ordered: make(chan *frameJob, workers),
		inFree:  make(chan []byte, workers+2),
		outFree: make(chan []byte, workers+1),
		done:    make(chan struct{}),
	}
	w.buf = w.getBuf(w.inFree, chunk)
	for _, enc := range encs {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer enc.close()
			for j := range w.jobs {
				j.out, j.err = enc.appendFrame(w.getBuf(w.outFree, compressBound(w.chunk)), j.in)
				w.putBuf(w.inFree, j.in, w.chunk)
				j.in = nil
				close(j.done)
			}
		}()
	}
	go w.writeLoop()
	return w, nil
}

// compressBound is the largest frame a chunk of n bytes compresses to
// (ZSTD_COMPRESSBOUND, zstd.h), so that a frame buffer never grows.
func compressBound(n int) int {
	b := n + n>>8
	if n < 128<<10 {
		b += (128<<10 - n) >> 11
	}
	return b
}

func (w *frameWriter) getBuf(free chan []byte, size int) []byte {
	select {
	case b := <-free:
		return b[:0]
	default:
		b := allocBuf(size)
		w.mu.Lock()
		w.bufs = append(w.bufs, b)
		w.mu.Unlock()
		return b
	}
}

// putBuf returns b to free. A buffer an encoder grew (a Go slice: it
// misjudged its bound) is dropped; the one it replaced is freed by Close.
func (w *frameWriter) putBuf(free chan []byte, b []byte, size int) {
	if cap(b) != size {
		return
	}
	select {
	case free <- b:
	default:
	}
}

func (w *frameWriter) writeLoop() {
	defer close(w.done)
	for j := range w.ordered {
		<-j.done
		w.mu.Lock()
		if j.err != nil && w.err == nil {
			w.err = j.err
		}
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
		w.putBuf(w.outFree, j.out, compressBound(w.chunk))
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
	j := &frameJob{in: w.buf, done: make(chan struct{})}
	w.ordered <- j // blocks while workers+1 chunks are in flight
	w.jobs <- j
	w.buf = w.getBuf(w.inFree, w.chunk)
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
	w.closeErr = w.failed()
	// Nothing refers to the buffers any more: every job was written or
	// dropped, and w.buf is never used after Close.
	w.mu.Lock()
	for _, b := range w.bufs {
		freeBuf(b)
	}
	w.bufs, w.buf = nil, nil
	w.mu.Unlock()
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

// maxFrameWindow bounds the window a restore accepts. A frame's window is
// at most its chunk (frameEncoder's contract; single-segment frames, whose
// window is their content size), and chunks are at most MaxChunkSize; the
// bound leaves a factor of 2 over that, and the decoder's memory is
// bounded at 4 times it.
const maxFrameWindow = 2 * MaxChunkSize

func newFrameReader(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(maxFrameWindow), zstd.WithDecoderMaxMemory(4*maxFrameWindow), zstd.WithDecoderConcurrency(2))
}

// The index is JSON lines compressed as one zstd stream (pure Go: it is
// small beside the archive, a few hundred bytes per entry before
// compression, about a quarter of that after), with a window of
// indexWindow; a restore accepts at most maxIndexWindow.
const (
	indexWindow    = 1 << 20
	maxIndexWindow = 8 << 20
)

// newIndexWriter compresses at the fastest level with entropy coding of
// blocks without matches (the hex SHA-256s are most of an index): on the
// index of 285 MiB of source files, 4.8 MB → 0.96 MB in 15-25 ms, smaller
// and quicker than the default level (0.99 MB, 27-44 ms).
func newIndexWriter(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(indexWindow), zstd.WithLowerEncoderMem(true))
}

// zstdMagic starts every zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// newIndexReader reads an index's JSON lines from r, the decrypted index of
// format format: decompressed for IndexFormat, as they are for
// IndexFormatV1. The caller closes the decoder it returns (nil for V1).
func newIndexReader(r io.Reader, format string) (io.Reader, *zstd.Decoder, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, readErr("index", err)
	}
	compressed := bytes.Equal(head, zstdMagic)
	if format == IndexFormatV1 {
		if compressed {
			return nil, nil, integrity("the index is compressed, but its manifest is of format %s", ManifestFormatV1)
		}
		return br, nil, nil
	}
	if !compressed {
		return nil, nil, integrity("the index is not zstd-compressed, as format %s wants", format)
	}
	dec, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxIndexWindow), zstd.WithDecoderMaxMemory(4*maxIndexWindow),
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, err
	}
	return dec, dec, nil
}
