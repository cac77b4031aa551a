// This file holds the binary encodings of shares and commitments; the
// package doc defines them.

package threshold

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cloudflare/circl/group"
)

const (
	// encodingVersion is the first byte of every encoding.
	encodingVersion = 0x01
	scalarLen       = 32
	elementLen      = 32
	// ShareLen is the length of an encoded Share.
	ShareLen = 1 + 2 + 2*scalarLen
)

// ParseError is the one error type returned by the parsers in this package.
type ParseError struct {
	What string // "share" or "commitments"
	Err  error
}

func (e *ParseError) Error() string { return "threshold: parse " + e.What + ": " + e.Err.Error() }

func (e *ParseError) Unwrap() error { return e.Err }

// MarshalBinary encodes s as 0x01 || index (uint16 big-endian) || S || R.
// It fails if the index is not in 1..MaxShares or a scalar is missing.
func (s *Share) MarshalBinary() ([]byte, error) {
	if s.Index == 0 || s.Index > MaxShares {
		return nil, fmt.Errorf("threshold: marshal share: index %d not in 1..%d", s.Index, MaxShares)
	}
	if !isScalar(s.S) || !isScalar(s.R) {
		return nil, fmt.Errorf("threshold: marshal share %d: missing or foreign scalar", s.Index)
	}
	b := make([]byte, 3, ShareLen)
	b[0] = encodingVersion
	binary.BigEndian.PutUint16(b[1:], s.Index)
	for _, x := range []group.Scalar{s.S, s.R} {
		enc, err := x.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("threshold: marshal share %d: %w", s.Index, err)
		}
		b = append(b, enc...)
		clear(enc)
	}
	return b, nil
}

// UnmarshalBinary decodes a share encoded by MarshalBinary. It is strict:
// exact length, version 0x01, index in 1..MaxShares, canonical scalars. On
// error it returns *ParseError and leaves s unchanged.
func (s *Share) UnmarshalBinary(b []byte) error {
	perr := func(format string, a ...any) error {
		return &ParseError{What: "share", Err: fmt.Errorf(format, a...)}
	}
	if len(b) != ShareLen {
		return perr("length %d, want %d", len(b), ShareLen)
	}
	if b[0] != encodingVersion {
		return perr("unknown version 0x%02x", b[0])
	}
	idx := binary.BigEndian.Uint16(b[1:3])
	if idx == 0 || idx > MaxShares {
		return perr("index %d not in 1..%d", idx, MaxShares)
	}
	sc, r := g.NewScalar(), g.NewScalar()
	if err := sc.UnmarshalBinary(b[3 : 3+scalarLen]); err != nil {
		return perr("share %d: S is not a canonical scalar", idx)
	}
	if err := r.UnmarshalBinary(b[3+scalarLen:]); err != nil {
		sc.SetUint64(0)
		return perr("share %d: R is not a canonical scalar", idx)
	}
	s.Index, s.S, s.R = idx, sc, r
	return nil
}

// MarshalBinary encodes c as 0x01 || t (uint8) || C_0 || … || C_{t-1}. It
// fails on what ParseCommitments would reject: t outside 1..MaxShares, a
// missing or identity element.
func (c Commitments) MarshalBinary() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("threshold: marshal commitments: %w", err)
	}
	b := make([]byte, 2, 2+len(c)*elementLen)
	b[0] = encodingVersion
	b[1] = byte(len(c))
	for j, e := range c {
		enc, err := e.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("threshold: marshal commitment %d: %w", j, err)
		}
		b = append(b, enc...)
	}
	return b, nil
}

// ParseCommitments decodes commitments encoded by Commitments.MarshalBinary.
// It is strict: version 0x01, t in 1..MaxShares, exact length, canonical
// non-identity elements. Errors are *ParseError.
func ParseCommitments(b []byte) (Commitments, error) {
	perr := func(format string, a ...any) error {
		return &ParseError{What: "commitments", Err: fmt.Errorf(format, a...)}
	}
	if len(b) < 2 {
		return nil, perr("length %d, too short", len(b))
	}
	if b[0] != encodingVersion {
		return nil, perr("unknown version 0x%02x", b[0])
	}
	t := int(b[1])
	if t < 1 {
		return nil, perr("threshold 0")
	}
	if want := 2 + t*elementLen; len(b) != want {
		return nil, perr("length %d, want %d for t=%d", len(b), want, t)
	}
	c := make(Commitments, t)
	for j := range c {
		enc := b[2+j*elementLen : 2+(j+1)*elementLen]
		e := g.NewElement()
		if err := e.UnmarshalBinary(enc); err != nil {
			return nil, perr("commitment %d is not a valid element encoding", j)
		}
		if e.IsIdentity() {
			return nil, perr("commitment %d is the identity", j)
		}
		// The decoder checks canonicity; this makes "accepted bytes
		// re-marshal to themselves" hold whatever the decoder does.
		if re, err := e.MarshalBinary(); err != nil || !bytes.Equal(re, enc) {
			return nil, perr("commitment %d is not canonically encoded", j)
		}
		c[j] = e
	}
	return c, nil
}
