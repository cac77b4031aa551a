// Known-answer vectors in testdata/vectors.json. Run with -update to
// regenerate them; otherwise every vector is checked against this package
// and, where it applies, against crypto/hpke.

package wrapkey_test

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/custos-eu/custos/internal/testvectors"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

const vectorsPath = "testdata/vectors.json"

type vectorFile struct {
	Comment []string       `json:"comment"`
	Wrap    []wrapVector   `json:"wrap"`
	Unwrap  []unwrapVector `json:"unwrap"`
}

// wrapVector pins Wrap completely: with Randomness as its random input,
// Wrap must produce Blob, and Blob must open to DEK.
type wrapVector struct {
	Name       string            `json:"name"`
	Seed       testvectors.Hex   `json:"seed"`
	KEKID      string            `json:"kek_id"`
	KEKVersion uint32            `json:"kek_version"`
	Context    map[string]string `json:"context"`
	DEK        testvectors.Hex   `json:"dek"`
	Randomness testvectors.Hex   `json:"randomness"` // the 64 bytes Wrap reads
	PublicKey  testvectors.Hex   `json:"public_key"`
	Info       testvectors.Hex   `json:"info"`
	AAD        testvectors.Hex   `json:"aad"`
	Blob       testvectors.Hex   `json:"blob"`
}

// unwrapVector is one Unwrap call and its outcome.
type unwrapVector struct {
	Name        string            `json:"name"`
	Seed        testvectors.Hex   `json:"seed"`
	KEKID       string            `json:"kek_id"`
	KEKVersion  uint32            `json:"kek_version"`
	Context     map[string]string `json:"context"`
	Blob        testvectors.Hex   `json:"blob"`
	Expect      string            `json:"expect"`                 // ok, parse, wrong_kek, wrong_version, open
	DEK         testvectors.Hex   `json:"dek,omitempty"`          // when ok
	ParseOffset *int              `json:"parse_offset,omitempty"` // when parse
}

func TestVectors(t *testing.T) {
	if testvectors.Updating() {
		t.Run("generate", func(t *testing.T) {
			testvectors.Write(t, vectorsPath, generateVectors(t))
		})
	}
	vf := readVectors(t)
	if len(vf.Wrap) == 0 || len(vf.Unwrap) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vf.Wrap {
		t.Run("wrap/"+v.Name, func(t *testing.T) { checkWrapVector(t, v) })
	}
	for _, v := range vf.Unwrap {
		t.Run("unwrap/"+v.Name, func(t *testing.T) { checkUnwrapVector(t, v) })
	}
}

func readVectors(t *testing.T) vectorFile {
	t.Helper()
	var vf vectorFile
	testvectors.Load(t, vectorsPath, &vf)
	return vf
}

func checkWrapVector(t *testing.T, v wrapVector) {
	if len(v.Randomness) != 64 {
		t.Fatalf("randomness is %d bytes, want 64", len(v.Randomness))
	}
	pub, err := wrapkey.PublicKey(v.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub, v.PublicKey) {
		t.Error("PublicKey(seed) differs from the vector")
	}
	if sk, err := stdKEM.NewPrivateKey(v.Seed); err != nil || !bytes.Equal(sk.PublicKey().Bytes(), v.PublicKey) {
		t.Errorf("crypto/hpke public key differs from the vector (%v)", err)
	}
	info, err := wrapkey.Info(v.KEKID, v.KEKVersion, v.Context)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, v.Info) || !bytes.Equal(specInfo(v.KEKID, v.KEKVersion, v.Context), v.Info) {
		t.Error("info differs from the vector")
	}
	rnd := bytes.NewReader(v.Randomness)
	blob, err := wrapkey.Wrap(rnd, v.PublicKey, v.KEKID, v.KEKVersion, v.Context, v.DEK)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blob, v.Blob) {
		t.Error("Wrap with the vector's randomness gave another blob")
	}
	if rnd.Len() != 0 {
		t.Errorf("Wrap left %d random bytes unread", rnd.Len())
	}
	_, _, enc, aad, _, err := splitBlob(v.Blob)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(aad, v.AAD) || !bytes.Equal(specHeader(v.KEKID, v.KEKVersion, enc), v.AAD) {
		t.Error("aad differs from the vector")
	}
	dek, err := wrapkey.Unwrap(v.Seed, v.KEKID, v.KEKVersion, v.Blob, v.Context)
	if err != nil || !bytes.Equal(dek, v.DEK) {
		t.Errorf("Unwrap: %v", err)
	}
	if dek, err := stdOpen(v.Seed, v.Blob, v.Context); err != nil || !bytes.Equal(dek, v.DEK) {
		t.Errorf("crypto/hpke open: %v", err)
	}
}

func checkUnwrapVector(t *testing.T, v unwrapVector) {
	dek, err := wrapkey.Unwrap(v.Seed, v.KEKID, v.KEKVersion, v.Blob, v.Context)
	var pe *wrapkey.ParseError
	switch v.Expect {
	case "ok":
		if err != nil || !bytes.Equal(dek, v.DEK) {
			t.Fatalf("got %v, want the vector's dek", err)
		}
		if dek, err := stdOpen(v.Seed, v.Blob, v.Context); err != nil || !bytes.Equal(dek, v.DEK) {
			t.Errorf("crypto/hpke open: %v", err)
		}
		return
	case "parse":
		if !errors.As(err, &pe) {
			t.Fatalf("got %v, want *ParseError", err)
		}
		if v.ParseOffset == nil || pe.Offset != *v.ParseOffset {
			t.Errorf("parse error at %d, vector says %v", pe.Offset, v.ParseOffset)
		}
	case "wrong_kek":
		if !errors.Is(err, wrapkey.ErrWrongKEK) {
			t.Fatalf("got %v, want ErrWrongKEK", err)
		}
	case "wrong_version":
		if !errors.Is(err, wrapkey.ErrWrongVersion) {
			t.Fatalf("got %v, want ErrWrongVersion", err)
		}
	case "open":
		if !errors.Is(err, wrapkey.ErrOpen) {
			t.Fatalf("got %v, want ErrOpen", err)
		}
		if _, err := stdOpen(v.Seed, v.Blob, v.Context); err == nil {
			t.Error("crypto/hpke opened what Unwrap refused")
		}
	default:
		t.Fatalf("unknown expect %q", v.Expect)
	}
	if v.DEK != nil {
		t.Error("a failing vector carries a dek")
	}
}

// generateVectors builds the vectors from fixed inputs. It needs only this
// package and crypto/hpke (with cryptotest's fixed randomness).
func generateVectors(t *testing.T) vectorFile {
	vf := vectorFile{Comment: []string{
		"Known-answer vectors for keysvc/wrapkey (FORMAT.md). Byte strings are hex.",
		"wrap: Wrap(randomness, public_key, kek_id, kek_version, context, dek) must equal blob;",
		"  public_key = X-Wing public key of seed; info and aad are the HPKE inputs; blob opens to dek.",
		"unwrap: Unwrap(seed, kek_id, kek_version, blob, context) gives dek (expect ok) or fails with",
		"  parse (a ParseError at parse_offset), wrong_kek, wrong_version or open.",
		"Regenerate with: go test ./keysvc/wrapkey -run TestVectors -update",
	}}
	add := func(name, kekID string, version uint32, ctx map[string]string, dek []byte) wrapVector {
		v := wrapVector{
			Name: name, Seed: testSeed("vector " + name), KEKID: kekID, KEKVersion: version,
			Context: ctx, DEK: dek, Randomness: make([]byte, 64),
		}
		(&detReader{label: "vector randomness " + name}).Read(v.Randomness)
		var err error
		if v.PublicKey, err = wrapkey.PublicKey(v.Seed); err != nil {
			t.Fatal(err)
		}
		if v.Info, err = wrapkey.Info(kekID, version, ctx); err != nil {
			t.Fatal(err)
		}
		if v.Blob, err = wrapkey.Wrap(bytes.NewReader(v.Randomness), v.PublicKey, kekID, version, ctx, dek); err != nil {
			t.Fatal(err)
		}
		_, _, _, v.AAD, _, _ = splitBlob(v.Blob)
		vf.Wrap = append(vf.Wrap, v)
		return v
	}
	dek := func(n int) []byte {
		b := make([]byte, n)
		(&detReader{label: "vector dek"}).Read(b)
		return b
	}
	base := add("basic", "payroll-kek", 1, ctx1, dek(32))
	add("empty context, max version", "k", 0xffffffff, map[string]string{}, dek(16))
	add("sorted utf-8 context, longest id", strings.Repeat("a.b_c-9", 9)+"z", 2,
		map[string]string{"a": "1", "B": "2", "ab": "", "é": "€", "e\u0301": "combining"}, dek(1))
	add("largest dek", "k", 1, map[string]string{"purpose": "max"}, dek(wrapkey.MaxDEKSize))

	u := func(name, expect string, edit func(*unwrapVector)) {
		v := unwrapVector{
			Name: name, Seed: base.Seed, KEKID: base.KEKID, KEKVersion: base.KEKVersion,
			Context: base.Context, Blob: bytes.Clone(base.Blob), Expect: expect,
		}
		if expect == "ok" {
			v.DEK = base.DEK
		}
		if edit != nil {
			edit(&v)
		}
		vf.Unwrap = append(vf.Unwrap, v)
	}
	at := func(off int) *int { return &off }
	withCtx := func(edit func(map[string]string)) map[string]string {
		c := map[string]string{}
		for k, v := range base.Context {
			c[k] = v
		}
		edit(c)
		return c
	}
	n := len(base.KEKID)
	u("basic", "ok", nil)
	// Sealed by crypto/hpke with fixed randomness, laid out by specHeader.
	cryptotest.SetGlobalRandom(t, 1)
	std, err := stdSeal(base.PublicKey, base.KEKID, base.KEKVersion, base.Context, base.DEK)
	if err != nil {
		t.Fatal(err)
	}
	u("sealed by crypto/hpke", "ok", func(v *unwrapVector) { v.Blob = std })
	u("context value changed", "open", func(v *unwrapVector) {
		v.Context = withCtx(func(c map[string]string) { c["dataset"] = "payroll2" })
	})
	u("context key added", "open", func(v *unwrapVector) {
		v.Context = withCtx(func(c map[string]string) { c["region"] = "eu-central" })
	})
	u("context key missing", "open", func(v *unwrapVector) {
		v.Context = withCtx(func(c map[string]string) { delete(c, "purpose") })
	})
	u("empty context", "open", func(v *unwrapVector) { v.Context = map[string]string{} })
	u("other seed", "open", func(v *unwrapVector) { v.Seed = testSeed("vector other") })
	u("other kek id", "wrong_kek", func(v *unwrapVector) { v.KEKID = "payroll-kek2" })
	u("other kek version", "wrong_version", func(v *unwrapVector) { v.KEKVersion = 2 })
	u("blob relabelled to another kek", "open", func(v *unwrapVector) {
		v.Blob[8] = 'q' // "payroll-kek" -> "qayroll-kek"
		v.KEKID = "qayroll-kek"
	})
	u("blob relabelled to another version", "open", func(v *unwrapVector) {
		v.Blob[11+n] = 2
		v.KEKVersion = 2
	})
	u("enc bit flipped", "open", func(v *unwrapVector) { v.Blob[14+n+100] ^= 0x01 })
	u("enc x25519 part is a low-order point", "open", func(v *unwrapVector) {
		copy(v.Blob[14+n+1088:14+n+1120], make([]byte, 32))
	})
	u("ciphertext bit flipped", "open", func(v *unwrapVector) { v.Blob[1138+n] ^= 0x80 })
	u("tag bit flipped", "open", func(v *unwrapVector) { v.Blob[len(v.Blob)-1] ^= 0x01 })
	u("truncated in enc", "parse", func(v *unwrapVector) {
		v.Blob = v.Blob[:500]
		v.ParseOffset = at(14 + n)
	})
	u("truncated ciphertext", "parse", func(v *unwrapVector) {
		v.Blob = v.Blob[:len(v.Blob)-1]
		v.ParseOffset = at(1138 + n)
	})
	u("trailing byte", "parse", func(v *unwrapVector) {
		v.ParseOffset = at(len(v.Blob))
		v.Blob = append(v.Blob, 0)
	})
	u("bad magic", "parse", func(v *unwrapVector) { v.Blob[3] = 'X'; v.ParseOffset = at(0) })
	u("format version 2", "parse", func(v *unwrapVector) { v.Blob[4] = 2; v.ParseOffset = at(4) })
	u("unknown suite", "parse", func(v *unwrapVector) { v.Blob[6] = 2; v.ParseOffset = at(5) })
	u("kek id with upper case", "parse", func(v *unwrapVector) { v.Blob[8] = 'P'; v.ParseOffset = at(8) })
	u("kek version 0", "parse", func(v *unwrapVector) {
		copy(v.Blob[8+n:], []byte{0, 0, 0, 0})
		v.ParseOffset = at(8 + n)
	})
	u("enc length 1119", "parse", func(v *unwrapVector) { v.Blob[13+n]--; v.ParseOffset = at(12 + n) })
	u("ciphertext length 16", "parse", func(v *unwrapVector) {
		v.Blob = append(v.Blob[:1134+n], 0, 0, 0, 16)
		v.Blob = append(v.Blob, make([]byte, 16)...)
		v.ParseOffset = at(1134 + n)
	})
	return vf
}

// Ensure the stdlib KEM used here is the one the format names.
func TestStdlibKEMID(t *testing.T) {
	if stdKEM.ID() != 0x647a || stdKDF.ID() != 0x0001 || stdAEAD.ID() != 0x0002 {
		t.Fatalf("crypto/hpke suite is %#x/%#x/%#x", stdKEM.ID(), stdKDF.ID(), stdAEAD.ID())
	}
	var _ hpke.KEM = stdKEM
}
