//go:build !cgo

package pkcs11

import (
	"errors"

	"github.com/custos-eu/custos/hsm"
)

// Open fails: the PKCS#11 backend loads a C library and so needs cgo. Build with
// CGO_ENABLED=1, or use hsmtest.NewFake in tests.
func Open(c Config) (hsm.Token, error) {
	return nil, errors.New("hsm: built without cgo; PKCS#11 needs cgo")
}

// Rescan does nothing: without cgo no module is ever loaded.
func Rescan(module string) error { return nil }
