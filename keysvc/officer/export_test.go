package officer

import "slices"

// NewFromSeeds builds a software Signer from fixed seeds, for known-answer vectors.
func NewFromSeeds(name string, alg Alg, classicalSeed, mldsaSeed, xwingSeed []byte) (*Signer, error) {
	return newSigner(name, alg, slices.Clone(classicalSeed), slices.Clone(mldsaSeed), slices.Clone(xwingSeed), nil, nil)
}
