// Package kekhsm is the part of a KEK version's custody that needs a node's
// HSM: it seals the node's share under an AES-256 key generated inside the
// token (labelled kek.Label), opens it again, and destroys that key, which
// makes every copy of the sealed share useless. Everything else about a
// version (dealing, commitments, escrow, rebuilding) is in package kek and
// touches no HSM.
//
// Functions here are safe for concurrent use when the hsm.Token given is.
package kekhsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/threshold"
)

// shareAAD binds a sealed share to its KEK version and share index.
func shareAAD(v *kek.Version, index uint16) []byte {
	var b bytes.Buffer
	b.WriteString("custos/v1/sealed-share\x00")
	b.WriteString(kek.Label(v.ID, v.Version))
	b.WriteByte(0)
	_ = binary.Write(&b, binary.BigEndian, index)
	return b.Bytes()
}

// SealShare generates this version's sealing key inside tok and seals sh under it.
// The share is checked against the commitments first, so a node never seals a
// share it could not later use. hsm.ErrKeyExists if the node already holds a
// sealing key for this version.
func SealShare(tok hsm.Token, v *kek.Version, sh *threshold.Share) ([]byte, error) {
	if err := threshold.Verify(v.Commitments, sh); err != nil {
		return nil, fmt.Errorf("seal share %d of kek %q v%d: %w", sh.Index, v.ID, v.Version, err)
	}
	plain, err := sh.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal share %d of kek %q v%d: %w", sh.Index, v.ID, v.Version, err)
	}
	defer clear(plain)
	label := kek.Label(v.ID, v.Version)
	if err := tok.GenerateAESKey(label); err != nil {
		return nil, fmt.Errorf("seal share %d of kek %q v%d: %w", sh.Index, v.ID, v.Version, err)
	}
	sealed, err := tok.Seal(label, plain, shareAAD(v, sh.Index))
	if err != nil {
		return nil, fmt.Errorf("seal share %d of kek %q v%d: %w", sh.Index, v.ID, v.Version, err)
	}
	return sealed, nil
}

// OpenShare opens the sealed share with the given index inside tok and verifies it
// against the commitments. kek.ErrShareUnavailable when the sealing key is gone,
// kek.ErrShareCorrupt when the sealed bytes do not open or verify.
func OpenShare(tok hsm.Token, v *kek.Version, index uint16, sealed []byte) (*threshold.Share, error) {
	plain, err := tok.Open(kek.Label(v.ID, v.Version), sealed, shareAAD(v, index))
	switch {
	case errors.Is(err, hsm.ErrKeyNotFound):
		return nil, fmt.Errorf("open share %d of kek %q v%d: %w", index, v.ID, v.Version, kek.ErrShareUnavailable)
	case errors.Is(err, hsm.ErrOpen):
		return nil, fmt.Errorf("open share %d of kek %q v%d: %w", index, v.ID, v.Version, kek.ErrShareCorrupt)
	case err != nil:
		return nil, fmt.Errorf("open share %d of kek %q v%d: %w", index, v.ID, v.Version, err)
	}
	defer clear(plain)
	sh := new(threshold.Share)
	if err := sh.UnmarshalBinary(plain); err != nil || sh.Index != index || threshold.Verify(v.Commitments, sh) != nil {
		sh.Zeroize()
		return nil, fmt.Errorf("open share %d of kek %q v%d: %w", index, v.ID, v.Version, kek.ErrShareCorrupt)
	}
	return sh, nil
}

// Destroy removes this version's sealing key from tok: the node's sealed share of
// the version can never be opened again.
func Destroy(tok hsm.Token, id string, version uint32) error {
	if err := tok.Destroy(kek.Label(id, version)); err != nil {
		return fmt.Errorf("destroy kek %q v%d: %w", id, version, err)
	}
	return nil
}
