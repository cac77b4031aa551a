// This file exposes internals to the external tests.

package threshold

import (
	"io"

	"github.com/cloudflare/circl/group"
)

const (
	PedersenDST  = pedersenDST
	KEKSeedLabel = kekSeedLabel
)

// PedersenH returns a copy of the second generator.
func PedersenH() group.Element { return pedersenH.Copy() }

// RandomScalar draws one scalar the way Deal and Split do.
func RandomScalar(rnd io.Reader) (group.Scalar, error) {
	s := g.NewScalar()
	return s, randomScalar(rnd, s)
}

// Evaluate evaluates a polynomial given by ascending coefficients.
func Evaluate(p []group.Scalar, x group.Scalar) group.Scalar { return evaluate(p, x) }

// MulSmall returns k·e, computed the way Verify does.
func MulSmall(e group.Element, k uint16) group.Element {
	e = e.Copy()
	mulSmall(e, k)
	return e
}
