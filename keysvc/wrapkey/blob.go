// The blob's byte format: Blob, its one strict parser, and its encoder.

package wrapkey

import (
	"encoding/binary"
	"fmt"
)

// SuiteXWingSHA256AES256GCM is the format's suite id for HPKE with KEM
// X-Wing (0x647a), KDF HKDF-SHA256 (0x0001) and AEAD AES-256-GCM (0x0002).
const SuiteXWingSHA256AES256GCM uint16 = 1

// FormatVersion is the format version byte this package reads and writes.
const FormatVersion = 1

// Magic opens every blob.
const Magic = "CSTW"

// Sizes and bounds of the format.
const (
	SeedSize      = 32   // KEK version private key (X-Wing seed)
	PublicKeySize = 1216 // X-Wing public key
	EncSize       = 1120 // X-Wing encapsulated key
	TagSize       = 16   // AES-256-GCM tag
	MaxKEKIDLen   = 64   // KEK id bytes; at least 1
	MinDEKSize    = 1
	MaxDEKSize    = 4096
	// MaxBlobSize is the largest blob: the longest KEK id, the largest
	// enc of a known suite, the largest data key.
	MaxBlobSize = fixedBeforeID + MaxKEKIDLen + fixedAfterID + EncSize + 4 + MaxDEKSize + TagSize
)

// Fixed field sizes around the KEK id: magic, version, suite and id length
// before it; KEK version and enc length after it.
const (
	fixedBeforeID = 4 + 1 + 2 + 1
	fixedAfterID  = 4 + 2
)

// Blob is a parsed wrapped key.
type Blob struct {
	Suite      uint16
	KEKID      string
	KEKVersion uint32
	Enc        []byte // HPKE encapsulated key (1120 bytes for X-Wing)
	Ciphertext []byte // AEAD ciphertext of the DEK incl. tag
}

// ParseError reports a malformed blob: the offset of the field at fault and
// what is wrong with it.
type ParseError struct {
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("wrapkey: malformed blob at byte %d: %s", e.Offset, e.Msg)
}

func parseErr(off int, format string, args ...any) *ParseError {
	return &ParseError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// encSize returns the enc size of a known suite, or false.
func encSize(suite uint16) (int, bool) {
	switch suite {
	case SuiteXWingSHA256AES256GCM:
		return EncSize, true
	}
	return 0, false
}

// Parse parses a blob strictly: every field in range, nothing after the
// ciphertext. It returns a *ParseError for anything else. The Blob does not
// alias b.
func Parse(b []byte) (*Blob, error) {
	r := reader{b: b}
	magic, err := r.next(len(Magic), "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, parseErr(0, "bad magic, not a wrapped key")
	}
	off := r.off
	v, err := r.next(1, "format version")
	if err != nil {
		return nil, err
	}
	if v[0] != FormatVersion {
		return nil, parseErr(off, "unsupported format version %d", v[0])
	}
	off = r.off
	s, err := r.next(2, "suite")
	if err != nil {
		return nil, err
	}
	suite := binary.BigEndian.Uint16(s)
	wantEnc, ok := encSize(suite)
	if !ok {
		return nil, parseErr(off, "unsupported suite %d", suite)
	}
	off = r.off
	n, err := r.next(1, "kek id length")
	if err != nil {
		return nil, err
	}
	if n[0] == 0 || n[0] > MaxKEKIDLen {
		return nil, parseErr(off, "kek id length %d not in 1..%d", n[0], MaxKEKIDLen)
	}
	off = r.off
	id, err := r.next(int(n[0]), "kek id")
	if err != nil {
		return nil, err
	}
	if i := badIDByte(id); i >= 0 {
		return nil, parseErr(off+i, "kek id byte 0x%02x not in [a-z0-9._-]", id[i])
	}
	off = r.off
	kv, err := r.next(4, "kek version")
	if err != nil {
		return nil, err
	}
	version := binary.BigEndian.Uint32(kv)
	if version == 0 {
		return nil, parseErr(off, "kek version 0")
	}
	off = r.off
	el, err := r.next(2, "enc length")
	if err != nil {
		return nil, err
	}
	if got := int(binary.BigEndian.Uint16(el)); got != wantEnc {
		return nil, parseErr(off, "enc length %d, suite %d needs %d", got, suite, wantEnc)
	}
	enc, err := r.next(wantEnc, "enc")
	if err != nil {
		return nil, err
	}
	off = r.off
	cl, err := r.next(4, "ciphertext length")
	if err != nil {
		return nil, err
	}
	ctLen := binary.BigEndian.Uint32(cl)
	if ctLen < MinDEKSize+TagSize || ctLen > MaxDEKSize+TagSize {
		return nil, parseErr(off, "ciphertext length %d not in %d..%d",
			ctLen, MinDEKSize+TagSize, MaxDEKSize+TagSize)
	}
	ct, err := r.next(int(ctLen), "ciphertext")
	if err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, parseErr(r.off, "%d trailing bytes", len(b)-r.off)
	}
	return &Blob{
		Suite:      suite,
		KEKID:      string(id),
		KEKVersion: version,
		Enc:        append([]byte(nil), enc...),
		Ciphertext: append([]byte(nil), ct...),
	}, nil
}

// reader hands out consecutive fields of a blob.
type reader struct {
	b   []byte
	off int
}

func (r *reader) next(n int, field string) ([]byte, error) {
	if len(r.b)-r.off < n {
		return nil, parseErr(r.off, "truncated %s: need %d bytes, have %d", field, n, len(r.b)-r.off)
	}
	f := r.b[r.off : r.off+n]
	r.off += n
	return f, nil
}

// Marshal encodes b. It does not validate: Parse(b.Marshal()) gives b back
// for any Blob that Parse or Wrap produced, and rejects the bytes of an
// invalid one (a field too long for its length prefix is written with
// length 0, which Parse refuses).
func (b *Blob) Marshal() []byte {
	out := b.appendAAD(make([]byte, 0, b.size()))
	ctLen := uint32(len(b.Ciphertext))
	if uint64(len(b.Ciphertext)) > 0xffffffff {
		ctLen = 0
	}
	out = binary.BigEndian.AppendUint32(out, ctLen)
	if ctLen == 0 {
		return out
	}
	return append(out, b.Ciphertext...)
}

// size is the encoded size of a valid b.
func (b *Blob) size() int {
	return fixedBeforeID + len(b.KEKID) + fixedAfterID + len(b.Enc) + 4 + len(b.Ciphertext)
}

// appendAAD appends the blob's bytes before the ciphertext length: the part
// HPKE authenticates as AAD.
func (b *Blob) appendAAD(out []byte) []byte {
	out = append(out, Magic...)
	out = append(out, FormatVersion)
	out = binary.BigEndian.AppendUint16(out, b.Suite)
	if len(b.KEKID) > 0xff {
		return append(out, 0) // Parse rejects an empty id
	}
	out = append(out, byte(len(b.KEKID)))
	out = append(out, b.KEKID...)
	out = binary.BigEndian.AppendUint32(out, b.KEKVersion)
	if len(b.Enc) > 0xffff {
		return binary.BigEndian.AppendUint16(out, 0) // no suite has an empty enc
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.Enc)))
	return append(out, b.Enc...)
}

// ValidateKEKID reports whether id is a valid KEK id for the format: 1..64
// bytes, each in [a-z0-9._-].
func ValidateKEKID(id string) error {
	if len(id) == 0 || len(id) > MaxKEKIDLen {
		return fmt.Errorf("wrapkey: kek id length %d not in 1..%d", len(id), MaxKEKIDLen)
	}
	if i := badIDByte([]byte(id)); i >= 0 {
		return fmt.Errorf("wrapkey: kek id %q: byte %d not in [a-z0-9._-]", id, i)
	}
	return nil
}

// badIDByte returns the index of the first byte of id outside
// [a-z0-9._-], or -1.
func badIDByte(id []byte) int {
	for i, c := range id {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return i
		}
	}
	return -1
}
