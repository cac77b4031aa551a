// This file holds dealing, verification, recovery and seed derivation.

package threshold

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
)

// MaxShares is the largest n (and so the largest t and share index).
const MaxShares = 255

const (
	// pedersenDST is the hash-to-group domain separation tag for H.
	pedersenDST = "custos/v1/threshold/pedersen-H"
	// kekSeedLabel is the HKDF info string of DeriveSeed.
	kekSeedLabel = "custos/v1/kek-seed"
)

// g is the group everything here lives in.
var g = group.Ristretto255

// pedersenH is the second generator. It is only ever read.
var pedersenH = g.HashToElement(nil, []byte(pedersenDST))

var (
	// ErrParams reports t or n out of range: 1 ≤ t ≤ n ≤ MaxShares.
	ErrParams = errors.New("threshold: invalid parameters")
	// ErrNotEnoughShares reports fewer than t valid shares.
	ErrNotEnoughShares = errors.New("threshold: not enough shares")
	// ErrDuplicateIndex reports two shares with the same index.
	ErrDuplicateIndex = errors.New("threshold: duplicate share index")
)

// BadShareError reports shares that do not match the commitments, by index.
type BadShareError struct {
	Indices []uint16
}

func (e *BadShareError) Error() string {
	switch len(e.Indices) {
	case 0:
		return "threshold: bad share"
	case 1:
		return fmt.Sprintf("threshold: share %d does not match the commitments", e.Indices[0])
	}
	s := make([]string, len(e.Indices))
	for i, idx := range e.Indices {
		s[i] = strconv.Itoa(int(idx))
	}
	return "threshold: shares " + strings.Join(s, ", ") + " do not match the commitments"
}

// Share is one holder's share: S = f(Index), R = g(Index) (blinding polynomial).
type Share struct {
	Index uint16 // 1..n, never 0
	S, R  group.Scalar
}

// Zeroize overwrites S and R with zero. The Index is kept.
func (s *Share) Zeroize() {
	if s.S != nil {
		s.S.SetUint64(0)
	}
	if s.R != nil {
		s.R.SetUint64(0)
	}
}

// Commitments are the public Pedersen commitments C_0..C_{t-1}; len == threshold t.
type Commitments []group.Element

// Threshold returns t, the number of shares needed to recover.
func (c Commitments) Threshold() int { return len(c) }

// check reports whether c can be verified against: 1 ≤ t ≤ MaxShares, and
// every commitment a non-identity ristretto255 element.
func (c Commitments) check() error {
	if len(c) < 1 || len(c) > MaxShares {
		return fmt.Errorf("threshold: commitments for t=%d: %w", len(c), ErrParams)
	}
	for j, e := range c {
		if e == nil || e.Group() != g {
			return fmt.Errorf("threshold: commitment %d is not a ristretto255 element", j)
		}
		if e.IsIdentity() {
			return fmt.Errorf("threshold: commitment %d is the identity", j)
		}
	}
	return nil
}

// Dealing is the output of a deal. The shares are secret: zeroise them
// (Zeroize) once they are sealed to their holders.
type Dealing struct {
	Commitments Commitments
	Shares      []Share // Shares[i].Index == i+1
}

// Zeroize overwrites every share in d. The commitments are public and kept.
func (d *Dealing) Zeroize() {
	for i := range d.Shares {
		d.Shares[i].Zeroize()
	}
}

// Deal splits a fresh uniformly random secret scalar t-of-n; returns the secret too.
// The secret is never zero. See the package doc for how rnd is consumed.
func Deal(rnd io.Reader, t, n int) (secret group.Scalar, d *Dealing, err error) {
	if err := checkParams(t, n); err != nil {
		return nil, nil, err
	}
	if rnd == nil {
		return nil, nil, errors.New("threshold: deal: nil random source")
	}
	secret = g.NewScalar()
	for secret.IsZero() {
		if err := randomScalar(rnd, secret); err != nil {
			return nil, nil, err
		}
	}
	d, err = Split(rnd, secret, t, n)
	if err != nil {
		secret.SetUint64(0)
		return nil, nil, err
	}
	return secret, d, nil
}

// Split splits a given secret t-of-n (used for officer escrow of an existing secret).
// It refuses a zero secret, which usually means one that was already zeroised.
func Split(rnd io.Reader, secret group.Scalar, t, n int) (*Dealing, error) {
	if err := checkParams(t, n); err != nil {
		return nil, err
	}
	if rnd == nil {
		return nil, errors.New("threshold: split: nil random source")
	}
	if secret == nil || secret.Group() != g {
		return nil, errors.New("threshold: split: secret is not a ristretto255 scalar")
	}
	if secret.IsZero() {
		return nil, errors.New("threshold: split: secret is zero")
	}

	// f is the secret polynomial, b the blinding one; f[0] = secret.
	f := make([]group.Scalar, t)
	b := make([]group.Scalar, t)
	defer zeroize(f)
	defer zeroize(b)
	f[0] = secret.Copy()
	b[0] = g.NewScalar()
	if err := randomScalar(rnd, b[0]); err != nil {
		return nil, err
	}
	for j := 1; j < t; j++ {
		f[j], b[j] = g.NewScalar(), g.NewScalar()
		if err := randomScalar(rnd, f[j]); err != nil {
			return nil, err
		}
		if err := randomScalar(rnd, b[j]); err != nil {
			return nil, err
		}
	}

	d := &Dealing{
		Commitments: make(Commitments, t),
		Shares:      make([]Share, n),
	}
	for j := range t {
		d.Commitments[j] = commit(f[j], b[j])
	}
	x := g.NewScalar()
	for i := range n {
		x.SetUint64(uint64(i + 1))
		d.Shares[i] = Share{Index: uint16(i + 1), S: evaluate(f, x), R: evaluate(b, x)}
	}
	return d, nil
}

// Verify checks one share against the commitments: S·G + R·H == Σ C_j·i^j.
// It returns *BadShareError if the share does not match, or is malformed
// (index 0 or above MaxShares, missing scalars); another error if c is
// malformed.
func Verify(c Commitments, s *Share) error {
	if err := c.check(); err != nil {
		return err
	}
	if s == nil {
		return errors.New("threshold: verify: nil share")
	}
	if !verify(c, s) {
		return &BadShareError{Indices: []uint16{s.Index}}
	}
	return nil
}

// verify reports whether s is well formed and matches c, which is checked.
func verify(c Commitments, s *Share) bool {
	if s.Index == 0 || s.Index > MaxShares || !isScalar(s.S) || !isScalar(s.R) {
		return false
	}
	lhs := commit(s.S, s.R)

	// Horner: Σ C_j·i^j = (…(C_{t-1}·i + C_{t-2})·i + …)·i + C_0.
	rhs := c[len(c)-1].Copy()
	for j := len(c) - 2; j >= 0; j-- {
		mulSmall(rhs, s.Index)
		rhs.Add(rhs, c[j])
	}
	return lhs.IsEqual(rhs)
}

// mulSmall sets e to k·e by double-and-add. It is variable-time in k, which
// is fine for the public share index and public commitments it is used on,
// and some five times faster than a full scalar multiplication.
func mulSmall(e group.Element, k uint16) {
	acc := g.Identity()
	for bit := bits.Len16(k) - 1; bit >= 0; bit-- {
		acc.Dbl(acc)
		if k>>bit&1 == 1 {
			acc.Add(acc, e)
		}
	}
	e.Set(acc)
}

// Recover verifies every given share, and interpolates the secret at 0 from
// the t valid shares with the lowest indices. Bad shares are skipped when t
// valid ones remain; use RecoverReport to learn which were skipped.
//
// Errors: ErrDuplicateIndex (wrapped) if two shares share an index, checked
// before anything else; an error matching ErrNotEnoughShares if fewer than t
// are valid, which also matches *BadShareError (naming all bad indices) if
// any share was bad; another error if c is malformed.
func Recover(c Commitments, shares []Share) (group.Scalar, error) {
	secret, _, err := RecoverReport(c, shares)
	return secret, err
}

// RecoverReport is Recover that also returns the indices of the shares that
// failed verification, in ascending order, whether or not it succeeded.
func RecoverReport(c Commitments, shares []Share) (secret group.Scalar, bad []uint16, err error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	seen := make(map[uint16]bool, len(shares))
	for i := range shares {
		idx := shares[i].Index
		if seen[idx] {
			return nil, nil, fmt.Errorf("%w: %d", ErrDuplicateIndex, idx)
		}
		seen[idx] = true
	}

	var good []*Share
	for i := range shares {
		if verify(c, &shares[i]) {
			good = append(good, &shares[i])
		} else {
			bad = append(bad, shares[i].Index)
		}
	}
	slices.Sort(bad)
	t := c.Threshold()
	if len(good) < t {
		err := fmt.Errorf("%w: %d valid, %d needed", ErrNotEnoughShares, len(good), t)
		if len(bad) > 0 {
			err = fmt.Errorf("%w: %w", err, &BadShareError{Indices: slices.Clone(bad)})
		}
		return nil, bad, err
	}
	slices.SortFunc(good, func(a, b *Share) int { return int(a.Index) - int(b.Index) })
	good = good[:t]

	xs := make([]group.Scalar, t)
	for k, s := range good {
		xs[k] = g.NewScalar().SetUint64(uint64(s.Index))
	}
	zero := g.NewScalar()
	secret = g.NewScalar()
	term := g.NewScalar()
	for k, s := range good {
		term.Mul(polynomial.LagrangeBase(uint(k), xs, zero), s.S)
		secret.Add(secret, term)
	}
	term.SetUint64(0)
	return secret, bad, nil
}

// DeriveSeed derives the 32-byte KEK seed from the shared secret, domain
// separated: HKDF-SHA256 with the secret's 32-byte encoding as input key
// material, an empty salt and info "custos/v1/kek-seed". It refuses a zero
// secret, which usually means one that was already zeroised.
func DeriveSeed(secret group.Scalar) ([32]byte, error) {
	var seed [32]byte
	if !isScalar(secret) {
		return seed, errors.New("threshold: derive seed: secret is not a ristretto255 scalar")
	}
	if secret.IsZero() {
		return seed, errors.New("threshold: derive seed: secret is zero")
	}
	ikm, err := secret.MarshalBinary()
	if err != nil {
		return seed, fmt.Errorf("threshold: derive seed: %w", err)
	}
	defer clear(ikm)
	k, err := hkdf.Key(sha256.New, ikm, nil, kekSeedLabel, len(seed))
	if err != nil {
		return seed, fmt.Errorf("threshold: derive seed: %w", err)
	}
	copy(seed[:], k)
	clear(k)
	return seed, nil
}

func checkParams(t, n int) error {
	if t < 1 || n < 1 || t > n || n > MaxShares {
		return fmt.Errorf("%w: t=%d n=%d, want 1 ≤ t ≤ n ≤ %d", ErrParams, t, n, MaxShares)
	}
	return nil
}

func isScalar(s group.Scalar) bool { return s != nil && s.Group() == g }

// commit returns a·G + b·H.
func commit(a, b group.Scalar) group.Element {
	e := g.NewElement().MulGen(a)
	return e.Add(e, g.NewElement().Mul(pedersenH, b))
}

// evaluate returns p(x) for coefficients p in ascending order. It is used
// instead of polynomial.Polynomial, whose private copies of the secret
// coefficients could not be zeroised.
func evaluate(p []group.Scalar, x group.Scalar) group.Scalar {
	y := g.NewScalar()
	for j := len(p) - 1; j >= 0; j-- {
		y.Mul(y, x)
		y.Add(y, p[j])
	}
	return y
}

func zeroize(s []group.Scalar) {
	for _, x := range s {
		if x != nil {
			x.SetUint64(0)
		}
	}
}

// randomScalar sets s to 64 bytes from rnd, read little-endian, mod ℓ.
//
// circl's RandomScalar ignores its reader, so this reduces by hand: split the
// 512-bit integer into a (bytes 0..30), b (bytes 31..61) and c (bytes 62..63),
// each below 2^248 < ℓ and so a canonical scalar, and compute
// a + K·(b + K·c) with K = 2^248.
func randomScalar(rnd io.Reader, s group.Scalar) error {
	var buf [64]byte
	defer clear(buf[:])
	if _, err := io.ReadFull(rnd, buf[:]); err != nil {
		return fmt.Errorf("threshold: read randomness: %w", err)
	}
	var limb [32]byte
	defer clear(limb[:])
	a, b, c, k := g.NewScalar(), g.NewScalar(), g.NewScalar(), g.NewScalar()
	defer zeroize([]group.Scalar{a, b, c})
	for _, p := range []struct {
		dst      group.Scalar
		from, to int
	}{{a, 0, 31}, {b, 31, 62}, {c, 62, 64}} {
		clear(limb[:])
		copy(limb[:], buf[p.from:p.to])
		if err := p.dst.UnmarshalBinary(limb[:]); err != nil {
			panic("threshold: limb below 2^248 rejected: " + err.Error())
		}
	}
	clear(limb[:])
	limb[31] = 1 // 2^248
	if err := k.UnmarshalBinary(limb[:]); err != nil {
		panic("threshold: 2^248 rejected: " + err.Error())
	}
	c.Mul(c, k)
	b.Add(b, c)
	b.Mul(b, k)
	s.Add(a, b)
	return nil
}
