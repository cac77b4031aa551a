// Released shares: a node's share of a KEK version, sealed by the releasing
// peer to the requesting node's X-Wing KEM key for one activation, so that
// only the requester's live HSM session (which unseals its KEM seed) opens it.

package kek

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/custos-eu/custos/threshold"
)

// releaseLabel starts every release's HPKE info.
const releaseLabel = "custos/v1/share-release"

// ErrReleaseOpen: a released share did not open with this node's KEM key, or
// was sealed for another activation, node or version.
var ErrReleaseOpen = errors.New("kek: released share does not open")

// Release names one release: which node sent which share to which node, for
// which activation (the log index of its kek.activate entry).
type Release struct {
	From, To   string
	Activation uint64
	Index      uint16 // the share's index
}

// info binds cluster, version and release into the HPKE info:
// label || 0 || cluster || 0 || kek id || 0 || uint32 version || from || 0 ||
// to || 0 || uint64 activation || uint16 index.
func (r Release) info(cluster string, v *Version) []byte {
	out := make([]byte, 0, 96)
	out = append(out, releaseLabel...)
	out = append(out, 0)
	out = append(out, cluster...)
	out = append(out, 0)
	out = append(out, v.ID...)
	out = append(out, 0)
	out = binary.BigEndian.AppendUint32(out, v.Version)
	out = append(out, r.From...)
	out = append(out, 0)
	out = append(out, r.To...)
	out = append(out, 0)
	out = binary.BigEndian.AppendUint64(out, r.Activation)
	return binary.BigEndian.AppendUint16(out, r.Index)
}

// SealRelease seals sh (share r.Index of v) to toKEM, the requesting node's
// X-Wing public key: HPKE base mode, X-Wing / HKDF-SHA256 / AES-256-GCM.
// Output: enc || ciphertext.
func SealRelease(rnd io.Reader, cluster string, v *Version, r Release, toKEM []byte, sh *threshold.Share) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("kek: seal released share %d of kek %q v%d to %s: %w", r.Index, v.ID, v.Version, r.To, err)
	}
	if sh == nil || sh.Index != r.Index {
		return fail(errors.New("share index does not match the release"))
	}
	pk, err := parseXWingPublic(toKEM)
	if err != nil {
		return fail(err)
	}
	plain, err := sh.MarshalBinary()
	if err != nil {
		return fail(err)
	}
	defer clear(plain)
	sender, err := escrowSuite.NewSender(pk, r.info(cluster, v))
	if err != nil {
		return fail(err)
	}
	enc, sealer, err := sender.Setup(rnd)
	if err != nil {
		return fail(err)
	}
	ct, err := sealer.Seal(plain, nil)
	if err != nil {
		return fail(err)
	}
	return append(enc, ct...), nil
}

// OpenRelease opens a share sealed by SealRelease with key (the requester's
// KEM key) and verifies it against v's commitments. The caller zeroises the
// share. Errors wrap ErrReleaseOpen or ErrShareCorrupt.
func OpenRelease(key EscrowKey, cluster string, v *Version, r Release, sealed []byte) (*threshold.Share, error) {
	const encSize = 1120 // X-Wing ciphertext
	if len(sealed) <= encSize {
		return nil, fmt.Errorf("open released share %d of kek %q v%d: %w", r.Index, v.ID, v.Version, ErrReleaseOpen)
	}
	plain, err := key.OpenHPKE(sealed[:encSize], sealed[encSize:], r.info(cluster, v), nil)
	if err != nil {
		return nil, fmt.Errorf("open released share %d of kek %q v%d: %w", r.Index, v.ID, v.Version, ErrReleaseOpen)
	}
	defer clear(plain)
	sh := new(threshold.Share)
	if err := sh.UnmarshalBinary(plain); err != nil || sh.Index != r.Index || threshold.Verify(v.Commitments, sh) != nil {
		sh.Zeroize()
		return nil, fmt.Errorf("open released share %d of kek %q v%d: %w", r.Index, v.ID, v.Version, ErrShareCorrupt)
	}
	return sh, nil
}
