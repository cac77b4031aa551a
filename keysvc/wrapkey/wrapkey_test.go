// Behaviour tests: round trips, the errors callers branch on, strict
// parsing, tampering, and benchmarks.

package wrapkey_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// testSeed returns a fixed 32-byte seed named by label.
func testSeed(label string) []byte {
	h := sha256.Sum256([]byte("wrapkey test seed " + label))
	return h[:]
}

// detReader is a deterministic byte stream: SHA-256(label || counter) blocks.
type detReader struct {
	label string
	n     uint64
	buf   []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(r.label), r.n))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

var (
	seed1 = testSeed("k1")
	ctx1  = wrapkey.Context{"dataset": "payroll", "classification": "restricted", "purpose": "backup"}
	dek32 = bytes.Repeat([]byte{0xd3}, 32)
)

func mustPub(t testing.TB, seed []byte) []byte {
	t.Helper()
	pub, err := wrapkey.PublicKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func mustWrap(t testing.TB, seed []byte, kekID string, version uint32, ctx wrapkey.Context, dek []byte) []byte {
	t.Helper()
	blob, err := wrapkey.Wrap(rand.Reader, mustPub(t, seed), kekID, version, ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kekID string
		ctx   wrapkey.Context
		dek   []byte
	}{
		{"typical", "payroll-kek", ctx1, dek32},
		{"nil context", "k", nil, dek32},
		{"empty value", "k.1_x-y", wrapkey.Context{"note": ""}, dek32},
		{"one byte dek", "k", ctx1, []byte{7}},
		{"largest dek", strings.Repeat("z", 64), ctx1, bytes.Repeat([]byte{1}, wrapkey.MaxDEKSize)},
		{"utf-8 context", "k", wrapkey.Context{"région": "île-de-france", "κλειδί": "τιμή"}, dek32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := mustWrap(t, seed1, tc.kekID, 7, tc.ctx, tc.dek)
			want := 4 + 1 + 2 + 1 + len(tc.kekID) + 4 + 2 + wrapkey.EncSize + 4 + len(tc.dek) + wrapkey.TagSize
			if len(blob) != want {
				t.Errorf("blob is %d bytes, want %d", len(blob), want)
			}
			if len(blob) > wrapkey.MaxBlobSize || tc.name == "largest dek" && len(blob) != wrapkey.MaxBlobSize {
				t.Errorf("blob is %d bytes, MaxBlobSize %d", len(blob), wrapkey.MaxBlobSize)
			}
			got, err := wrapkey.Unwrap(seed1, tc.kekID, 7, blob, tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.dek) {
				t.Fatal("unwrapped dek differs")
			}
			b, err := wrapkey.Parse(blob)
			if err != nil {
				t.Fatal(err)
			}
			if b.Suite != wrapkey.SuiteXWingSHA256AES256GCM || b.KEKID != tc.kekID || b.KEKVersion != 7 ||
				len(b.Enc) != wrapkey.EncSize || len(b.Ciphertext) != len(tc.dek)+wrapkey.TagSize {
				t.Errorf("parsed blob fields wrong: suite %d id %q v%d enc %d ct %d",
					b.Suite, b.KEKID, b.KEKVersion, len(b.Enc), len(b.Ciphertext))
			}
			if !bytes.Equal(b.Marshal(), blob) {
				t.Error("Marshal(Parse(blob)) != blob")
			}
		})
	}
}

func TestWrapIsRandomized(t *testing.T) {
	a := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	b := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	if bytes.Equal(a, b) {
		t.Fatal("two wraps of the same dek gave the same blob")
	}
}

func TestWrapDeterministicReader(t *testing.T) {
	pub := mustPub(t, seed1)
	wrap := func() []byte {
		r := bytes.NewReader(make([]byte, 64))
		blob, err := wrapkey.Wrap(r, pub, "k", 1, ctx1, dek32)
		if err != nil {
			t.Fatal(err)
		}
		if r.Len() != 0 {
			t.Errorf("wrap left %d of 64 random bytes unread", r.Len())
		}
		return blob
	}
	if !bytes.Equal(wrap(), wrap()) {
		t.Error("same randomness gave different blobs")
	}
	if _, err := wrapkey.Wrap(bytes.NewReader(make([]byte, 63)), pub, "k", 1, ctx1, dek32); err == nil {
		t.Error("wrap with 63 random bytes succeeded")
	}
}

func TestWrongContext(t *testing.T) {
	blob := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	with := func(edit func(wrapkey.Context)) wrapkey.Context {
		c := wrapkey.Context{}
		for k, v := range ctx1 {
			c[k] = v
		}
		edit(c)
		return c
	}
	for name, ctx := range map[string]wrapkey.Context{
		"changed value": with(func(c wrapkey.Context) { c["dataset"] = "payrol" }),
		"extra key":     with(func(c wrapkey.Context) { c["region"] = "eu-west" }),
		"extra empty":   with(func(c wrapkey.Context) { c["x"] = "" }),
		"missing key":   with(func(c wrapkey.Context) { delete(c, "purpose") }),
		"renamed key":   with(func(c wrapkey.Context) { c["Purpose"] = c["purpose"]; delete(c, "purpose") }),
		"value moved":   with(func(c wrapkey.Context) { c["dataset"], c["purpose"] = c["purpose"], c["dataset"] }),
		"nil":           nil,
	} {
		_, err := wrapkey.Unwrap(seed1, "k", 1, blob, ctx)
		if !errors.Is(err, wrapkey.ErrOpen) {
			t.Errorf("%s: got %v, want ErrOpen", name, err)
		}
	}
	// Length prefixes keep key/value boundaries apart.
	b2 := mustWrap(t, seed1, "k", 1, wrapkey.Context{"ab": "c"}, dek32)
	if _, err := wrapkey.Unwrap(seed1, "k", 1, b2, wrapkey.Context{"a": "bc"}); !errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("shifted boundary: got %v, want ErrOpen", err)
	}
}

func TestWrongKEK(t *testing.T) {
	blob := mustWrap(t, seed1, "k1", 3, ctx1, dek32)
	_, err := wrapkey.Unwrap(seed1, "k2", 3, blob, ctx1)
	if !errors.Is(err, wrapkey.ErrWrongKEK) {
		t.Errorf("other kek id: got %v, want ErrWrongKEK", err)
	}
	_, err = wrapkey.Unwrap(seed1, "k1", 2, blob, ctx1)
	if !errors.Is(err, wrapkey.ErrWrongVersion) {
		t.Errorf("other version: got %v, want ErrWrongVersion", err)
	}
	_, err = wrapkey.Unwrap(testSeed("other"), "k1", 3, blob, ctx1)
	if !errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("other seed: got %v, want ErrOpen", err)
	}
	// The id check comes before the seed is looked at.
	_, err = wrapkey.Unwrap(nil, "k2", 3, blob, ctx1)
	if !errors.Is(err, wrapkey.ErrWrongKEK) {
		t.Errorf("other kek id, no seed: got %v, want ErrWrongKEK", err)
	}
	for _, err := range []error{wrapkey.ErrWrongKEK, wrapkey.ErrWrongVersion, wrapkey.ErrOpen} {
		if !strings.HasPrefix(err.Error(), "wrapkey: ") {
			t.Errorf("sentinel %q lacks the package prefix", err)
		}
	}
	if !strings.Contains(wrapkey.ErrOpen.Error(), "wrong context or key, or blob was modified") {
		t.Errorf("ErrOpen message %q does not say what may be wrong", wrapkey.ErrOpen)
	}
}

// A blob edited to name another KEK or version parses and passes the id
// checks for that KEK, then fails to open: the header is authenticated.
func TestRelabelledBlob(t *testing.T) {
	blob := mustWrap(t, seed1, "ka", 1, ctx1, dek32)
	renamed := bytes.Clone(blob)
	renamed[9] = 'b' // "ka" -> "kb"
	if _, err := wrapkey.Unwrap(seed1, "kb", 1, renamed, ctx1); !errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("renamed kek: got %v, want ErrOpen", err)
	}
	bumped := bytes.Clone(blob)
	bumped[13] = 2 // version 1 -> 2
	if _, err := wrapkey.Unwrap(seed1, "ka", 2, bumped, ctx1); !errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("bumped version: got %v, want ErrOpen", err)
	}
}

func TestTruncated(t *testing.T) {
	blob := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	for n := 0; n < len(blob); n++ {
		b, err := wrapkey.Parse(blob[:n])
		var pe *wrapkey.ParseError
		if !errors.As(err, &pe) || b != nil {
			t.Fatalf("parse of first %d bytes: got %v, want *ParseError", n, err)
		}
		if pe.Offset < 0 || pe.Offset > n {
			t.Fatalf("parse of first %d bytes: offset %d out of range", n, pe.Offset)
		}
		if _, err := wrapkey.Unwrap(seed1, "k", 1, blob[:n], ctx1); !errors.As(err, &pe) {
			t.Fatalf("unwrap of first %d bytes: got %v, want *ParseError", n, err)
		}
	}
	if _, err := wrapkey.Parse(append(bytes.Clone(blob), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

// Every single bit flip of a valid blob fails, with a parse, id or open
// error, and no error message carries the seed or the DEK.
func TestBitFlips(t *testing.T) {
	dek := []byte("0123456789abcdef0123456789abcdef")
	blob := mustWrap(t, seed1, "k", 1, ctx1, dek)
	key, err := wrapkey.NewKey(seed1, "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	var parse, wrongID, open int
	for i := 0; i < len(blob)*8; i++ {
		bad := bytes.Clone(blob)
		bad[i/8] ^= 1 << (i % 8)
		got, err := key.Unwrap(bad, ctx1)
		var pe *wrapkey.ParseError
		switch {
		case err == nil:
			t.Fatalf("flipping bit %d: unwrap succeeded (dek equal: %v)", i, bytes.Equal(got, dek))
		case errors.As(err, &pe):
			parse++
		case errors.Is(err, wrapkey.ErrWrongKEK), errors.Is(err, wrapkey.ErrWrongVersion):
			wrongID++
		case errors.Is(err, wrapkey.ErrOpen):
			open++
		default:
			t.Fatalf("flipping bit %d: unexpected error %v", i, err)
		}
		msg := err.Error()
		if strings.Contains(msg, string(dek)) || strings.Contains(msg, hex.EncodeToString(dek)) ||
			strings.Contains(msg, hex.EncodeToString(seed1)) {
			t.Fatalf("error leaks secret: %s", msg)
		}
	}
	t.Logf("%d bit flips: %d parse errors, %d wrong kek/version, %d open failures", len(blob)*8, parse, wrongID, open)
	if parse == 0 || wrongID == 0 || open == 0 {
		t.Error("some error class never occurred; the test is not exercising all paths")
	}
}

func TestParseRejects(t *testing.T) {
	blob := mustWrap(t, seed1, "kek", 1, nil, dek32) // n = 3
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(blob)) }
	for _, tc := range []struct {
		name   string
		b      []byte
		offset int
	}{
		{"empty", nil, 0},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), 0},
		{"format version 0", edit(func(b []byte) []byte { b[4] = 0; return b }), 4},
		{"format version 2", edit(func(b []byte) []byte { b[4] = 2; return b }), 4},
		{"suite 0", edit(func(b []byte) []byte { b[6] = 0; return b }), 5},
		{"suite 2", edit(func(b []byte) []byte { b[6] = 2; return b }), 5},
		{"id length 0", edit(func(b []byte) []byte { b[7] = 0; return b }), 7},
		{"id length 65", edit(func(b []byte) []byte { b[7] = 65; return b }), 7},
		{"upper-case id", edit(func(b []byte) []byte { b[9] = 'E'; return b }), 9},
		{"slash in id", edit(func(b []byte) []byte { b[10] = '/'; return b }), 10},
		{"kek version 0", edit(func(b []byte) []byte { copy(b[11:], []byte{0, 0, 0, 0}); return b }), 11},
		{"enc length short", edit(func(b []byte) []byte { b[16]--; return b }), 15},
		{"enc length long", edit(func(b []byte) []byte { b[16]++; return b }), 15},
		{"ciphertext length 16", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[1137:], 16); return b[:1141+16] }), 1137},
		{"ciphertext length 4113", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1137:], 4113)
			return append(b[:1141], make([]byte, 4113)...)
		}), 1137},
		{"ciphertext length past end", edit(func(b []byte) []byte { b[1140]++; return b }), 1141},
		{"ciphertext length short", edit(func(b []byte) []byte { b[1140]--; return b }), len(blob) - 1},
		{"trailing bytes", append(bytes.Clone(blob), 1, 2), len(blob)},
	} {
		_, err := wrapkey.Parse(tc.b)
		var pe *wrapkey.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want *ParseError", tc.name, err)
			continue
		}
		if pe.Offset != tc.offset {
			t.Errorf("%s: offset %d, want %d (%v)", tc.name, pe.Offset, tc.offset, err)
		}
		if !strings.HasPrefix(err.Error(), "wrapkey: malformed blob at byte ") {
			t.Errorf("%s: message %q", tc.name, err)
		}
	}
}

func TestWrapRejects(t *testing.T) {
	pub := mustPub(t, seed1)
	badPub := bytes.Clone(pub)
	for i := 0; i < 2; i++ { // an ML-KEM coefficient of 0xfff, above q
		badPub[i] = 0xff
	}
	for _, tc := range []struct {
		name    string
		pub     []byte
		kekID   string
		version uint32
		ctx     wrapkey.Context
		dek     []byte
	}{
		{"empty kek id", pub, "", 1, nil, dek32},
		{"long kek id", pub, strings.Repeat("a", 65), 1, nil, dek32},
		{"upper-case kek id", pub, "Kek", 1, nil, dek32},
		{"colon in kek id", pub, "kek:1", 1, nil, dek32},
		{"version 0", pub, "k", 0, nil, dek32},
		{"empty dek", pub, "k", 1, nil, nil},
		{"huge dek", pub, "k", 1, nil, make([]byte, wrapkey.MaxDEKSize+1)},
		{"short public key", pub[:100], "k", 1, nil, dek32},
		{"invalid public key", badPub, "k", 1, nil, dek32},
		{"empty context key", pub, "k", 1, wrapkey.Context{"": "x"}, dek32},
		{"invalid utf-8 key", pub, "k", 1, wrapkey.Context{"\xff": "x"}, dek32},
		{"invalid utf-8 value", pub, "k", 1, wrapkey.Context{"k": "\xc3"}, dek32},
		{"long key", pub, "k", 1, wrapkey.Context{strings.Repeat("k", 129): ""}, dek32},
		{"long value", pub, "k", 1, wrapkey.Context{"k": strings.Repeat("v", 1025)}, dek32},
		{"too many entries", pub, "k", 1, manyEntries(33), dek32},
		{"too large context", pub, "k", 1, wrapkey.Context{
			"a": strings.Repeat("v", 1024), "b": strings.Repeat("v", 1024),
			"c": strings.Repeat("v", 1024), "d": strings.Repeat("v", 1024),
		}, dek32},
	} {
		if _, err := wrapkey.Wrap(rand.Reader, tc.pub, tc.kekID, tc.version, tc.ctx, tc.dek); err == nil {
			t.Errorf("%s: wrap succeeded", tc.name)
		} else if !strings.HasPrefix(err.Error(), "wrapkey: ") {
			t.Errorf("%s: message %q lacks the package prefix", tc.name, err)
		}
	}
	// The bounds themselves are allowed.
	if err := manyEntries(32).Validate(); err != nil {
		t.Errorf("32 entries: %v", err)
	}
	if err := (wrapkey.Context{strings.Repeat("k", 128): strings.Repeat("v", 1024)}).Validate(); err != nil {
		t.Errorf("longest key and value: %v", err)
	}
}

func manyEntries(n int) wrapkey.Context {
	c := wrapkey.Context{}
	for i := range n {
		c[string(rune('A'+i))] = "x"
	}
	return c
}

func TestUnwrapRejectsBadInput(t *testing.T) {
	blob := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	if _, err := wrapkey.Unwrap(seed1[:31], "k", 1, blob, ctx1); err == nil || errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("short seed: got %v, want a seed error", err)
	}
	if _, err := wrapkey.Unwrap(seed1, "k", 1, blob, wrapkey.Context{"": ""}); err == nil || errors.Is(err, wrapkey.ErrOpen) {
		t.Errorf("invalid context: got %v, want a context error", err)
	}
}

// Marshal of an invalid Blob never yields bytes that Parse accepts.
func TestMarshalInvalid(t *testing.T) {
	valid, err := wrapkey.Parse(mustWrap(t, seed1, "k", 1, nil, dek32))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*wrapkey.Blob){
		"id of 256 bytes":   func(b *wrapkey.Blob) { b.KEKID = strings.Repeat("a", 256) },
		"id of 259 bytes":   func(b *wrapkey.Blob) { b.KEKID = strings.Repeat("a", 259) },
		"bad id":            func(b *wrapkey.Blob) { b.KEKID = "A" },
		"version 0":         func(b *wrapkey.Blob) { b.KEKVersion = 0 },
		"suite 9":           func(b *wrapkey.Blob) { b.Suite = 9 },
		"enc of 65536":      func(b *wrapkey.Blob) { b.Enc = make([]byte, 65536) },
		"enc of 65536+1120": func(b *wrapkey.Blob) { b.Enc = make([]byte, 65536+wrapkey.EncSize) },
		"no ciphertext":     func(b *wrapkey.Blob) { b.Ciphertext = nil },
	} {
		b := *valid
		edit(&b)
		if _, err := wrapkey.Parse(b.Marshal()); err == nil {
			t.Errorf("%s: Parse accepted Marshal of an invalid blob", name)
		}
	}
}

func TestKey(t *testing.T) {
	key, err := wrapkey.NewKey(seed1, "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.PublicKey(), mustPub(t, seed1)) {
		t.Error("Key.PublicKey differs from PublicKey(seed)")
	}
	blob := mustWrap(t, seed1, "k", 1, ctx1, dek32)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				got, err := key.Unwrap(blob, ctx1)
				if err != nil || !bytes.Equal(got, dek32) {
					t.Errorf("concurrent unwrap: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := key.Unwrap(mustWrap(t, seed1, "k", 2, ctx1, dek32), ctx1); !errors.Is(err, wrapkey.ErrWrongVersion) {
		t.Errorf("other version: got %v, want ErrWrongVersion", err)
	}
	key.Destroy()
	key.Destroy()
	if _, err := key.Unwrap(blob, ctx1); err == nil {
		t.Error("unwrap after Destroy succeeded")
	}
	for _, bad := range []struct {
		seed []byte
		id   string
		v    uint32
	}{{seed1[:16], "k", 1}, {seed1, "K", 1}, {seed1, "k", 0}} {
		if _, err := wrapkey.NewKey(bad.seed, bad.id, bad.v); err == nil {
			t.Errorf("NewKey(%d-byte seed, %q, %d) succeeded", len(bad.seed), bad.id, bad.v)
		}
	}
}

func TestPublicKey(t *testing.T) {
	pub := mustPub(t, seed1)
	if len(pub) != wrapkey.PublicKeySize {
		t.Fatalf("public key is %d bytes", len(pub))
	}
	if bytes.Equal(pub, mustPub(t, testSeed("k2"))) {
		t.Error("two seeds gave one public key")
	}
	if _, err := wrapkey.PublicKey(make([]byte, 33)); err == nil {
		t.Error("33-byte seed accepted")
	}
}

func BenchmarkWrap(b *testing.B) {
	pub := mustPub(b, seed1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wrapkey.Wrap(rand.Reader, pub, "payroll-kek", 1, ctx1, dek32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	blob := mustWrap(b, seed1, "payroll-kek", 1, ctx1, dek32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wrapkey.Unwrap(seed1, "payroll-kek", 1, blob, ctx1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyUnwrap is Unwrap with the key derived once (an activation cache).
func BenchmarkKeyUnwrap(b *testing.B) {
	blob := mustWrap(b, seed1, "payroll-kek", 1, ctx1, dek32)
	key, err := wrapkey.NewKey(seed1, "payroll-kek", 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := key.Unwrap(blob, ctx1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublicKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wrapkey.PublicKey(seed1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	blob := mustWrap(b, seed1, "payroll-kek", 1, ctx1, dek32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wrapkey.Parse(blob); err != nil {
			b.Fatal(err)
		}
	}
}
