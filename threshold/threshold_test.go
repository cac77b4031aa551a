// Tests of dealing, verification, recovery and seed derivation.

package threshold_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
	"github.com/custos-eu/custos/threshold"
)

var r255 = group.Ristretto255

const (
	// pinnedHHex is hash_to_ristretto255("", "custos/v1/threshold/pedersen-H").
	pinnedHHex = "94dbdbbf30190ef823c50d0ac3affba90b3a1587d2c9f8b12fae3557e37c3c64"
	// pinnedSeedOfOne is DeriveSeed of the scalar 1.
	pinnedSeedOfOne = "1480b3e005f6f92b050d769d1188eaeee6c51c3e41fc0e1b403ce03f6eb3580f"
)

// drbg returns a deterministic reader: the SHAKE256 stream of seed.
func drbg(seed []byte) io.Reader {
	h := sha3.NewSHAKE256()
	h.Write(seed)
	return h
}

// subsets returns every k-element subset of 0..n-1, in lexicographic order.
func subsets(n, k int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

func pick(shares []threshold.Share, idx []int) []threshold.Share {
	out := make([]threshold.Share, len(idx))
	for k, i := range idx {
		out[k] = shares[i]
	}
	return out
}

func mustDeal(tb testing.TB, rnd io.Reader, t, n int) (group.Scalar, *threshold.Dealing) {
	tb.Helper()
	secret, d, err := threshold.Deal(rnd, t, n)
	if err != nil {
		tb.Fatalf("Deal(%d, %d): %v", t, n, err)
	}
	return secret, d
}

// tamper returns a copy of s with fresh scalars, so the original is untouched.
func tamper(s threshold.Share) threshold.Share {
	return threshold.Share{Index: s.Index, S: s.S.Copy(), R: s.R.Copy()}
}

func addOne(x group.Scalar) group.Scalar {
	return x.Add(x, r255.NewScalar().SetUint64(1))
}

func badIndices(tb testing.TB, err error) []uint16 {
	tb.Helper()
	var bse *threshold.BadShareError
	if !errors.As(err, &bse) {
		tb.Fatalf("error %v is not a *BadShareError", err)
	}
	return bse.Indices
}

func TestDealRecoverEverySubset(t *testing.T) {
	for _, p := range []struct{ t, n int }{{1, 1}, {1, 3}, {2, 3}, {3, 5}, {5, 5}} {
		secret, d := mustDeal(t, rand.Reader, p.t, p.n)
		if got := d.Commitments.Threshold(); got != p.t {
			t.Fatalf("%d-of-%d: Threshold() = %d", p.t, p.n, got)
		}
		if len(d.Shares) != p.n {
			t.Fatalf("%d-of-%d: %d shares", p.t, p.n, len(d.Shares))
		}
		for i := range d.Shares {
			if d.Shares[i].Index != uint16(i+1) {
				t.Fatalf("%d-of-%d: Shares[%d].Index = %d", p.t, p.n, i, d.Shares[i].Index)
			}
			if err := threshold.Verify(d.Commitments, &d.Shares[i]); err != nil {
				t.Fatalf("%d-of-%d: Verify share %d: %v", p.t, p.n, i+1, err)
			}
		}
		for k := p.t; k <= p.n; k++ {
			for _, sub := range subsets(p.n, k) {
				got, err := threshold.Recover(d.Commitments, pick(d.Shares, sub))
				if err != nil {
					t.Fatalf("%d-of-%d: Recover(%v): %v", p.t, p.n, sub, err)
				}
				if !got.IsEqual(secret) {
					t.Fatalf("%d-of-%d: Recover(%v) gave a different secret", p.t, p.n, sub)
				}
			}
		}
		for _, sub := range subsets(p.n, p.t-1) {
			_, err := threshold.Recover(d.Commitments, pick(d.Shares, sub))
			if !errors.Is(err, threshold.ErrNotEnoughShares) {
				t.Fatalf("%d-of-%d: Recover(%v) = %v, want ErrNotEnoughShares", p.t, p.n, sub, err)
			}
			var bse *threshold.BadShareError
			if errors.As(err, &bse) {
				t.Fatalf("%d-of-%d: Recover(%v) blames good shares: %v", p.t, p.n, sub, err)
			}
		}
	}
}

func TestSplitPreservesSecret(t *testing.T) {
	secret, err := threshold.RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := threshold.Split(rand.Reader, secret, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := threshold.Split(rand.Reader, secret, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*threshold.Dealing{d1, d2} {
		got, err := threshold.Recover(d.Commitments, d.Shares[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsEqual(secret) {
			t.Fatal("Split then Recover gave a different secret")
		}
	}
	// Hiding: C_0 of the same secret differs between dealings.
	if d1.Commitments[0].IsEqual(d2.Commitments[0]) {
		t.Fatal("two splits of one secret have the same C_0")
	}
	// Shares of one dealing do not verify against the other.
	if err := threshold.Verify(d2.Commitments, &d1.Shares[0]); err == nil {
		t.Fatal("share verified against another dealing of the same secret")
	}
}

func TestParams(t *testing.T) {
	secret := r255.NewScalar().SetUint64(7)
	for _, p := range []struct{ t, n int }{
		{0, 3}, {-1, 3}, {4, 3}, {1, 0}, {0, 0}, {2, 256}, {256, 256}, {1, -1},
	} {
		if _, _, err := threshold.Deal(rand.Reader, p.t, p.n); !errors.Is(err, threshold.ErrParams) {
			t.Errorf("Deal(%d, %d) = %v, want ErrParams", p.t, p.n, err)
		}
		if _, err := threshold.Split(rand.Reader, secret, p.t, p.n); !errors.Is(err, threshold.ErrParams) {
			t.Errorf("Split(%d, %d) = %v, want ErrParams", p.t, p.n, err)
		}
	}
	if _, d := mustDeal(t, rand.Reader, threshold.MaxShares, threshold.MaxShares); len(d.Shares) != threshold.MaxShares {
		t.Fatal("MaxShares-of-MaxShares dealing has the wrong size")
	} else if err := threshold.Verify(d.Commitments, &d.Shares[threshold.MaxShares-1]); err != nil {
		t.Fatalf("share %d of a maximal dealing: %v", threshold.MaxShares, err)
	}
	if _, _, err := threshold.Deal(nil, 2, 3); err == nil {
		t.Error("Deal with nil reader succeeded")
	}
	if _, err := threshold.Split(rand.Reader, r255.NewScalar(), 2, 3); err == nil {
		t.Error("Split of a zero secret succeeded")
	}
	if _, err := threshold.Split(rand.Reader, nil, 2, 3); err == nil {
		t.Error("Split of a nil secret succeeded")
	}
	if _, err := threshold.Split(rand.Reader, group.P256.NewScalar().SetUint64(1), 2, 3); err == nil {
		t.Error("Split of a P-256 scalar succeeded")
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestRandomnessConsumption(t *testing.T) {
	for _, tt := range []int{1, 2, 3, 5} {
		cr := &countingReader{r: rand.Reader}
		mustDeal(t, cr, tt, 5)
		if want := 64 * 2 * tt; cr.n != want {
			t.Errorf("Deal t=%d read %d bytes, want %d", tt, cr.n, want)
		}
		cr = &countingReader{r: rand.Reader}
		if _, err := threshold.Split(cr, r255.NewScalar().SetUint64(1), tt, 5); err != nil {
			t.Fatal(err)
		}
		if want := 64 * (2*tt - 1); cr.n != want {
			t.Errorf("Split t=%d read %d bytes, want %d", tt, cr.n, want)
		}
	}
	// A reader that runs dry gives an error, not a partial dealing.
	short := io.LimitReader(rand.Reader, 64*3+10)
	if s, d, err := threshold.Deal(short, 2, 3); err == nil || s != nil || d != nil {
		t.Fatalf("Deal from a short reader = %v, %v, %v", s, d, err)
	} else if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Deal from a short reader: %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
}

func TestDeterministic(t *testing.T) {
	enc := func(seed string) []byte {
		secret, d := mustDeal(t, drbg([]byte(seed)), 3, 5)
		b, _ := secret.MarshalBinary()
		c, err := d.Commitments.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, c...)
		for i := range d.Shares {
			s, err := d.Shares[i].MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, s...)
		}
		return b
	}
	if !bytes.Equal(enc("a"), enc("a")) {
		t.Fatal("same seed, different dealing")
	}
	if bytes.Equal(enc("a"), enc("b")) {
		t.Fatal("different seeds, same dealing")
	}
}

func TestRecoverDuplicateIndex(t *testing.T) {
	_, d := mustDeal(t, rand.Reader, 2, 3)
	for _, shares := range [][]threshold.Share{
		{d.Shares[0], d.Shares[0]},
		{d.Shares[0], d.Shares[1], d.Shares[0]},
		{d.Shares[0], d.Shares[1], d.Shares[2], d.Shares[2]},
	} {
		if _, err := threshold.Recover(d.Commitments, shares); !errors.Is(err, threshold.ErrDuplicateIndex) {
			t.Errorf("Recover with a duplicate = %v, want ErrDuplicateIndex", err)
		}
	}
	// A bad share claiming a good share's index is still a duplicate.
	forged := tamper(d.Shares[1])
	forged.Index = 1
	if _, err := threshold.Recover(d.Commitments, []threshold.Share{d.Shares[0], forged, d.Shares[2]}); !errors.Is(err, threshold.ErrDuplicateIndex) {
		t.Errorf("Recover with a forged duplicate = %v, want ErrDuplicateIndex", err)
	}
}

func TestTamperedShareIsNamed(t *testing.T) {
	_, d := mustDeal(t, rand.Reader, 2, 3)
	sOff := tamper(d.Shares[1])
	addOne(sOff.S)
	rOff := tamper(d.Shares[1])
	addOne(rOff.R)
	moved := tamper(d.Shares[0]) // share 1's values under index 3
	moved.Index = 3
	swapped := tamper(d.Shares[1]) // S and R exchanged
	swapped.S, swapped.R = swapped.R, swapped.S
	for _, c := range []struct {
		name  string
		bad   threshold.Share
		other threshold.Share
	}{
		{"S changed", sOff, d.Shares[0]},
		{"R changed", rOff, d.Shares[0]},
		{"index changed", moved, d.Shares[1]},
		{"S and R swapped", swapped, d.Shares[2]},
	} {
		err := threshold.Verify(d.Commitments, &c.bad)
		if got := badIndices(t, err); !slices.Equal(got, []uint16{c.bad.Index}) {
			t.Errorf("%s: Verify names %v, want [%d]", c.name, got, c.bad.Index)
		}
		if want := "threshold: share " + string(rune('0'+c.bad.Index)) + " does not match the commitments"; err.Error() != want {
			t.Errorf("%s: Verify error %q, want %q", c.name, err, want)
		}
		_, err = threshold.Recover(d.Commitments, []threshold.Share{c.other, c.bad})
		if !errors.Is(err, threshold.ErrNotEnoughShares) {
			t.Errorf("%s: Recover = %v, want ErrNotEnoughShares", c.name, err)
		}
		if got := badIndices(t, err); !slices.Equal(got, []uint16{c.bad.Index}) {
			t.Errorf("%s: Recover names %v, want [%d]", c.name, got, c.bad.Index)
		}
	}
	// Tampering with copies left the dealing intact.
	for i := range d.Shares {
		if err := threshold.Verify(d.Commitments, &d.Shares[i]); err != nil {
			t.Fatalf("original share %d no longer verifies: %v", i+1, err)
		}
	}
}

func TestRecoverWithBadShares(t *testing.T) {
	secret, d := mustDeal(t, rand.Reader, 3, 5)
	bad2 := tamper(d.Shares[1])
	addOne(bad2.S)
	bad4 := tamper(d.Shares[3])
	addOne(bad4.R)

	// One bad among t+1: succeeds from the t good ones and reports the bad one.
	shares := []threshold.Share{d.Shares[4], bad2, d.Shares[0], d.Shares[2]}
	got, bad, err := threshold.RecoverReport(d.Commitments, shares)
	if err != nil {
		t.Fatalf("RecoverReport with one bad of t+1: %v", err)
	}
	if !got.IsEqual(secret) {
		t.Fatal("RecoverReport with one bad of t+1 gave a different secret")
	}
	if !slices.Equal(bad, []uint16{2}) {
		t.Fatalf("RecoverReport reported %v, want [2]", bad)
	}
	if got, err := threshold.Recover(d.Commitments, shares); err != nil || !got.IsEqual(secret) {
		t.Fatalf("Recover with one bad of t+1: %v", err)
	}

	// Two bad among t+1: fails, naming both in ascending order.
	shares = []threshold.Share{bad4, d.Shares[0], bad2, d.Shares[2]}
	_, bad, err = threshold.RecoverReport(d.Commitments, shares)
	if !errors.Is(err, threshold.ErrNotEnoughShares) {
		t.Fatalf("RecoverReport with two bad of t+1 = %v, want ErrNotEnoughShares", err)
	}
	if got := badIndices(t, err); !slices.Equal(got, []uint16{2, 4}) {
		t.Fatalf("error names %v, want [2 4]", got)
	}
	if !slices.Equal(bad, []uint16{2, 4}) {
		t.Fatalf("RecoverReport reported %v, want [2 4]", bad)
	}
	const want = "threshold: not enough shares: 2 valid, 3 needed: threshold: shares 2, 4 do not match the commitments"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}

	// All valid: nothing reported.
	if _, bad, err := threshold.RecoverReport(d.Commitments, d.Shares); err != nil || bad != nil {
		t.Fatalf("RecoverReport of all good shares = %v, %v", bad, err)
	}
}

func TestVerifyWrongCommitments(t *testing.T) {
	_, a := mustDeal(t, rand.Reader, 2, 3)
	_, b := mustDeal(t, rand.Reader, 2, 3)
	for i := range a.Shares {
		if got := badIndices(t, threshold.Verify(b.Commitments, &a.Shares[i])); !slices.Equal(got, []uint16{uint16(i + 1)}) {
			t.Fatalf("Verify against other commitments names %v", got)
		}
	}
	if _, err := threshold.Recover(b.Commitments, a.Shares); !errors.Is(err, threshold.ErrNotEnoughShares) {
		t.Fatalf("Recover against other commitments = %v", err)
	}
	// Dropping or adding a commitment changes what verifies.
	if err := threshold.Verify(a.Commitments[:1], &a.Shares[1]); err == nil {
		t.Fatal("share verified against truncated commitments")
	}
	longer := append(slices.Clone(a.Commitments), b.Commitments[0])
	if err := threshold.Verify(longer, &a.Shares[1]); err == nil {
		t.Fatal("share verified against extended commitments")
	}
}

func TestVerifyMalformed(t *testing.T) {
	_, d := mustDeal(t, rand.Reader, 2, 3)
	s := d.Shares[0]
	for _, c := range []struct {
		name string
		s    threshold.Share
	}{
		{"index 0", threshold.Share{Index: 0, S: s.S, R: s.R}},
		{"index 256", threshold.Share{Index: 256, S: s.S, R: s.R}},
		{"nil S", threshold.Share{Index: 1, R: s.R}},
		{"nil R", threshold.Share{Index: 1, S: s.S}},
		{"P-256 S", threshold.Share{Index: 1, S: group.P256.NewScalar(), R: s.R}},
	} {
		if got := badIndices(t, threshold.Verify(d.Commitments, &c.s)); !slices.Equal(got, []uint16{c.s.Index}) {
			t.Errorf("%s: names %v", c.name, got)
		}
	}
	if err := threshold.Verify(d.Commitments, nil); err == nil {
		t.Error("Verify(nil share) succeeded")
	}
	for _, c := range []struct {
		name string
		c    threshold.Commitments
	}{
		{"nil", nil},
		{"nil element", threshold.Commitments{d.Commitments[0], nil}},
		{"identity", threshold.Commitments{d.Commitments[0], r255.Identity()}},
		{"P-256 element", threshold.Commitments{d.Commitments[0], group.P256.Generator()}},
	} {
		if err := threshold.Verify(c.c, &s); err == nil {
			t.Errorf("Verify against %s commitments succeeded", c.name)
		}
		if _, err := threshold.Recover(c.c, d.Shares); err == nil {
			t.Errorf("Recover against %s commitments succeeded", c.name)
		}
	}
	if _, err := threshold.Recover(nil, d.Shares); !errors.Is(err, threshold.ErrParams) {
		t.Errorf("Recover against no commitments = %v, want ErrParams", err)
	}
}

func TestDeriveSeed(t *testing.T) {
	if threshold.KEKSeedLabel != "custos/v1/kek-seed" {
		t.Fatalf("KEK seed label changed to %q", threshold.KEKSeedLabel)
	}
	a, _ := mustDeal(t, rand.Reader, 2, 3)
	b, _ := mustDeal(t, rand.Reader, 2, 3)
	sa1, err := threshold.DeriveSeed(a)
	if err != nil {
		t.Fatal(err)
	}
	sa2, _ := threshold.DeriveSeed(a.Copy())
	sb, _ := threshold.DeriveSeed(b)
	if sa1 != sa2 {
		t.Fatal("DeriveSeed is not deterministic")
	}
	if sa1 == sb {
		t.Fatal("DeriveSeed gave one seed for two secrets")
	}
	// The construction, spelled out independently.
	ikm, _ := a.MarshalBinary()
	want, err := hkdf.Key(sha256.New, ikm, nil, "custos/v1/kek-seed", 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa1[:], want) {
		t.Fatal("DeriveSeed is not HKDF-SHA256(secret, salt=nil, info=custos/v1/kek-seed)")
	}
	// Pinned: secret 1.
	s1, err := threshold.DeriveSeed(r255.NewScalar().SetUint64(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(s1[:]); got != pinnedSeedOfOne {
		t.Fatalf("DeriveSeed(1) = %s, want %s", got, pinnedSeedOfOne)
	}
	if _, err := threshold.DeriveSeed(r255.NewScalar()); err == nil {
		t.Fatal("DeriveSeed(0) succeeded")
	}
	if _, err := threshold.DeriveSeed(nil); err == nil {
		t.Fatal("DeriveSeed(nil) succeeded")
	}
}

func TestPedersenH(t *testing.T) {
	if threshold.PedersenDST != "custos/v1/threshold/pedersen-H" {
		t.Fatalf("pedersen DST changed to %q", threshold.PedersenDST)
	}
	h := threshold.PedersenH()
	if !h.IsEqual(r255.HashToElement(nil, []byte("custos/v1/threshold/pedersen-H"))) {
		t.Fatal("H is not HashToElement(\"\", DST)")
	}
	if h.IsIdentity() || h.IsEqual(r255.Generator()) {
		t.Fatal("H is the identity or G")
	}
	enc, _ := h.MarshalBinary()
	if got := hex.EncodeToString(enc); got != pinnedHHex {
		t.Fatalf("H = %s, want %s", got, pinnedHHex)
	}
}

// order is ℓ = 2^252 + 27742317777372353535851937790883648493.
var order, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func leBytes(x *big.Int, n int) []byte {
	b := x.FillBytes(make([]byte, n))
	slices.Reverse(b)
	return b
}

func TestRandomScalarIsWideReduction(t *testing.T) {
	inputs := [][]byte{make([]byte, 64), bytes.Repeat([]byte{0xff}, 64)}
	inputs = append(inputs, leBytes(order, 64), leBytes(new(big.Int).Sub(order, big.NewInt(1)), 64))
	for range 200 {
		b := make([]byte, 64)
		rand.Read(b)
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		got, err := threshold.RandomScalar(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		be := slices.Clone(in)
		slices.Reverse(be)
		want := leBytes(new(big.Int).Mod(new(big.Int).SetBytes(be), order), 32)
		if enc, _ := got.MarshalBinary(); !bytes.Equal(enc, want) {
			t.Fatalf("reduce(%x) = %x, want %x", in, enc, want)
		}
	}
	if _, err := threshold.RandomScalar(bytes.NewReader(make([]byte, 63))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("63 bytes: %v", err)
	}
}

func TestEvaluateMatchesPolynomial(t *testing.T) {
	for deg := range 6 {
		coeffs := make([]group.Scalar, deg+1)
		for j := range coeffs {
			coeffs[j], _ = threshold.RandomScalar(rand.Reader)
		}
		p := polynomial.New(coeffs)
		for x := uint64(0); x < 8; x++ {
			xs := r255.NewScalar().SetUint64(x)
			if !threshold.Evaluate(coeffs, xs).IsEqual(p.Evaluate(xs)) {
				t.Fatalf("degree %d at %d: evaluate differs from polynomial.Evaluate", deg, x)
			}
		}
	}
}

func TestZeroize(t *testing.T) {
	_, d := mustDeal(t, rand.Reader, 2, 3)
	s := d.Shares[0]
	s.Zeroize()
	if !s.S.IsZero() || !s.R.IsZero() || s.Index != 1 {
		t.Fatal("Share.Zeroize left data")
	}
	d.Zeroize()
	for _, s := range d.Shares {
		if !s.S.IsZero() || !s.R.IsZero() {
			t.Fatal("Dealing.Zeroize left data")
		}
	}
	var empty threshold.Share
	empty.Zeroize() // must not panic
}

func TestMulSmall(t *testing.T) {
	e := threshold.PedersenH()
	for k := range 1 << 16 {
		if k > 300 && k%997 != 0 && k != 1<<16-1 {
			continue
		}
		want := r255.NewElement().Mul(e, r255.NewScalar().SetUint64(uint64(k)))
		if !threshold.MulSmall(e, uint16(k)).IsEqual(want) {
			t.Fatalf("mulSmall(H, %d) differs from scalar multiplication", k)
		}
	}
}
