//go:build cgo

package archive

// Frames compressed by libzstd, the reference C implementation, through
// cgo. The library is the copy github.com/DataDog/zstd bundles (linked in
// by the blank import below); that package's Go API sets only a level, so
// this file declares the few functions of zstd.h's stable API it calls
// (libzstd ≥ 1.4.0; the enum values are fixed by that API) to set the
// parameters one by one.

/*
#include <stddef.h>
#include <stdlib.h>

typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef enum {
	ZSTD_c_compressionLevel = 100,
	ZSTD_c_windowLog = 101,
	ZSTD_c_hashLog = 102,
	ZSTD_c_contentSizeFlag = 200,
	ZSTD_c_checksumFlag = 201
} ZSTD_cParameter;

ZSTD_CCtx* ZSTD_createCCtx(void);
size_t ZSTD_freeCCtx(ZSTD_CCtx* cctx);
size_t ZSTD_CCtx_setParameter(ZSTD_CCtx* cctx, ZSTD_cParameter param, int value);
size_t ZSTD_compress2(ZSTD_CCtx* cctx, void* dst, size_t dstCapacity, const void* src, size_t srcSize);
unsigned ZSTD_isError(size_t code);
const char* ZSTD_getErrorName(size_t code);
unsigned ZSTD_versionNumber(void);
*/
import "C"

import (
	"fmt"
	"math/bits"
	"unsafe"

	_ "github.com/DataDog/zstd" // libzstd itself
)

// Compressor names the zstd implementation archives are compressed with.
var Compressor = fmt.Sprintf("libzstd %d.%d.%d (cgo)", C.ZSTD_versionNumber()/10000, C.ZSTD_versionNumber()/100%100, C.ZSTD_versionNumber()%100)

// frameParams are libzstd's parameters for a chunk of chunk bytes: level
// 1 (the strategy and cost of zstd -1), with a window as large as the
// chunk (2 MiB by default instead of level 1's 512 KiB: source trees
// repeat themselves at longer distances) and a hash table of 2^15 entries
// instead of 2^14 (level 2's is 2^16): together about 6% more CPU than
// level 1 for 0.7% less on the generated corpus and 2% less on source
// files. Level 3's strategy (double fast) would save another 2.3% on
// generated data and 2.7% on source files for 15-20% more CPU, which the
// backup's speed target has no room for. No checksum: age authenticates
// every 64 KiB of the archive and the index holds every file's SHA-256.
// Measured in docs/agent.md ("Speed and memory").
func frameParams(chunk int) []cParam {
	return []cParam{
		{C.ZSTD_c_compressionLevel, 1},
		{C.ZSTD_c_windowLog, C.int(bits.Len(uint(chunk - 1)))},
		{C.ZSTD_c_hashLog, 15},
		{C.ZSTD_c_checksumFlag, 0},
		{C.ZSTD_c_contentSizeFlag, 1},
	}
}

// buffersInC says that allocBuf's buffers are outside the Go heap.
const buffersInC = true

// allocBuf returns an empty slice of C memory with capacity n, for
// freeBuf to free; chunk buffers live outside the Go heap (frameWriter).
func allocBuf(n int) []byte {
	p := C.malloc(C.size_t(n))
	if p == nil {
		panic(fmt.Sprintf("archive: cannot allocate a buffer of %d bytes", n))
	}
	return unsafe.Slice((*byte)(p), n)[:0]
}

func freeBuf(b []byte) { C.free(unsafe.Pointer(unsafe.SliceData(b))) }

type cParam struct {
	p C.ZSTD_cParameter
	v C.int
}

type cgoEncoder struct {
	cctx  *C.ZSTD_CCtx
	chunk int
}

func newFrameEncoder(chunk int) (frameEncoder, error) {
	cctx := C.ZSTD_createCCtx()
	if cctx == nil {
		return nil, fmt.Errorf("archive: libzstd: no memory for a compression context")
	}
	for _, p := range frameParams(chunk) {
		if r := C.ZSTD_CCtx_setParameter(cctx, p.p, p.v); C.ZSTD_isError(r) != 0 {
			C.ZSTD_freeCCtx(cctx)
			return nil, fmt.Errorf("archive: libzstd: parameter %d = %d: %s", p.p, p.v, C.GoString(C.ZSTD_getErrorName(r)))
		}
	}
	return &cgoEncoder{cctx: cctx, chunk: chunk}, nil
}

func (e *cgoEncoder) appendFrame(dst, src []byte) ([]byte, error) {
	if len(src) == 0 || len(src) > e.chunk {
		return dst, fmt.Errorf("archive: libzstd: chunk of %d bytes, want 1..%d", len(src), e.chunk)
	}
	n := len(dst)
	if bound := compressBound(len(src)); cap(dst)-n < bound {
		dst = append(dst[:cap(dst)], make([]byte, n+bound-cap(dst))...)
	}
	out := dst[n:cap(dst)]
	r := C.ZSTD_compress2(e.cctx, unsafe.Pointer(&out[0]), C.size_t(len(out)), unsafe.Pointer(&src[0]), C.size_t(len(src)))
	if C.ZSTD_isError(r) != 0 {
		return dst[:n], fmt.Errorf("archive: libzstd: %s", C.GoString(C.ZSTD_getErrorName(r)))
	}
	return dst[:n+int(r)], nil
}

func (e *cgoEncoder) close() {
	if e.cctx != nil {
		C.ZSTD_freeCCtx(e.cctx)
		e.cctx = nil
	}
}
