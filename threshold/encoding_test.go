// Tests and fuzzers of the share and commitments encodings.

package threshold_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"

	"github.com/custos-eu/custos/threshold"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	// orderLE is ℓ, the smallest non-canonical scalar, little-endian.
	orderLE = leBytes(order, 32)
	// fieldPLE is p = 2^255-19, a non-canonical field element encoding.
	fieldPLE = mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	// oneLE encodes s = 1, which is odd ("negative") and so not a valid element.
	oneLE = mustHex("0100000000000000000000000000000000000000000000000000000000000000")
)

// rejectedShares returns share encodings the parser must reject, each
// derived from the valid encoding good.
func rejectedShares(good []byte) []rejected {
	with := func(f func(b []byte) []byte) string { return hex.EncodeToString(f(bytes.Clone(good))) }
	return []rejected{
		{"", "empty"},
		{with(func(b []byte) []byte { return b[:len(b)-1] }), "one byte short"},
		{with(func(b []byte) []byte { return append(b, 0) }), "trailing byte"},
		{with(func(b []byte) []byte { b[0] = 0x00; return b }), "version 0x00"},
		{with(func(b []byte) []byte { b[0] = 0x02; return b }), "version 0x02"},
		{with(func(b []byte) []byte { b[1], b[2] = 0, 0; return b }), "index 0"},
		{with(func(b []byte) []byte { b[1], b[2] = 1, 0; return b }), "index 256"},
		{with(func(b []byte) []byte { b[1], b[2] = 0xff, 0xff; return b }), "index 65535"},
		{with(func(b []byte) []byte { copy(b[3:], orderLE); return b }), "S = group order"},
		{with(func(b []byte) []byte { copy(b[35:], orderLE); return b }), "R = group order"},
		{with(func(b []byte) []byte { copy(b[3:35], bytes.Repeat([]byte{0xff}, 32)); return b }), "S = 2^256-1"},
		{with(func(b []byte) []byte { b[66] |= 0x80; return b }), "R with top bit set"},
	}
}

// rejectedCommitments returns commitments encodings the parser must reject,
// each derived from the valid t=2 encoding good.
func rejectedCommitments(good []byte) []rejected {
	with := func(f func(b []byte) []byte) string { return hex.EncodeToString(f(bytes.Clone(good))) }
	c1 := func(e []byte) func(b []byte) []byte {
		return func(b []byte) []byte { copy(b[34:], e); return b }
	}
	topBit := func(b []byte) []byte { b[len(b)-1] |= 0x80; return b }
	return []rejected{
		{"", "empty"},
		{"01", "version only"},
		{"0100", "t = 0"},
		{with(func(b []byte) []byte { b[0] = 0x02; return b }), "version 0x02"},
		{with(func(b []byte) []byte { return b[:len(b)-1] }), "one byte short"},
		{with(func(b []byte) []byte { return append(b, 0) }), "trailing byte"},
		{with(func(b []byte) []byte { b[1] = 1; return b }), "t = 1 with two elements"},
		{with(func(b []byte) []byte { b[1] = 3; return b }), "t = 3 with two elements"},
		{with(c1(make([]byte, 32))), "C_1 is the identity"},
		{with(c1(fieldPLE)), "C_1 is non-canonical (p)"},
		{with(c1(oneLE)), "C_1 is negative (s = 1)"},
		{with(c1(notOnCurve())), "C_1 does not decode (no square root)"},
		{with(topBit), "C_1 with top bit set"},
	}
}

// notOnCurve returns the first even canonical s that does not decode.
func notOnCurve() []byte {
	for s := int64(2); ; s += 2 {
		b := leBytes(big.NewInt(s), 32)
		if r255.NewElement().UnmarshalBinary(b) != nil {
			return b
		}
	}
}

type rejected struct {
	Hex string `json:"hex"`
	Why string `json:"why"`
}

func goodEncodings(t testing.TB) (share, commitments []byte) {
	_, d := mustDeal(t, drbg([]byte("encoding")), 2, 3)
	share, err := d.Shares[1].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	commitments, err = d.Commitments.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return share, commitments
}

func TestShareEncoding(t *testing.T) {
	if threshold.ShareLen != 67 {
		t.Fatalf("ShareLen = %d, want 67", threshold.ShareLen)
	}
	_, d := mustDeal(t, rand.Reader, 3, 5)
	for i := range d.Shares {
		b, err := d.Shares[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 67 || b[0] != 0x01 || b[1] != 0 || b[2] != byte(i+1) {
			t.Fatalf("share %d encodes as %x", i+1, b)
		}
		var s threshold.Share
		if err := s.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if s.Index != d.Shares[i].Index || !s.S.IsEqual(d.Shares[i].S) || !s.R.IsEqual(d.Shares[i].R) {
			t.Fatalf("share %d does not round-trip", i+1)
		}
		if err := threshold.Verify(d.Commitments, &s); err != nil {
			t.Fatalf("parsed share %d: %v", i+1, err)
		}
	}
	for _, s := range []threshold.Share{
		{}, {Index: 1}, {Index: 0, S: r255.NewScalar(), R: r255.NewScalar()},
		{Index: 256, S: r255.NewScalar(), R: r255.NewScalar()},
	} {
		if _, err := s.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary of invalid share %d succeeded", s.Index)
		}
	}
}

func TestShareParseRejects(t *testing.T) {
	good, _ := goodEncodings(t)
	for _, r := range rejectedShares(good) {
		orig := threshold.Share{Index: 9, S: r255.NewScalar().SetUint64(5), R: r255.NewScalar().SetUint64(6)}
		s := orig
		err := s.UnmarshalBinary(mustHex(r.Hex))
		var pe *threshold.ParseError
		if !errors.As(err, &pe) || pe.What != "share" {
			t.Errorf("%s: error %v, want *ParseError for share", r.Why, err)
		}
		if s.Index != orig.Index || s.S != orig.S || s.R != orig.R {
			t.Errorf("%s: failed parse changed the share", r.Why)
		}
	}
}

func TestCommitmentsEncoding(t *testing.T) {
	for _, tt := range []int{1, 3, threshold.MaxShares} {
		_, d := mustDeal(t, rand.Reader, tt, threshold.MaxShares)
		b, err := d.Commitments.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 2+32*tt || b[0] != 0x01 || b[1] != byte(tt) {
			t.Fatalf("t=%d: commitments encode as %d bytes starting %x", tt, len(b), b[:2])
		}
		c, err := threshold.ParseCommitments(b)
		if err != nil {
			t.Fatal(err)
		}
		if c.Threshold() != tt {
			t.Fatalf("parsed threshold %d, want %d", c.Threshold(), tt)
		}
		for j := range c {
			if !c[j].IsEqual(d.Commitments[j]) {
				t.Fatalf("t=%d: C_%d does not round-trip", tt, j)
			}
		}
	}
	for _, c := range []threshold.Commitments{nil, {nil}, {r255.Identity()}, make(threshold.Commitments, 256)} {
		if _, err := c.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary of invalid commitments (len %d) succeeded", len(c))
		}
	}
}

func TestCommitmentsParseRejects(t *testing.T) {
	_, good := goodEncodings(t)
	for _, r := range rejectedCommitments(good) {
		c, err := threshold.ParseCommitments(mustHex(r.Hex))
		var pe *threshold.ParseError
		if !errors.As(err, &pe) || pe.What != "commitments" || c != nil {
			t.Errorf("%s: got %v, %v; want nil, *ParseError for commitments", r.Why, c, err)
		}
	}
}

// TestCirclDecodersAreStrict pins the circl behaviour the parsers rely on:
// scalar and element decoding reject non-canonical encodings.
func TestCirclDecodersAreStrict(t *testing.T) {
	lMinus1 := leBytes(new(big.Int).Sub(order, big.NewInt(1)), 32)
	if err := r255.NewScalar().UnmarshalBinary(lMinus1); err != nil {
		t.Fatalf("ℓ-1 rejected: %v", err)
	}
	for _, b := range [][]byte{orderLE, leBytes(new(big.Int).Add(order, big.NewInt(1)), 32), bytes.Repeat([]byte{0xff}, 32), make([]byte, 31), make([]byte, 33)} {
		if err := r255.NewScalar().UnmarshalBinary(b); err == nil {
			t.Errorf("scalar %x accepted", b)
		}
	}
	g, _ := r255.Generator().MarshalBinary()
	gTop := bytes.Clone(g)
	gTop[31] |= 0x80
	for _, b := range [][]byte{fieldPLE, oneLE, gTop, notOnCurve(), g[:31]} {
		if err := r255.NewElement().UnmarshalBinary(b); err == nil {
			t.Errorf("element %x accepted", b)
		}
	}
	if err := r255.NewElement().UnmarshalBinary(make([]byte, 32)); err != nil {
		t.Errorf("identity rejected by circl: %v (ParseCommitments checks it itself)", err)
	}
}

func FuzzParseShare(f *testing.F) {
	good, _ := goodEncodings(f)
	f.Add(good)
	for _, r := range rejectedShares(good) {
		f.Add(mustHex(r.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s threshold.Share
		if err := s.UnmarshalBinary(b); err != nil {
			var pe *threshold.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		out, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted share does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted %x, re-marshals to %x", b, out)
		}
	})
}

func FuzzParseCommitments(f *testing.F) {
	_, good := goodEncodings(f)
	f.Add(good)
	for _, r := range rejectedCommitments(good) {
		f.Add(mustHex(r.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := threshold.ParseCommitments(b)
		if err != nil {
			var pe *threshold.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if c != nil {
				t.Fatal("commitments returned with an error")
			}
			return
		}
		out, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted commitments do not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted %x, re-marshals to %x", b, out)
		}
	})
}
