// Tests for Link and VerifyLink.

package threshold_test

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/custos-eu/custos/threshold"
)

// TestLinkIsDifferenceOfBlindingConstants pins δ to its definition: Split
// draws g_0 first, so with known randomness δ = g_0 − g'_0 exactly.
func TestLinkIsDifferenceOfBlindingConstants(t *testing.T) {
	secret, _ := mustDeal(t, rand.Reader, 1, 1)
	seedA, seedB := []byte("link a"), []byte("link b")
	a, err := threshold.Split(drbg(seedA), secret, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := threshold.Split(drbg(seedB), secret, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	delta, err := threshold.Link(a.Commitments, a.Shares, b.Commitments, b.Shares)
	if err != nil {
		t.Fatal(err)
	}
	ga, _ := threshold.RandomScalar(drbg(seedA))
	gb, _ := threshold.RandomScalar(drbg(seedB))
	if want := r255.NewScalar().Sub(ga, gb); !delta.IsEqual(want) {
		t.Fatal("δ is not g_0 − g'_0")
	}
	if err := threshold.VerifyLink(a.Commitments, b.Commitments, delta); err != nil {
		t.Fatal(err)
	}
	// The link is directed: the other way round it is −δ.
	if err := threshold.VerifyLink(b.Commitments, a.Commitments, delta); !errors.Is(err, threshold.ErrLinkMismatch) {
		t.Fatalf("reversed with δ: got %v, want ErrLinkMismatch", err)
	}
	if err := threshold.VerifyLink(b.Commitments, a.Commitments, r255.NewScalar().Neg(delta)); err != nil {
		t.Fatalf("reversed with −δ: %v", err)
	}
	if err := threshold.VerifyLink(a.Commitments, b.Commitments, addOne(delta.Copy())); !errors.Is(err, threshold.ErrLinkMismatch) {
		t.Fatalf("δ+1: got %v, want ErrLinkMismatch", err)
	}
}

// TestLinkAnySubset: δ does not depend on which t shares of each dealing
// are used.
func TestLinkAnySubset(t *testing.T) {
	secret, a := mustDeal(t, rand.Reader, 2, 4)
	b, err := threshold.Split(rand.Reader, secret, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	want, err := threshold.Link(a.Commitments, a.Shares, b.Commitments, b.Shares)
	if err != nil {
		t.Fatal(err)
	}
	for _, ia := range subsets(4, 2) {
		for _, ib := range subsets(5, 3) {
			got, err := threshold.Link(a.Commitments, pick(a.Shares, ia), b.Commitments, pick(b.Shares, ib))
			if err != nil || !got.IsEqual(want) {
				t.Fatalf("subsets %v, %v: δ differs (%v)", ia, ib, err)
			}
		}
	}
}

// TestLinkFreshPerSplit: two escrow splits of one secret get different
// links, as they must if δ is to be uniformly random.
func TestLinkFreshPerSplit(t *testing.T) {
	secret, a := mustDeal(t, rand.Reader, 2, 3)
	b1, _ := threshold.Split(rand.Reader, secret, 2, 3)
	b2, _ := threshold.Split(rand.Reader, secret, 2, 3)
	d1, err1 := threshold.Link(a.Commitments, a.Shares, b1.Commitments, b1.Shares)
	d2, err2 := threshold.Link(a.Commitments, a.Shares, b2.Commitments, b2.Shares)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if d1.IsEqual(d2) {
		t.Fatal("two splits gave the same link")
	}
	// Each link fits only its own escrow commitments.
	if err := threshold.VerifyLink(a.Commitments, b2.Commitments, d1); !errors.Is(err, threshold.ErrLinkMismatch) {
		t.Fatalf("got %v, want ErrLinkMismatch", err)
	}
}

// TestLinkCatchesDifferentSecret: with identical randomness the two dealings
// differ only in the secret, so δ = 0 would link them if the secrets were
// equal; it does not, nor does anything Link can compute.
func TestLinkCatchesDifferentSecret(t *testing.T) {
	s1, _ := mustDeal(t, rand.Reader, 1, 1)
	s2, _ := mustDeal(t, rand.Reader, 1, 1)
	seed := []byte("same randomness")
	a, err := threshold.Split(drbg(seed), s1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := threshold.Split(drbg(seed), s2, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := threshold.VerifyLink(a.Commitments, b.Commitments, r255.NewScalar()); !errors.Is(err, threshold.ErrLinkMismatch) {
		t.Fatalf("δ = 0: got %v, want ErrLinkMismatch", err)
	}
	if _, err := threshold.Link(a.Commitments, a.Shares, b.Commitments, b.Shares); !errors.Is(err, threshold.ErrLinkMismatch) {
		t.Fatalf("Link: got %v, want ErrLinkMismatch", err)
	}
	// The same secret with the same randomness: δ = 0 is right.
	c, _ := threshold.Split(drbg(seed), s1, 2, 3)
	if err := threshold.VerifyLink(a.Commitments, c.Commitments, r255.NewScalar()); err != nil {
		t.Fatal(err)
	}
}

func TestLinkRefusesBadInput(t *testing.T) {
	secret, a := mustDeal(t, rand.Reader, 2, 3)
	b, _ := threshold.Split(rand.Reader, secret, 2, 3)

	if _, err := threshold.Link(a.Commitments, a.Shares[:1], b.Commitments, b.Shares); !errors.Is(err, threshold.ErrNotEnoughShares) {
		t.Errorf("one share: got %v, want ErrNotEnoughShares", err)
	}
	dup := []threshold.Share{a.Shares[0], a.Shares[0]}
	if _, err := threshold.Link(a.Commitments, dup, b.Commitments, b.Shares); !errors.Is(err, threshold.ErrDuplicateIndex) {
		t.Errorf("duplicate: got %v, want ErrDuplicateIndex", err)
	}
	bad := []threshold.Share{a.Shares[0], tamper(b.Shares[1]), b.Shares[2]}
	bad[1].R = addOne(bad[1].R)
	_, err := threshold.Link(a.Commitments, a.Shares, b.Commitments, bad[1:])
	if got := badIndices(t, err); len(got) != 1 || got[0] != 2 {
		t.Errorf("tampered share: bad indices %v, want [2]", got)
	}
	// Shares of the escrow dealing given as node shares.
	if _, err := threshold.Link(a.Commitments, b.Shares, b.Commitments, b.Shares); err == nil {
		t.Error("foreign shares accepted")
	}
	if err := threshold.VerifyLink(a.Commitments, nil, r255.NewScalar()); err == nil || errors.Is(err, threshold.ErrLinkMismatch) {
		t.Errorf("empty commitments: got %v", err)
	}
	if err := threshold.VerifyLink(a.Commitments, b.Commitments, nil); err == nil || errors.Is(err, threshold.ErrLinkMismatch) {
		t.Errorf("nil link: got %v", err)
	}
	// A zeroised dealing cannot be linked.
	b.Zeroize()
	if _, err := threshold.Link(a.Commitments, a.Shares, b.Commitments, b.Shares); err == nil {
		t.Error("zeroised dealing linked")
	}
}

func BenchmarkVerifyLink(b *testing.B) {
	secret, a := mustDeal(b, rand.Reader, 2, 3)
	e, _ := threshold.Split(rand.Reader, secret, 2, 3)
	delta, err := threshold.Link(a.Commitments, a.Shares, e.Commitments, e.Shares)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := threshold.VerifyLink(a.Commitments, e.Commitments, delta); err != nil {
			b.Fatal(err)
		}
	}
}
