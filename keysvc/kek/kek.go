// Package kek keeps one KEK version in custody across node HSMs.
//
// A KEK version is a 32-byte X-Wing seed that is never stored whole. [Deal] draws a
// fresh secret, splits it t-of-n with Pedersen VSS (package threshold), derives the
// seed from it and returns only the public record ([Version]: X-Wing public key and
// share commitments) and the n shares; the secret and seed are zeroised before it
// returns. Each node seals its share (package kekhsm) under an AES-256 key generated
// inside its own HSM, labelled by [Label] ("custos:kek:<id>:<version>"). To unwrap,
// t nodes open their shares (kekhsm) and [Reconstitute] rebuilds the key,
// checking every share against the commitments and the result against the public key.
//
// Destroying the sealing key on a node (kekhsm.Destroy) makes every copy of that node's
// sealed share useless; destroying it on every node crypto-shreds the version.
//
// # Officer escrow
//
// A version may also be escrowed with security officers, a second way back to
// it when every node HSM is lost. [DealWithEscrow] deals the node shares as
// Deal does and, from the same secret s, a second, independent Pedersen
// dealing m-of-N for the officers ([EscrowConfig]). Each officer's share is
// sealed ([SealEscrowShare]) with HPKE base mode, X-Wing / HKDF-SHA256 /
// AES-256-GCM, to the officer's X-Wing public key. The public [EscrowRecord]
// holds m, the officer ids in share-index order, the escrow commitments C',
// the sealed shares and the link
//
//	δ = r_0 − r'_0,   so that   C_0 − C'_0 = δ·H
//
// where r_0 and r'_0 are the two dealings' blinding constants (threshold.Link).
// Checking that equation ([VerifyEscrowRecord]) proves the escrow hides the
// same s as the node commitments: a dealer passing it with two secrets would
// know log_G(H). δ is uniformly random, so it reveals nothing about s.
// [VerifyEscrowShare] is an officer's check of their share (it opens it,
// verifies it against C', and checks the link); [OpenEscrowShare] opens it
// for a recovery ceremony. Both take the officer's key as an [EscrowKey], so
// the private key may stay with its holder (officer.Signer's OpenHPKE).
// [RecoverFromEscrow] rebuilds the key from m officer shares, and
// [RecoverAndRedeal] re-deals it onto a rebuilt cluster's nodes under the
// same public key, so old blobs unwrap; both check the result against the
// recorded public key ([ErrKeyMismatch]). Recovery does not need the link,
// since the public key check is the stronger one there; the link is for
// checking the escrow before a disaster, while it can still be fixed.
//
// A sealed escrow share ([EscrowShare]) is, with integers big-endian and each
// name a uint8 length then 1..64 bytes of [a-z0-9._-]:
//
//	"CSTE" || 0x01 (format) || uint16 suite (1) || cluster || kek id ||
//	uint32 kek version || officer id || uint16 share index (1..255) ||
//	SHA-256 of the officer's X-Wing public key (32) ||
//	uint16 enc length (1120) || enc || uint16 ciphertext length (83) || ciphertext
//
// The ciphertext seals the 67-byte threshold.Share encoding. The HPKE AAD is
// every byte before the ciphertext length; the info is
//
//	"custos/v1/escrow-share" || cluster || kek id || uint32 kek version ||
//	officer id || uint16 share index
//
// built by the opener from the record it expects, not from the blob.
// [ParseEscrowShare] is the one parser; its errors are [*EscrowParseError].
//
// This package touches no HSM: it deals, verifies and rebuilds; kekhsm seals,
// opens and destroys shares in a node's token.
package kek

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"

	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// Errors callers branch on.
var (
	// ErrShareUnavailable: the node cannot open its sealed share, because the
	// version's sealing key is gone from its HSM (destroyed) or never existed there.
	ErrShareUnavailable = errors.New("kek: share unavailable on this node: its sealing key is not in the HSM (destroyed or never created)")
	// ErrShareCorrupt: the sealed share does not open or does not match the commitments.
	ErrShareCorrupt = errors.New("kek: sealed share is corrupt or belongs to another kek version")
	// ErrNotEnoughShares: fewer valid shares than the version's threshold.
	ErrNotEnoughShares = errors.New("kek: not enough valid shares to reconstitute the key")
	// ErrKeyMismatch: the reconstituted seed does not give the recorded public key.
	ErrKeyMismatch = errors.New("kek: reconstituted key does not match the recorded public key")
)

// Label is the HSM label of the AES key that seals a node's share of one KEK version.
func Label(id string, version uint32) string {
	return fmt.Sprintf("custos:kek:%s:%d", id, version)
}

// Version is the public record of one KEK version: safe to replicate and publish.
type Version struct {
	ID          string
	Version     uint32
	Threshold   int // t: shares needed
	Shares      int // n: shares dealt, one per node
	PublicKey   []byte
	Commitments threshold.Commitments
}

// Deal creates KEK id version `version`, split t-of-n. The caller hands Shares[i]
// to node i+1 and must Zeroize each share once it is sealed.
func Deal(rnd io.Reader, id string, version uint32, t, n int) (*Version, []threshold.Share, error) {
	if err := wrapkey.ValidateKEKID(id); err != nil {
		return nil, nil, err
	}
	if version == 0 {
		return nil, nil, fmt.Errorf("kek %q: version must be at least 1", id)
	}
	secret, d, err := threshold.Deal(rnd, t, n)
	if err != nil {
		return nil, nil, fmt.Errorf("deal kek %q v%d: %w", id, version, err)
	}
	seed, err := threshold.DeriveSeed(secret)
	zeroScalar(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("deal kek %q v%d: %w", id, version, err)
	}
	defer clear(seed[:])
	pub, err := wrapkey.PublicKey(seed[:])
	if err != nil {
		return nil, nil, fmt.Errorf("deal kek %q v%d: %w", id, version, err)
	}
	v := &Version{ID: id, Version: version, Threshold: t, Shares: n, PublicKey: pub, Commitments: d.Commitments}
	return v, d.Shares, nil
}

// Reconstitute rebuilds the KEK version from at least t shares and returns it as a
// ready-to-use key; the caller must Destroy it when done. Every share is verified
// against the commitments, and the rebuilt key must give the recorded public key.
func Reconstitute(v *Version, shares []threshold.Share) (*wrapkey.Key, error) {
	if len(shares) < v.Threshold {
		return nil, fmt.Errorf("reconstitute kek %q v%d: have %d of %d shares: %w", v.ID, v.Version, len(shares), v.Threshold, ErrNotEnoughShares)
	}
	secret, err := threshold.Recover(v.Commitments, shares)
	if err != nil {
		return nil, fmt.Errorf("reconstitute kek %q v%d: %w", v.ID, v.Version, err)
	}
	seed, err := threshold.DeriveSeed(secret)
	zeroScalar(secret)
	if err != nil {
		return nil, fmt.Errorf("reconstitute kek %q v%d: %w", v.ID, v.Version, err)
	}
	k, err := wrapkey.NewKey(seed[:], v.ID, v.Version)
	clear(seed[:])
	if err != nil {
		return nil, fmt.Errorf("reconstitute kek %q v%d: %w", v.ID, v.Version, err)
	}
	if subtle.ConstantTimeCompare(k.PublicKey(), v.PublicKey) != 1 {
		k.Destroy()
		return nil, fmt.Errorf("reconstitute kek %q v%d: %w", v.ID, v.Version, ErrKeyMismatch)
	}
	return k, nil
}

// Wrap wraps dek to this version's public key; it needs no HSM and no shares.
func (v *Version) Wrap(rnd io.Reader, ctx wrapkey.Context, dek []byte) ([]byte, error) {
	return wrapkey.Wrap(rnd, v.PublicKey, v.ID, v.Version, ctx, dek)
}

// zeroScalar overwrites a secret scalar.
func zeroScalar(s group.Scalar) { s.SetUint64(0) }
