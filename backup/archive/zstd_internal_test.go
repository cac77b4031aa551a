package archive

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// frameSink records each Write: frameWriter writes one frame per call.
type frameSink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *frameSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, bytes.Clone(p))
	return len(p), nil
}

func (s *frameSink) all() []byte { return bytes.Join(s.frames, nil) }

// mixedData is text, base64 of random bytes (compressible only by entropy
// coding: no repeats), random bytes and zeros, n bytes of each.
func mixedData(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of a custody ledger: archive, wrap, restore\n", i%977)
	}
	raw := make([]byte, n*3/4)
	rand.Read(raw)
	b.WriteString(base64.StdEncoding.EncodeToString(raw)[:n])
	rnd := make([]byte, n)
	rand.Read(rnd)
	b.Write(rnd)
	b.Write(make([]byte, n))
	return b.Bytes()
}

// compress runs data through a frameWriter in writes of odd sizes.
func compress(t *testing.T, data []byte, chunk, workers int) *frameSink {
	t.Helper()
	sink := &frameSink{}
	fw, err := newFrameWriter(sink, chunk, workers)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		k := min(len(p), 100003)
		if _, err := fw.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	in, out := fw.sizes()
	if in != int64(len(data)) || out != int64(len(sink.all())) {
		t.Fatalf("sizes: in %d out %d, want %d and %d", in, out, len(data), len(sink.all()))
	}
	return sink
}

// Every chunk is one independent, single-segment frame that says its
// content size and whose window is no larger than the chunk, so that a
// restore can bound the window; together they decode as one stream.
func TestFrames(t *testing.T) {
	t.Logf("compressor: %s", Compressor)
	const chunk = 256 << 10
	data := mixedData(600 << 10) // 2.4 MiB: 10 chunks, the last one short
	sink := compress(t, data, chunk, 3)
	if want := (len(data) + chunk - 1) / chunk; len(sink.frames) != want {
		t.Fatalf("%d frames, want %d", len(sink.frames), want)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, f := range sink.frames {
		var h zstd.Header
		if err := h.Decode(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := min(chunk, len(data)-i*chunk)
		if !h.SingleSegment || !h.HasFCS || h.FrameContentSize != uint64(want) || h.WindowSize > chunk {
			t.Errorf("frame %d: single segment %v, content size %d (want %d), window %d (want ≤ %d)", i, h.SingleSegment, h.FrameContentSize, want, h.WindowSize, chunk)
		}
		got, err := dec.DecodeAll(f, nil)
		if err != nil || !bytes.Equal(got, data[i*chunk:i*chunk+want]) {
			t.Fatalf("frame %d does not decode alone: %v", i, err)
		}
	}
	r, err := newFrameReader(bytes.NewReader(sink.all()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the stream does not decode: %v", err)
	}
}

// Incompressible chunks cost no more than zstd's block headers, and text
// that repeats nothing but uses few symbols (base64) is still compressed
// (entropy coding of literals): the pure Go encoder at its fastest level
// stored such blocks raw, so base64 "compressed" to 100%.
func TestIncompressibleChunks(t *testing.T) {
	const chunk = 1 << 20
	rnd := make([]byte, 3*chunk)
	rand.Read(rnd)
	b64 := []byte(base64.StdEncoding.EncodeToString(rnd)[:3*chunk])
	for _, tc := range []struct {
		name     string
		data     []byte
		maxRatio float64
	}{
		{"random", rnd, 1 + 1.0/256},
		{"base64", b64, 0.78}, // 6 bits of 8; zstd -1 gets 0.754
	} {
		sink := compress(t, tc.data, chunk, 2)
		out := sink.all()
		if ratio := float64(len(out)) / float64(len(tc.data)); ratio > tc.maxRatio {
			t.Errorf("%s: ratio %.4f, want ≤ %.4f", tc.name, ratio, tc.maxRatio)
		}
		r, err := newFrameReader(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("%s: round trip: %v", tc.name, err)
		}
	}
}

// zstdCLI finds the zstd command; the test is skipped without it unless
// CUSTOS_REQUIRE_SOFTHSM is set (make test installs it), then it fails.
func zstdCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("zstd")
	if err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("zstd CLI not found (apt-get install -y zstd)")
		}
		t.Skip("zstd CLI not found (apt-get install -y zstd)")
	}
	return p
}

// The stock zstd CLI decodes the frames (the disaster path: age -d | zstd
// -d | tar -x), at the largest chunk size too, with its default memory
// limit (a window of up to 128 MiB).
func TestFramesDecodeWithZstdCLI(t *testing.T) {
	bin := zstdCLI(t)
	for _, chunk := range []int{MinChunkSize, DefaultChunkSize, MaxChunkSize} {
		data := mixedData(3 << 20)
		sink := compress(t, data, chunk, 2)
		cmd := exec.Command(bin, "-d", "-q", "-c")
		cmd.Stdin = bytes.NewReader(sink.all())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("chunk %d: zstd -d: %v %s (%d bytes back of %d)", chunk, err, strings.TrimSpace(stderr.String()), len(got), len(data))
		}
	}
}

// A restore refuses a frame whose window is larger than maxFrameWindow,
// whatever the frame holds.
func TestFrameReaderBoundsTheWindow(t *testing.T) {
	// A frame by hand: magic, header without content size or single
	// segment, a window descriptor of 2^(10+16) = 64 MiB, and one last
	// block: 1000 × "x" as a run (RLE).
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3, 0x43, 0x1f, 0x00, 'x'}
	var h zstd.Header
	if err := h.Decode(frame); err != nil || h.WindowSize != 64<<20 || h.WindowSize <= maxFrameWindow {
		t.Fatalf("test frame's window %d (%v)", h.WindowSize, err)
	}
	if dec, _ := zstd.NewReader(nil); true {
		got, err := dec.DecodeAll(frame, nil)
		dec.Close()
		if err != nil || string(got) != strings.Repeat("x", 1000) {
			t.Fatalf("test frame: %q %v", got, err)
		}
	}
	r, err := newFrameReader(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("a frame with a 64 MiB window was decoded")
	}
}

// Write errors and a failing destination stop the writer with the error.
func TestFrameWriterDestinationFails(t *testing.T) {
	fw, err := newFrameWriter(failWriter{}, MinChunkSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	data := mixedData(200 << 10)
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		_, werr = fw.Write(data)
	}
	if cerr := fw.Close(); cerr == nil || (werr != nil && !strings.Contains(werr.Error(), "disk full")) || !strings.Contains(cerr.Error(), "disk full") {
		t.Fatalf("write %v, close %v", werr, cerr)
	}
	if _, err := fw.Write([]byte("x")); err == nil {
		t.Fatal("write after close")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

// However long the stream and however slow the destination, the writer
// allocates no more buffers than CreateBufferBytes counts, and Close frees
// them.
func TestFrameWriterBuffersBounded(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		slow := writerFunc(func(p []byte) (int, error) { time.Sleep(time.Millisecond); return len(p), nil })
		fw, err := newFrameWriter(slow, MinChunkSize, workers)
		if err != nil {
			t.Fatal(err)
		}
		data := mixedData(MinChunkSize)
		for range 10 {
			if _, err := fw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		fw.mu.Lock()
		n := len(fw.bufs)
		fw.mu.Unlock()
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d workers: %d buffers", workers, n)
		if max := CreateBufferBytes(MinChunkSize, workers) / MinChunkSize; int64(n) > max || n < workers {
			t.Errorf("%d workers: %d buffers, want at most %d", workers, n, max)
		}
		if fw.bufs != nil || fw.buf != nil {
			t.Errorf("%d workers: buffers left after Close", workers)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
