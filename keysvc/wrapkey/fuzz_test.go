// Fuzzers for the parser and for Unwrap on arbitrary bytes.

package wrapkey_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// fuzzBlobs are valid blobs for KEK "k" v1 under ctx1, wrapped with fixed
// randomness so the corpus is stable.
func fuzzBlobs(f *testing.F) [][]byte {
	pub := mustPub(f, seed1)
	var out [][]byte
	for i, dek := range [][]byte{dek32, {1}, make([]byte, 100)} {
		blob, err := wrapkey.Wrap(&detReader{label: string(rune('a' + i))}, pub, "k", 1, ctx1, dek)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, blob)
	}
	return out
}

// FuzzParse: Parse never panics, its errors are *ParseError with an offset
// inside the input, and whatever it accepts re-marshals to the same bytes.
func FuzzParse(f *testing.F) {
	for _, b := range fuzzBlobs(f) {
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(b[:20])
	}
	f.Add([]byte{})
	f.Add([]byte("CSTW\x01\x00\x01"))
	// A minimal header with a short enc length, to steer towards the checks.
	short := binary.BigEndian.AppendUint32([]byte("CSTW\x01\x00\x01\x01k"), 1)
	f.Add(binary.BigEndian.AppendUint16(short, 4))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := wrapkey.Parse(data)
		if err != nil {
			var pe *wrapkey.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T, want *ParseError: %v", err, err)
			}
			if _, ok := err.(*wrapkey.ParseError); !ok {
				t.Fatalf("error %T wraps a ParseError instead of being one", err)
			}
			if pe.Offset < 0 || pe.Offset > len(data) {
				t.Fatalf("offset %d outside a %d-byte input", pe.Offset, len(data))
			}
			if b != nil {
				t.Fatal("Parse returned a blob and an error")
			}
			return
		}
		if !bytes.Equal(b.Marshal(), data) {
			t.Fatal("Marshal(Parse(data)) != data")
		}
		if err := wrapkey.ValidateKEKID(b.KEKID); err != nil || b.KEKVersion == 0 {
			t.Fatalf("Parse accepted kek %q v%d", b.KEKID, b.KEKVersion)
		}
	})
}

// FuzzUnwrap: arbitrary bytes never panic Unwrap, and nothing opens except
// the exact valid blobs.
func FuzzUnwrap(f *testing.F) {
	valid := fuzzBlobs(f)
	for _, b := range valid {
		f.Add(b)
	}
	key, err := wrapkey.NewKey(seed1, "k", 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	check := func(t *testing.T, data []byte) {
		dek, err := key.Unwrap(data, ctx1)
		isValid := false
		for _, b := range valid {
			isValid = isValid || bytes.Equal(b, data)
		}
		if err == nil && !isValid {
			t.Fatalf("unwrapped a %d-byte dek from bytes that are no valid blob", len(dek))
		}
		if err != nil && isValid {
			t.Fatalf("valid blob failed: %v", err)
		}
		if err != nil {
			var pe *wrapkey.ParseError
			if !errors.As(err, &pe) && !errors.Is(err, wrapkey.ErrWrongKEK) &&
				!errors.Is(err, wrapkey.ErrWrongVersion) && !errors.Is(err, wrapkey.ErrOpen) {
				t.Fatalf("unexpected error %v", err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		// data also as an XOR patch over a valid blob, which keeps most
		// mutations parseable and so reaches the HPKE open.
		patched := bytes.Clone(valid[0])
		for i := 0; i < len(data) && i < len(patched); i++ {
			patched[i] ^= data[i]
		}
		check(t, patched)
	})
}
