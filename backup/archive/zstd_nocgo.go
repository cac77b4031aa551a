//go:build !cgo

package archive

// Without cgo, frames are compressed by klauspost/compress: the same
// format, bigger and slower than libzstd's (zstd_cgo.go). Build with
// CGO_ENABLED=1 (the Makefile does) for libzstd.

import (
	"github.com/klauspost/compress/zstd"
)

// Compressor names the zstd implementation archives are compressed with.
const Compressor = "klauspost/compress (pure Go: built without cgo)"

// buffersInC says that allocBuf's buffers are outside the Go heap.
const buffersInC = false

// allocBuf returns an empty buffer of capacity n: without cgo, on the Go
// heap (freeBuf leaves it to the garbage collector).
func allocBuf(n int) []byte { return make([]byte, 0, n) }

func freeBuf([]byte) {}

type goEncoder struct{ enc *zstd.Encoder }

// newFrameEncoder uses the fastest level, with entropy coding of blocks
// that find no match (which that level skips by default, storing text such
// as base64 uncompressed), and a window as large as the chunk.
func newFrameEncoder(chunk int) (frameEncoder, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(pow2AtLeast(chunk)))
	if err != nil {
		return nil, err
	}
	return goEncoder{enc}, nil
}

func (e goEncoder) appendFrame(dst, src []byte) ([]byte, error) {
	return e.enc.EncodeAll(src, dst), nil
}

func (e goEncoder) close() { e.enc.Close() }

func pow2AtLeast(n int) int {
	p := zstd.MinWindowSize
	for p < n {
		p <<= 1
	}
	return p
}
