// This file links two dealings of one secret: a public scalar that proves two
// sets of commitments hide the same secret and reveals nothing about it.

package threshold

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
)

// ErrLinkMismatch reports that two sets of commitments, with the given link,
// do not hide the same secret.
var ErrLinkMismatch = errors.New("threshold: link check failed: the commitments do not hide the same secret")

// Link returns the link between two dealings of the same secret s: with
// r_0 and r'_0 the constant terms of their blinding polynomials,
//
//	δ = r_0 − r'_0, so that C_0 − C'_0 = (s − s)·G + δ·H = δ·H.
//
// Anyone holding c1, c2 and δ can check this with VerifyLink. δ is a uniformly
// random scalar whenever either dealing's r_0 is, so it reveals nothing about s.
//
// r_0 and r'_0 are interpolated at 0 from the shares: s1 must hold at least
// c1.Threshold() shares of the dealing behind c1, s2 at least c2.Threshold()
// of the one behind c2. Every given share must verify; Link is for a dealer or
// a recovery that holds good shares, not for sifting bad ones. Errors:
// ErrDuplicateIndex (wrapped), *BadShareError naming the bad indices,
// ErrNotEnoughShares (wrapped), ErrLinkMismatch if the two dealings hide
// different secrets, another error if c1 or c2 is malformed. The shares of a
// zeroised dealing fail verification.
func Link(c1 Commitments, s1 []Share, c2 Commitments, s2 []Share) (group.Scalar, error) {
	r1, err := blindingAtZero(c1, s1)
	if err != nil {
		return nil, fmt.Errorf("threshold: link: first dealing: %w", err)
	}
	defer r1.SetUint64(0)
	r2, err := blindingAtZero(c2, s2)
	if err != nil {
		return nil, fmt.Errorf("threshold: link: second dealing: %w", err)
	}
	defer r2.SetUint64(0)
	delta := g.NewScalar().Sub(r1, r2)
	if err := VerifyLink(c1, c2, delta); err != nil {
		return nil, err
	}
	return delta, nil
}

// VerifyLink checks that c1 and c2 hide the same secret, given their link δ
// (see Link): C1_0 − C2_0 == δ·H. The check is binding under discrete log:
// a dealer who could pass it with two different secrets s ≠ s' would have
// found log_G(H) = (s' − s)/(r_0 − r'_0 − δ). It needs nothing secret.
// It returns ErrLinkMismatch, or another error if c1, c2 or δ is malformed.
func VerifyLink(c1, c2 Commitments, delta group.Scalar) error {
	if err := c1.check(); err != nil {
		return fmt.Errorf("threshold: verify link: %w", err)
	}
	if err := c2.check(); err != nil {
		return fmt.Errorf("threshold: verify link: %w", err)
	}
	if !isScalar(delta) {
		return errors.New("threshold: verify link: link is not a ristretto255 scalar")
	}
	lhs := g.NewElement().Neg(c2[0])
	lhs.Add(lhs, c1[0])
	if !lhs.IsEqual(g.NewElement().Mul(pedersenH, delta)) {
		return ErrLinkMismatch
	}
	return nil
}

// blindingAtZero verifies every share against c and interpolates the blinding
// polynomial at 0 from the t with the lowest indices.
func blindingAtZero(c Commitments, shares []Share) (group.Scalar, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	seen := make(map[uint16]bool, len(shares))
	var bad []uint16
	good := make([]*Share, 0, len(shares))
	for i := range shares {
		s := &shares[i]
		if seen[s.Index] {
			return nil, fmt.Errorf("%w: %d", ErrDuplicateIndex, s.Index)
		}
		seen[s.Index] = true
		if !verify(c, s) {
			bad = append(bad, s.Index)
			continue
		}
		good = append(good, s)
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, &BadShareError{Indices: bad}
	}
	t := c.Threshold()
	if len(good) < t {
		return nil, fmt.Errorf("%w: %d valid, %d needed", ErrNotEnoughShares, len(good), t)
	}
	slices.SortFunc(good, func(a, b *Share) int { return int(a.Index) - int(b.Index) })
	good = good[:t]
	xs := make([]group.Scalar, t)
	for k, s := range good {
		xs[k] = g.NewScalar().SetUint64(uint64(s.Index))
	}
	zero := g.NewScalar()
	r := g.NewScalar()
	term := g.NewScalar()
	for k, s := range good {
		term.Mul(polynomial.LagrangeBase(uint(k), xs, zero), s.R)
		r.Add(r, term)
	}
	term.SetUint64(0)
	return r, nil
}
